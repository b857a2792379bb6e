// SGD, Adam and AdamW updates (PyTorch's _single_tensor_sgd/_single_tensor_adam order of operations, in
// the parameter's dtype with double scalars), parameter groups, the checkpointable optimizer state and
// gradient clipping. One fused, vectorized loop per parameter and update, OpenMP over elements for large
// parameters.
// Not here: maximize, capturable/differentiable modes, complex parameters.
#include "ssmkit/core/train/optimizer.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <map>
#include <set>
#include <type_traits>

namespace ssmkit::core {

// ---------------------------------------------------------------------------------------------------------
// Parameter groups

static std::string last_component(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

bool is_ssm_no_weight_decay_name(const std::string& name) {
  const std::string last = last_component(name);
  return last == "A_log" || last == "A_logs" || last == "D" || last == "Ds";
}

std::vector<ParamGroup> default_param_groups(const Module& m, double weight_decay, double lr,
                                             const std::vector<std::string>& extra_no_decay) {
  SSMKIT_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, "default_param_groups: weight_decay must be >= 0, got ",
               weight_decay);
  ParamGroup no_decay, decay;
  no_decay.name = "no_decay";
  no_decay.lr = lr;
  no_decay.weight_decay = 0.0;
  decay.name = "decay";
  decay.lr = lr;
  decay.weight_decay = weight_decay;
  for (const auto& [name, p] : m.named_parameters()) {
    if (!p.requires_grad()) continue;  // frozen: not optimized at all (timm skips them too)
    const std::string last = last_component(name);
    const bool skip = p.ndim() <= 1 || last == "bias" || is_ssm_no_weight_decay_name(name) ||
                      std::find(extra_no_decay.begin(), extra_no_decay.end(), last) != extra_no_decay.end();
    (skip ? no_decay : decay).params.emplace_back(name, p);
  }
  return {std::move(no_decay), std::move(decay)};
}

std::vector<ParamGroup> single_param_group(const Module& m, double lr, double weight_decay) {
  ParamGroup g;
  g.name = "all";
  g.lr = lr;
  g.weight_decay = weight_decay;
  for (const auto& [name, p] : m.named_parameters())
    if (p.requires_grad()) g.params.emplace_back(name, p);
  return {std::move(g)};
}

// ---------------------------------------------------------------------------------------------------------
// Optimizer base: groups, state, state_dict

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_weight_decay, const char* name)
    : groups_(std::move(groups)), name_(name) {
  SSMKIT_CHECK(!groups_.empty(), name_, ": no parameter groups given");
  std::set<std::string> names;
  std::set<const Node*> nodes;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& grp = groups_[g];
    if (std::isnan(grp.weight_decay)) grp.weight_decay = default_weight_decay;
    SSMKIT_CHECK(std::isfinite(grp.lr) && grp.lr >= 0, name_, ": group ", g, " has invalid lr ", grp.lr);
    SSMKIT_CHECK(std::isfinite(grp.weight_decay) && grp.weight_decay >= 0, name_, ": group ", g,
                 " has invalid weight_decay ", grp.weight_decay);
    if (grp.initial_lr < 0) grp.initial_lr = grp.lr;
    for (const auto& [pname, p] : grp.params) {
      SSMKIT_CHECK(p.defined(), name_, ": parameter \"", pname, "\" is undefined");
      SSMKIT_CHECK(names.insert(pname).second, name_, ": parameter name \"", pname,
                   "\" appears twice (names must be unique across groups)");
      SSMKIT_CHECK(nodes.insert(p.node().get()).second, name_, ": parameter \"", pname,
                   "\" is listed twice (under another name too)");
      const Tensor& v = p.value();
      SSMKIT_CHECK(v.dtype() == DType::F32 || v.dtype() == DType::F64, name_, ": parameter \"", pname,
                   "\" has dtype ", dtype_name(v.dtype()), " (F32 or F64 needed)");
      SSMKIT_CHECK(v.is_contiguous(), name_, ": parameter \"", pname, "\" ", shape_str(v.shape()),
                   " is not contiguous");
    }
  }
  state_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) state_[g].resize(groups_[g].params.size());
}

void Optimizer::zero_grad() {
  for (auto& grp : groups_)
    for (auto& [n, p] : grp.params) p.zero_grad();
}

const ParamGroup& Optimizer::group(size_t g) const {
  SSMKIT_CHECK(g < groups_.size(), name_, ": group ", g, " out of range (", groups_.size(), " groups)");
  return groups_[g];
}
ParamGroup& Optimizer::group(size_t g) {
  SSMKIT_CHECK(g < groups_.size(), name_, ": group ", g, " out of range (", groups_.size(), " groups)");
  return groups_[g];
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}
void Optimizer::set_lr(size_t g, double lr) {
  SSMKIT_CHECK(std::isfinite(lr) && lr >= 0, name_, ": set_lr: invalid lr ", lr, " for group ", g);
  group(g).lr = lr;
}

std::vector<Var> Optimizer::parameters() const {
  std::vector<Var> out;
  for (const auto& grp : groups_)
    for (const auto& [n, p] : grp.params) out.push_back(p);
  return out;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  const std::vector<std::string> names = state_names();
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const ParamState& st = state_[g][i];
      if (!st.initialized) continue;
      const std::string& pname = groups_[g].params[i].first;
      for (size_t k = 0; k < names.size(); ++k) out.emplace_back(pname + "." + names[k], st.bufs[k]);
      if (has_step()) out.emplace_back(pname + ".step", Tensor::full({}, st.step, DType::F64));
    }
  Tensor lrs = Tensor::empty({static_cast<int64_t>(groups_.size())}, DType::F64);
  for (size_t g = 0; g < groups_.size(); ++g) lrs.data<double>()[g] = groups_[g].lr;
  out.emplace_back("param_groups.lr", lrs);
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& source, const std::string& origin) {
  const std::vector<std::string> names = state_names();
  // Every key this optimizer can hold -> (group, param, slot); slot == names.size() is the step count.
  struct Where {
    size_t g, i, slot;
  };
  std::map<std::string, Where> known;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string& pname = groups_[g].params[i].first;
      for (size_t k = 0; k < names.size(); ++k) known[pname + "." + names[k]] = {g, i, k};
      if (has_step()) known[pname + ".step"] = {g, i, names.size()};
    }
  const size_t n_slots = names.size() + (has_step() ? 1 : 0);

  std::vector<std::string> problems;
  std::map<std::pair<size_t, size_t>, std::vector<const Tensor*>> found;  // (g, i) -> per slot
  const Tensor* lrs = nullptr;
  for (const auto& [key, t] : source) {
    if (key == "param_groups.lr") {
      lrs = &t;
      continue;
    }
    auto it = known.find(key);
    if (it == known.end()) {
      problems.push_back("unexpected key: " + key);
      continue;
    }
    const Where& w = it->second;
    const Tensor& pv = groups_[w.g].params[w.i].second.value();
    const Shape want = w.slot == names.size() ? Shape{} : pv.shape();
    if (t.shape() != want) {
      problems.push_back("shape mismatch: " + key + ": source " + shape_str(t.shape()) + " vs " + shape_str(want));
      continue;
    }
    if (t.dtype() != DType::F32 && t.dtype() != DType::F64) {
      problems.push_back("bad dtype: " + key + " is " + dtype_name(t.dtype()) + " (F32 or F64 needed)");
      continue;
    }
    auto& slots = found[{w.g, w.i}];
    slots.resize(n_slots, nullptr);
    slots[w.slot] = &t;
  }
  for (const auto& [gi, slots] : found)
    for (size_t k = 0; k < n_slots; ++k)
      if (!slots[k])
        problems.push_back("missing key: " + groups_[gi.first].params[gi.second].first + "." +
                           (k == names.size() ? std::string("step") : names[k]) + " (the parameter has other state)");
  if (!lrs) {
    problems.push_back("missing key: param_groups.lr");
  } else if (lrs->shape() != Shape{static_cast<int64_t>(groups_.size())}) {
    problems.push_back("shape mismatch: param_groups.lr: source " + shape_str(lrs->shape()) + " vs (" +
                       std::to_string(groups_.size()) + ") (one lr per parameter group)");
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(origin + ": " + name_ + " state does not match the optimizer:" + msg);
  }

  // Valid: replace everything.
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) state_[g][i] = ParamState{};
  for (const auto& [gi, slots] : found) {
    ParamState& st = state_[gi.first][gi.second];
    const DType dt = groups_[gi.first].params[gi.second].second.value().dtype();
    st.initialized = true;
    for (size_t k = 0; k < names.size(); ++k) st.bufs.push_back(slots[k]->to(dt));  // fresh contiguous copy
    if (has_step()) st.step = slots[names.size()]->to_double_vector()[0];
  }
  std::vector<double> lr = lrs->to_double_vector();
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lr[g];
}

// ---------------------------------------------------------------------------------------------------------
// Kernels (contiguous, n elements). Each update is one pass over the parameter with the options fixed at
// compile time, so the loop has no branches and vectorizes (omp simd); threads over elements when the
// parameter is large enough to pay for them. The if clause names `parallel`: unqualified, it applies to the
// simd part too (OpenMP 5.0), and every parameter below the threshold ran as a scalar loop. Same operation
// order as PyTorch's single-tensor path.

static constexpr int64_t kParallelMin = 1 << 15;

// SGD. p, g, buf (n); buf is unused (nullptr) without momentum. kFirst: buf = d_p.
template <class T, bool kWd, bool kMomentum, bool kNesterov, bool kFirst>
static void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T momentum, T damp) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
  for (int64_t j = 0; j < n; ++j) {
    T d = g[j];
    if constexpr (kWd) d += wd * p[j];
    if constexpr (kMomentum) {
      const T b = kFirst ? d : momentum * buf[j] + damp * d;
      buf[j] = b;
      d = kNesterov ? d + momentum * b : b;
    }
    p[j] -= lr * d;
  }
}

template <class T>
static void sgd_update(T* p, const T* g, T* buf, int64_t n, double lr, double wd, double momentum, double dampening,
                       bool nesterov, bool first) {
  const T tlr = static_cast<T>(lr), twd = static_cast<T>(wd), tm = static_cast<T>(momentum),
          tdamp = static_cast<T>(1.0 - dampening);
  auto run = [&](auto wd_on) {
    constexpr bool kWd = decltype(wd_on)::value;
    if (!buf)
      sgd_kernel<T, kWd, false, false, false>(p, g, buf, n, tlr, twd, tm, tdamp);
    else if (first)
      nesterov ? sgd_kernel<T, kWd, true, true, true>(p, g, buf, n, tlr, twd, tm, tdamp)
               : sgd_kernel<T, kWd, true, false, true>(p, g, buf, n, tlr, twd, tm, tdamp);
    else
      nesterov ? sgd_kernel<T, kWd, true, true, false>(p, g, buf, n, tlr, twd, tm, tdamp)
               : sgd_kernel<T, kWd, true, false, false>(p, g, buf, n, tlr, twd, tm, tdamp);
  };
  if (wd != 0)
    run(std::true_type{});
  else
    run(std::false_type{});
}

// The per-step scalars of Adam, in the parameter's dtype.
template <class T>
struct AdamScalars {
  T step_size;       // lr / (1 - beta1^t)
  T b2s;             // sqrt(1 - beta2^t)
  T eps, b1, one_b1, b2, one_b2, wd;
  T decay;           // 1 - lr * weight_decay (AdamW)
};

// Adam / AdamW. p, g, m, v (n); vmax (n) with amsgrad (kAmsgrad), else unused.
template <class T, bool kWd, bool kDecoupled, bool kAmsgrad>
static void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars<T> s) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
  for (int64_t j = 0; j < n; ++j) {
    T grad = g[j], pj = p[j];
    if constexpr (kWd) {
      if constexpr (kDecoupled)
        pj *= s.decay;
      else
        grad += s.wd * pj;
    }
    const T mj = s.b1 * m[j] + s.one_b1 * grad;
    const T vj = s.b2 * v[j] + s.one_b2 * grad * grad;
    m[j] = mj;
    v[j] = vj;
    T vv = vj;
    if constexpr (kAmsgrad) {
      const T vm = vmax[j];
      vv = vm < vj ? vj : vm;  // std::max(vmax, v), written so that it vectorizes
      vmax[j] = vv;
    }
    const T denom = std::sqrt(vv) / s.b2s + s.eps;
    p[j] = pj - s.step_size * mj / denom;
  }
}

template <class T>
static void adam_update(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, double lr, double wd, bool decoupled,
                        double beta1, double beta2, double eps, double step) {
  const double bc1 = 1.0 - std::pow(beta1, step);
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, step));
  AdamScalars<T> s;
  s.step_size = static_cast<T>(lr / bc1);
  s.b2s = static_cast<T>(bc2_sqrt);
  s.eps = static_cast<T>(eps);
  s.b1 = static_cast<T>(beta1);
  s.one_b1 = static_cast<T>(1.0 - beta1);
  s.b2 = static_cast<T>(beta2);
  s.one_b2 = static_cast<T>(1.0 - beta2);
  s.wd = static_cast<T>(wd);
  s.decay = static_cast<T>(1.0 - lr * wd);
  auto run = [&](auto wd_on, auto decoupled_on) {
    constexpr bool kWd = decltype(wd_on)::value, kDec = decltype(decoupled_on)::value;
    if (vmax)
      adam_kernel<T, kWd, kDec, true>(p, g, m, v, vmax, n, s);
    else
      adam_kernel<T, kWd, kDec, false>(p, g, m, v, vmax, n, s);
  };
  if (wd == 0)
    run(std::false_type{}, std::false_type{});
  else if (decoupled)
    run(std::true_type{}, std::true_type{});
  else
    run(std::true_type{}, std::false_type{});
}

// The gradient of p as a contiguous tensor of p's dtype (undefined when p has none).
static Tensor grad_of(const Var& p) {
  const Tensor& g = p.grad();
  if (!g.defined()) return g;
  return g.is_contiguous() ? g : g.contiguous();
}

// ---------------------------------------------------------------------------------------------------------
// SGD

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt) : Optimizer(std::move(groups), opt.weight_decay, "SGD"), opt_(opt) {
  SSMKIT_CHECK(opt.momentum >= 0, "SGD: invalid momentum ", opt.momentum);
  SSMKIT_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
               "SGD: nesterov momentum requires a momentum and zero dampening (momentum ", opt.momentum,
               ", dampening ", opt.dampening, ")");
}

std::vector<std::string> SGD::state_names() const {
  if (opt_.momentum != 0) return {"momentum_buffer"};
  return {};
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    for (size_t i = 0; i < grp.params.size(); ++i) {
      Var p = grp.params[i].second;
      Tensor grad = grad_of(p);
      if (!grad.defined()) continue;
      Tensor& val = p.value();
      ParamState& st = state(g, i);
      const bool first = !st.initialized;
      if (first) {
        st.initialized = true;
        if (opt_.momentum != 0) st.bufs.push_back(Tensor::zeros(val.shape(), val.dtype()));
      }
      const int64_t n = val.numel();
      if (val.dtype() == DType::F32)
        sgd_update<float>(val.data<float>(), grad.data<float>(), st.bufs.empty() ? nullptr : st.bufs[0].data<float>(),
                          n, grp.lr, grp.weight_decay, opt_.momentum, opt_.dampening, opt_.nesterov, first);
      else
        sgd_update<double>(val.data<double>(), grad.data<double>(),
                           st.bufs.empty() ? nullptr : st.bufs[0].data<double>(), n, grp.lr, grp.weight_decay,
                           opt_.momentum, opt_.dampening, opt_.nesterov, first);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Adam / AdamW

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opt) : Adam(std::move(groups), opt, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opt, bool decoupled)
    : Optimizer(std::move(groups), opt.weight_decay, decoupled ? "AdamW" : "Adam"), opt_(opt), decoupled_(decoupled) {
  SSMKIT_CHECK(opt.eps >= 0, name_, ": invalid eps ", opt.eps);
  SSMKIT_CHECK(opt.beta1 >= 0 && opt.beta1 < 1, name_, ": invalid beta1 ", opt.beta1, " (needs 0 <= beta1 < 1)");
  SSMKIT_CHECK(opt.beta2 >= 0 && opt.beta2 < 1, name_, ": invalid beta2 ", opt.beta2, " (needs 0 <= beta2 < 1)");
}

std::vector<std::string> Adam::state_names() const {
  if (opt_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::step() {
  NoGradGuard no_grad;
  // All parameters' updates as pieces of at most kPiece elements, run in one parallel loop: small
  // parameters no longer run on one thread each with the others waiting, and there is one fork per step.
  // Every element gets the same arithmetic as before.
  constexpr int64_t kPiece = kParallelMin / 2;
  struct Piece {
    size_t update;  // index into updates
    int64_t off, count;
  };
  std::vector<std::function<void(int64_t, int64_t)>> updates;  // (offset, count) within one parameter
  std::vector<Piece> pieces;
  std::vector<Tensor> grads;  // alive until the loop below (grad_of may return a contiguous copy)
  int64_t total = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    for (size_t i = 0; i < grp.params.size(); ++i) {
      Var p = grp.params[i].second;
      Tensor grad = grad_of(p);
      if (!grad.defined()) continue;
      Tensor& val = p.value();
      ParamState& st = state(g, i);
      if (!st.initialized) {
        st.initialized = true;
        st.step = 0;
        for (size_t k = 0; k < state_names().size(); ++k) st.bufs.push_back(Tensor::zeros(val.shape(), val.dtype()));
      }
      st.step += 1;
      const int64_t n = val.numel();
      const double lr = grp.lr, wd = grp.weight_decay, step = st.step;
      auto make = [&](auto tag) -> std::function<void(int64_t, int64_t)> {
        using T = decltype(tag);
        T *pv = val.data<T>(), *m = st.bufs[0].data<T>(), *v = st.bufs[1].data<T>();
        T* vmax = opt_.amsgrad ? st.bufs[2].data<T>() : nullptr;
        const T* pg = grad.data<T>();
        return [=, this](int64_t off, int64_t cnt) {
          adam_update<T>(pv + off, pg + off, m + off, v + off, vmax ? vmax + off : nullptr, cnt, lr, wd, decoupled_,
                         opt_.beta1, opt_.beta2, opt_.eps, step);
        };
      };
      updates.push_back(val.dtype() == DType::F32 ? make(float{}) : make(double{}));
      grads.push_back(grad);
      for (int64_t off = 0; off < n; off += kPiece)
        pieces.push_back({updates.size() - 1, off, std::min(kPiece, n - off)});
      total += n;
    }
  }
  const int64_t np = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(dynamic, 1) if (np > 1 && total >= kParallelMin)
  for (int64_t k = 0; k < np; ++k) {
    const Piece& q = pieces[static_cast<size_t>(k)];
    updates[q.update](q.off, q.count);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Gradient clipping

template <class T>
static double grad_norm_part(const T* g, int64_t n, double norm_type) {
  double acc = 0;
  if (std::isinf(norm_type)) {
    for (int64_t j = 0; j < n; ++j) acc = std::max(acc, std::abs(static_cast<double>(g[j])));
  } else if (norm_type == 2.0) {
    for (int64_t j = 0; j < n; ++j) acc += static_cast<double>(g[j]) * static_cast<double>(g[j]);
  } else {
    for (int64_t j = 0; j < n; ++j) acc += std::pow(std::abs(static_cast<double>(g[j])), norm_type);
  }
  return acc;
}

template <class T>
static void scale_in_place(T* g, int64_t n, double s) {
  const T ts = static_cast<T>(s);
  for (int64_t j = 0; j < n; ++j) g[j] *= ts;
}

template <class T>
static void clamp_in_place(T* g, int64_t n, double v) {
  const T lo = static_cast<T>(-v), hi = static_cast<T>(v);
  for (int64_t j = 0; j < n; ++j) g[j] = std::min(std::max(g[j], lo), hi);
}

// The gradient of p, made contiguous in place so that scaling it changes what the optimizer will read.
static Tensor* contiguous_grad(const Var& p, const char* op) {
  if (!p.defined()) return nullptr;
  Var q = p;
  Tensor& g = q.grad();
  if (!g.defined()) return nullptr;
  if (!g.is_contiguous()) g = g.contiguous();
  SSMKIT_CHECK(g.dtype() == DType::F32 || g.dtype() == DType::F64, op, ": gradient of dtype ", dtype_name(g.dtype()),
               " (F32 or F64 needed)");
  return &g;
}

double clip_grad_norm_(const std::vector<Var>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  SSMKIT_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive (or infinity), got ", norm_type);
  std::vector<Tensor*> grads;
  for (const Var& p : params)
    if (Tensor* g = contiguous_grad(p, "clip_grad_norm_")) grads.push_back(g);
  if (grads.empty()) return 0.0;
  double acc = 0;
  for (Tensor* g : grads) {
    double part = g->dtype() == DType::F32 ? grad_norm_part(g->data<float>(), g->numel(), norm_type)
                                           : grad_norm_part(g->data<double>(), g->numel(), norm_type);
    acc = std::isinf(norm_type) ? std::max(acc, part) : acc + part;
  }
  const double total = std::isinf(norm_type) ? acc : norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
  SSMKIT_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm_: the total norm of order ", norm_type,
               " of the gradients is non-finite (", total, "), so it cannot be clipped (pass error_if_nonfinite = false to "
               "scale anyway)");
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0 || !std::isfinite(coef))  // PyTorch multiplies by min(coef, 1); by 1 changes nothing
    for (Tensor* g : grads) {
      if (g->dtype() == DType::F32)
        scale_in_place(g->data<float>(), g->numel(), std::min(coef, 1.0));
      else
        scale_in_place(g->data<double>(), g->numel(), std::min(coef, 1.0));
    }
  return total;
}

void clip_grad_value_(const std::vector<Var>& params, double clip_value) {
  SSMKIT_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be >= 0, got ", clip_value);
  for (const Var& p : params)
    if (Tensor* g = contiguous_grad(p, "clip_grad_value_")) {
      if (g->dtype() == DType::F32)
        clamp_in_place(g->data<float>(), g->numel(), clip_value);
      else
        clamp_in_place(g->data<double>(), g->numel(), clip_value);
    }
}

}  // namespace ssmkit::core
