// conv2d_tokens' float path through oneDNN (see conv_tokens_onednn.h). One set of primitives per geometry,
// built on first use and kept (a primitive descriptor costs tens of microseconds to create; a step of the
// micro models runs eight convolutions forward and backward): the forward, backward-data and
// backward-weights convolutions on channels-last (nhwc) maps, and the reorders between the weights' (O,C,K,K)
// layout and the layouts the kernels choose. Scratchpads are allocated per call (user mode), so the shared
// primitives may run on several threads at once (data-parallel shards).
// oneDNN (OpenMP runtime) sizes a primitive's work split for the threads in effect when the primitive is
// created, and it must run with as many: with fewer, kernels that synchronise their threads (the
// backward-weights reductions) wait forever, as they did inside data-parallel shards, where oneDNN's own regions
// get one thread; with more, the extra threads idle (primitives built at one thread ran single-threaded after
// the thread count was raised). So the cache keeps one set per thread count, one inside an active parallel
// region.
#include "conv_tokens_onednn.h"

#ifdef SSMKIT_VISION_HAVE_ONEDNN

#include <omp.h>

#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "ssmkit/core/max_threads_scope.h"

namespace ssmkit::vision::detail {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DT = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

struct ConvPrims {
  memory::desc src, dst, wei_user, bias;
  dnnl::convolution_forward::primitive_desc fpd;
  dnnl::convolution_forward fwd;
  dnnl::reorder to_fwd_w;  // (O,C,K,K) -> fpd's weights layout
  bool fwd_w_same = false;
  // backward, built on first use
  bool have_bwd = false;
  dnnl::convolution_backward_data::primitive_desc bdpd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::reorder to_bwd_w;
  bool bwd_w_same = false;
  dnnl::convolution_backward_weights::primitive_desc bwpd;
  dnnl::convolution_backward_weights bwd_w;
  dnnl::reorder from_dw;  // bwpd's diff-weights layout -> (O,C,K,K)
  bool dw_same = false;
};

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// Reorder between two layouts of the weights (an empty reorder and same = true when they are equal).
dnnl::reorder make_reorder(const memory::desc& from, const memory::desc& to, bool& same) {
  same = from == to;
  if (same) return {};
  return dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to));
}

// The threads a oneDNN primitive created and run here gets: 1 inside an active parallel region.
int onednn_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// geometry, bias, GELU epilogue, threads
using Key =
    std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, int>;

// The weights' dims: (O,C,K,K), or (G, O/G, C/G, K, K) with groups.
memory::dims weight_dims(const ConvGeometry& g) {
  if (g.G == 1) return {g.O, g.C, g.K, g.K};
  return {g.G, g.O / g.G, g.C / g.G, g.K, g.K};
}

// The primitives of a geometry (with or without a bias in the forward) for the threads in effect, created once;
// with_bwd builds the backward ones too. Null where oneDNN has no implementation.
// gelu: the forward alone (inference), with GELU as its post-op.
std::shared_ptr<ConvPrims> prims_for(const ConvGeometry& g, bool has_bias, bool with_bwd, bool gelu = false) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<ConvPrims>> cache;
  const int threads = onednn_threads();
  const Key key{g.B, g.H, g.W, g.C, g.O, g.K, g.S, g.P, g.G, has_bias, gelu, threads};
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<ConvPrims>& slot = cache[key];
  if (slot && (!with_bwd || slot->have_bwd)) return slot;
  const core::MaxThreadsScope create_for(threads);  // oneDNN sizes the primitives for these
  try {
    const int64_t OH = (g.H + 2 * g.P - g.K) / g.S + 1, OW = (g.W + 2 * g.P - g.K) / g.S + 1;
    const memory::dims strides = {g.S, g.S}, pad = {g.P, g.P};
    if (!slot) {
      auto p = std::make_shared<ConvPrims>();
      p->src = memory::desc({g.B, g.C, g.H, g.W}, DT::f32, Tag::nhwc);
      p->dst = memory::desc({g.B, g.O, OH, OW}, DT::f32, Tag::nhwc);
      p->wei_user = memory::desc(weight_dims(g), DT::f32, g.G == 1 ? Tag::oihw : Tag::goihw);
      p->bias = has_bias ? memory::desc({g.O}, DT::f32, Tag::x) : memory::desc();
      const memory::desc wei_any(weight_dims(g), DT::f32, Tag::any);
      dnnl::primitive_attr attr = user_scratchpad();
      if (gelu) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
        attr.set_post_ops(ops);
      }
      p->fpd = dnnl::convolution_forward::primitive_desc(
          {gelu ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training,
           dnnl::algorithm::convolution_direct, p->src, wei_any, p->bias, p->dst, strides, pad, pad},
          attr, cpu_engine());
      p->fwd = dnnl::convolution_forward(p->fpd);
      p->to_fwd_w = make_reorder(p->wei_user, p->fpd.weights_desc(), p->fwd_w_same);
      slot = p;
    }
    if (with_bwd && !slot->have_bwd) {
      ConvPrims& p = *slot;
      const memory::desc wei_any(weight_dims(g), DT::f32, Tag::any);
      p.bdpd = dnnl::convolution_backward_data::primitive_desc(
          {dnnl::algorithm::convolution_direct, p.src, wei_any, p.dst, strides, pad, pad}, user_scratchpad(),
          cpu_engine(), p.fpd);
      p.bwd_data = dnnl::convolution_backward_data(p.bdpd);
      p.to_bwd_w = make_reorder(p.wei_user, p.bdpd.weights_desc(), p.bwd_w_same);
      p.bwpd = dnnl::convolution_backward_weights::primitive_desc(
          {dnnl::algorithm::convolution_direct, p.src, wei_any, p.dst, strides, pad, pad}, user_scratchpad(),
          cpu_engine(), p.fpd);
      p.bwd_w = dnnl::convolution_backward_weights(p.bwpd);
      p.from_dw = make_reorder(p.bwpd.diff_weights_desc(), p.wei_user, p.dw_same);
      p.have_bwd = true;
    }
  } catch (const dnnl::error&) {
    cache.erase(key);
    return nullptr;
  }
  return slot;
}

// The weights in the layout `want`: a view of the user's buffer, or a reordered copy.
memory weights_as(const memory::desc& want, bool same, const dnnl::reorder& r, const ConvPrims& p, const float* w,
                  dnnl::stream& st) {
  memory user(p.wei_user, cpu_engine(), const_cast<float*>(w));
  if (same) return user;
  memory m(want, cpu_engine());
  r.execute(st, user, m);
  return m;
}

memory scratchpad(const memory::desc& d) { return memory(d, cpu_engine()); }

}  // namespace

bool onednn_conv_forward(float* y, const float* x, const float* w, const float* bias, const ConvGeometry& g,
                         bool gelu) {
  const std::shared_ptr<ConvPrims> p = prims_for(g, bias != nullptr, false, gelu);
  if (!p) return false;
  dnnl::stream st(cpu_engine());
  memory wei = weights_as(p->fpd.weights_desc(), p->fwd_w_same, p->to_fwd_w, *p, w, st);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, memory(p->src, cpu_engine(), const_cast<float*>(x))},
                                          {DNNL_ARG_WEIGHTS, wei},
                                          {DNNL_ARG_DST, memory(p->dst, cpu_engine(), y)},
                                          {DNNL_ARG_SCRATCHPAD, scratchpad(p->fpd.scratchpad_desc())}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(p->bias, cpu_engine(), const_cast<float*>(bias)));
  p->fwd.execute(st, args);
  st.wait();
  return true;
}

bool onednn_conv_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                          const ConvGeometry& g) {
  const std::shared_ptr<ConvPrims> p = prims_for(g, false, true);
  if (!p) return false;
  dnnl::stream st(cpu_engine());
  memory ddst(p->dst, cpu_engine(), const_cast<float*>(dy));
  if (dx) {
    memory wei = weights_as(p->bdpd.weights_desc(), p->bwd_w_same, p->to_bwd_w, *p, w, st);
    p->bwd_data.execute(st, {{DNNL_ARG_DIFF_DST, ddst},
                             {DNNL_ARG_WEIGHTS, wei},
                             {DNNL_ARG_DIFF_SRC, memory(p->src, cpu_engine(), dx)},
                             {DNNL_ARG_SCRATCHPAD, scratchpad(p->bdpd.scratchpad_desc())}});
  }
  if (dw) {
    memory dwk(p->bwpd.diff_weights_desc(), cpu_engine());
    p->bwd_w.execute(st, {{DNNL_ARG_SRC, memory(p->src, cpu_engine(), const_cast<float*>(x))},
                          {DNNL_ARG_DIFF_DST, ddst},
                          {DNNL_ARG_DIFF_WEIGHTS, dwk},
                          {DNNL_ARG_SCRATCHPAD, scratchpad(p->bwpd.scratchpad_desc())}});
    const int64_t n = g.O * (g.C / g.G) * g.K * g.K;
    std::vector<float> plain;
    const float* src = static_cast<const float*>(dwk.get_data_handle());
    if (!p->dw_same) {
      plain.resize(static_cast<size_t>(n));
      memory out(p->wei_user, cpu_engine(), plain.data());
      p->from_dw.execute(st, dwk, out);
      src = plain.data();
    }
    st.wait();
    for (int64_t i = 0; i < n; ++i) dw[i] += src[i];
  }
  st.wait();  // dx written (and nothing left running on the stream)
  return true;
}

}  // namespace ssmkit::vision::detail

#else  // no oneDNN: the callers take their own path

namespace ssmkit::vision::detail {
bool onednn_conv_forward(float*, const float*, const float*, const float*, const ConvGeometry&, bool) {
  return false;
}
bool onednn_conv_backward(float*, float*, const float*, const float*, const float*, const ConvGeometry&) {
  return false;
}
}  // namespace ssmkit::vision::detail

#endif
