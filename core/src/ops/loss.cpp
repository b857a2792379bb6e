// Losses: each op computes its per-element (or per-position) loss and reduces it in double; backward
// turns the incoming gradient into a per-element upstream weight u (g itself for Reduction::None, else
// g / divisor everywhere) and applies the closed-form derivative. Formulas follow PyTorch's
// aten/src/ATen/native/Loss.cpp and LossNLL.cpp (cross_entropy_loss_label_smoothing,
// cross_entropy_loss_prob_target, binary_cross_entropy_with_logits, kl_div).
#include "ssmkit/core/ops/loss.h"

#include <algorithm>
#include <cmath>

#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/elementwise.h"
#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

using detail::check_float;
using detail::dispatch_float;

template <class T>
T sigmoid_of(T v) {
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

// softplus(-x) = log(1 + exp(-x)), stable for both signs.
template <class T>
T softplus_neg(T x) {
  return std::log1p(std::exp(-std::abs(x))) + std::max(-x, T(0));
}

void check_reduction(Reduction r, const char* op) {
  SSMKIT_CHECK(r != Reduction::BatchMean, op, ": reduction BatchMean is only for kl_div");
}

// input and target of a pointwise loss: float, same dtype, same shape.
void check_pair(const Var& input, const Var& target, const char* op) {
  check_float(input.value(), op, "input");
  check_float(target.value(), op, "target");
  SSMKIT_CHECK(input.dtype() == target.dtype(), op, ": input (", dtype_name(input.dtype()), ") and target (",
               dtype_name(target.dtype()), ") dtypes differ");
  SSMKIT_CHECK(input.shape() == target.shape(), op, ": target ", shape_str(target.shape()),
               " must have the shape of input ", shape_str(input.shape()));
}

// Per-element losses l -> the op's output: l itself, or a 0-d sum (divided by `divisor` for the means).
Tensor reduce_loss(const Tensor& l, Reduction r, double divisor) {
  if (r == Reduction::None) return l;
  const std::vector<double> v = l.to_double_vector();
  double s = 0;
  for (double x : v) s += x;
  if (r != Reduction::Sum) s /= divisor;  // 0 / 0 gives NaN for an empty mean, like PyTorch
  return Tensor::full({}, s, l.dtype());
}

// The gradient reaching each element of the unreduced loss (shape s), as a contiguous tensor.
Tensor upstream(const Tensor& g, Reduction r, const Shape& s, double divisor) {
  if (r == Reduction::None) return g.contiguous();
  double v = g.to_double_vector()[0];
  if (r != Reduction::Sum) v /= divisor;
  return Tensor::full(s, v, g.dtype());
}

Tensor negated(const Tensor& a) {
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = a.data<T>();
    T* o = out.data<T>();
    for (int64_t i = 0; i < a.numel(); ++i) o[i] = -p[i];
  });
  return out;
}

// a broadcast to shape s as a contiguous tensor of dtype dt; ones when a is undefined.
Tensor expand_to(const Tensor& a, const Shape& s, DType dt, const char* op, const char* arg) {
  if (!a.defined()) return Tensor::full(s, 1.0, dt);
  check_float(a, op, arg);
  bool ok = a.ndim() <= static_cast<int64_t>(s.size());
  for (int64_t i = 1; ok && i <= a.ndim(); ++i) {
    const int64_t da = a.shape()[a.shape().size() - i], ds = s[s.size() - i];
    ok = da == 1 || da == ds;
  }
  SSMKIT_CHECK(ok, op, ": ", arg, " ", shape_str(a.shape()), " does not broadcast to the input shape ", shape_str(s));
  return add(Var(Tensor::zeros(s, dt)), Var(a.to(dt))).value();
}

// logits (N,C,d1,...) seen as (N, C, S), S = d1*...; or (C) as (1, C, 1).
struct ClassLayout {
  int64_t N, C, S;
  int64_t class_dim;
  Shape pos_shape;  // (N,d1,...), or () for unbatched logits
};

ClassLayout class_layout(const Shape& s, const char* op) {
  SSMKIT_CHECK(!s.empty(), op, ": logits must be (C), (N,C) or (N,C,d1,...), got a 0-d tensor");
  if (s.size() == 1) return {1, s[0], 1, 0, {}};
  ClassLayout l{s[0], s[1], 1, 1, {s[0]}};
  for (size_t i = 2; i < s.size(); ++i) {
    l.S *= s[i];
    l.pos_shape.push_back(s[i]);
  }
  return l;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// mse_loss, l1_loss: l = (x - t)^2 or |x - t|; dx = u * 2 (x - t) or u * sign(x - t); dt = -dx

Var mse_loss(const Var& input, const Var& target, Reduction reduction) {
  check_pair(input, target, "mse_loss");
  check_reduction(reduction, "mse_loss");
  const Tensor x = input.value().contiguous(), t = target.value().contiguous();
  const double div = static_cast<double>(x.numel());
  Tensor l = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pt = t.data<T>();
    T* pl = l.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) pl[i] = (px[i] - pt[i]) * (px[i] - pt[i]);
  });
  return make_result(reduce_loss(l, reduction, div), {input, target},
                     [x, t, reduction, div](const Tensor& g, const std::vector<bool>& need) {
    const Tensor u = upstream(g, reduction, x.shape(), div);
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *pt = t.data<T>(), *pu = u.data<T>();
      T* pd = dx.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) pd[i] = pu[i] * T(2) * (px[i] - pt[i]);
    });
    return std::vector<Tensor>{need[0] ? dx : Tensor{}, need[1] ? negated(dx) : Tensor{}};
  }, "mse_loss");
}

Var l1_loss(const Var& input, const Var& target, Reduction reduction) {
  check_pair(input, target, "l1_loss");
  check_reduction(reduction, "l1_loss");
  const Tensor x = input.value().contiguous(), t = target.value().contiguous();
  const double div = static_cast<double>(x.numel());
  Tensor l = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pt = t.data<T>();
    T* pl = l.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) pl[i] = std::abs(px[i] - pt[i]);
  });
  return make_result(reduce_loss(l, reduction, div), {input, target},
                     [x, t, reduction, div](const Tensor& g, const std::vector<bool>& need) {
    const Tensor u = upstream(g, reduction, x.shape(), div);
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *pt = t.data<T>(), *pu = u.data<T>();
      T* pd = dx.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const T d = px[i] - pt[i];
        pd[i] = d > T(0) ? pu[i] : (d < T(0) ? -pu[i] : T(0));
      }
    });
    return std::vector<Tensor>{need[0] ? dx : Tensor{}, need[1] ? negated(dx) : Tensor{}};
  }, "l1_loss");
}

// ------------------------------------------------------------------------------------------------------
// cross_entropy with class indices.
// logits z (N,C,S), logp = log_softmax(z) over C, target y (N,S):
//   l[n,s] = (1-eps) (-logp[n,y,s]) + eps/C sum_c (-logp[n,c,s])        (0 where y == ignore_index)
//   dz[n,c,s] = u[n,s] (softmax[n,c,s] - eps/C - (1-eps) [c == y])        (0 where y == ignore_index)

Var cross_entropy(const Var& logits, const Tensor& target0, int64_t ignore_index, double label_smoothing,
                  Reduction reduction) {
  const char* op = "cross_entropy";
  check_float(logits.value(), op, "logits");
  check_reduction(reduction, op);
  SSMKIT_CHECK(target0.defined() && target0.dtype() == DType::I64, op,
               ": target must be an I64 tensor of class indices (for class probabilities pass a Var), got ",
               target0.defined() ? dtype_name(target0.dtype()) : "undefined");
  SSMKIT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
               label_smoothing);
  const ClassLayout L = class_layout(logits.shape(), op);
  SSMKIT_CHECK(target0.shape() == L.pos_shape, op, ": target ", shape_str(target0.shape()), " must be ",
               shape_str(L.pos_shape), " for logits ", shape_str(logits.shape()));
  const Tensor y = target0.contiguous();
  const int64_t* py = y.data<int64_t>();
  const int64_t P = L.N * L.S, C = L.C, S = L.S;
  int64_t count = 0;
  for (int64_t p = 0; p < P; ++p) {
    if (py[p] == ignore_index) continue;
    SSMKIT_CHECK(py[p] >= 0 && py[p] < C, op, ": target ", py[p], " at position ", p, " is out of range for ", C,
                 " classes (ignore_index is ", ignore_index, ")");
    ++count;
  }
  const double eps = label_smoothing, div = static_cast<double>(count);
  const Tensor logp = log_softmax_forward(logits.value(), L.class_dim);
  Tensor l = Tensor::empty(L.pos_shape, logp.dtype());
  dispatch_float(logp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* lp = logp.data<T>();
    T* pl = l.data<T>();
#pragma omp parallel for schedule(static) if (P * C > 65536)
    for (int64_t p = 0; p < P; ++p) {
      if (py[p] == ignore_index) continue;
      const T* row = lp + (p / S) * C * S + p % S;  // logp[n, :, s], elements S apart
      double smooth = 0;
      if (eps > 0)
        for (int64_t c = 0; c < C; ++c) smooth -= row[c * S];
      pl[p] = static_cast<T>((1 - eps) * -static_cast<double>(row[py[p] * S]) + eps / static_cast<double>(C) * smooth);
    }
  });
  return make_result(reduce_loss(l, reduction, div), {logits},
                     [logp, y, L, ignore_index, eps, reduction, div](const Tensor& g, const std::vector<bool>&) {
    const Tensor u = upstream(g, reduction, L.pos_shape, div);
    Tensor dz = Tensor::empty(logp.shape(), logp.dtype());  // zeros: ignored positions get no gradient
    const int64_t P = L.N * L.S, C = L.C, S = L.S;
    const int64_t* py = y.data<int64_t>();
    dispatch_float(logp.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *lp = logp.data<T>(), *pu = u.data<T>();
      T* pd = dz.data<T>();
      const T off = static_cast<T>(eps / static_cast<double>(C)), on = static_cast<T>(1 - eps);
#pragma omp parallel for schedule(static) if (P * C > 65536)
      for (int64_t p = 0; p < P; ++p) {
        if (py[p] == ignore_index) continue;
        const int64_t o = (p / S) * C * S + p % S;
        for (int64_t c = 0; c < C; ++c) pd[o + c * S] = pu[p] * (std::exp(lp[o + c * S]) - off);
        pd[o + py[p] * S] -= pu[p] * on;
      }
    });
    return std::vector<Tensor>{dz};
  }, op);
}

// ------------------------------------------------------------------------------------------------------
// cross_entropy with class probabilities. q = (1-eps) t + eps/C:
//   l[n,s] = -sum_c q[n,c,s] logp[n,c,s]
//   dz[n,c,s] = u[n,s] (softmax[n,c,s] sum_c' q[n,c',s] - q[n,c,s]),  dt[n,c,s] = -u[n,s] (1-eps) logp[n,c,s]

Var cross_entropy(const Var& logits, const Var& target_probs, double label_smoothing, Reduction reduction) {
  const char* op = "cross_entropy";
  check_pair(logits, target_probs, op);
  check_reduction(reduction, op);
  SSMKIT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
               label_smoothing);
  const ClassLayout L = class_layout(logits.shape(), op);
  const Tensor t = target_probs.value().contiguous();
  const Tensor logp = log_softmax_forward(logits.value(), L.class_dim);
  const int64_t P = L.N * L.S, C = L.C, S = L.S;
  const double eps = label_smoothing, div = static_cast<double>(P);
  Tensor l = Tensor::empty(L.pos_shape, logp.dtype());
  dispatch_float(logp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *lp = logp.data<T>(), *pt = t.data<T>();
    T* pl = l.data<T>();
#pragma omp parallel for schedule(static) if (P * C > 65536)
    for (int64_t p = 0; p < P; ++p) {
      const int64_t o = (p / S) * C * S + p % S;
      double s = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double q = (1 - eps) * pt[o + c * S] + eps / static_cast<double>(C);
        s -= q * lp[o + c * S];
      }
      pl[p] = static_cast<T>(s);
    }
  });
  return make_result(reduce_loss(l, reduction, div), {logits, target_probs},
                     [logp, t, L, eps, reduction, div](const Tensor& g, const std::vector<bool>& need) {
    const Tensor u = upstream(g, reduction, L.pos_shape, div);
    const int64_t P = L.N * L.S, C = L.C, S = L.S;
    Tensor dz, dt;
    if (need[0]) dz = Tensor::empty(logp.shape(), logp.dtype());
    if (need[1]) dt = Tensor::empty(logp.shape(), logp.dtype());
    dispatch_float(logp.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *lp = logp.data<T>(), *pt = t.data<T>(), *pu = u.data<T>();
      T* pdz = need[0] ? dz.data<T>() : nullptr;
      T* pdt = need[1] ? dt.data<T>() : nullptr;
      const T off = static_cast<T>(eps / static_cast<double>(C)), on = static_cast<T>(1 - eps);
#pragma omp parallel for schedule(static) if (P * C > 65536)
      for (int64_t p = 0; p < P; ++p) {
        const int64_t o = (p / S) * C * S + p % S;
        if (pdz) {
          double qsum = 0;
          for (int64_t c = 0; c < C; ++c) qsum += on * pt[o + c * S] + off;
          for (int64_t c = 0; c < C; ++c) {
            const int64_t i = o + c * S;
            pdz[i] = pu[p] * (std::exp(lp[i]) * static_cast<T>(qsum) - (on * pt[i] + off));
          }
        }
        if (pdt)
          for (int64_t c = 0; c < C; ++c) pdt[o + c * S] = -pu[p] * on * lp[o + c * S];
      }
    });
    return std::vector<Tensor>{dz, dt};
  }, op);
}

// ------------------------------------------------------------------------------------------------------
// binary_cross_entropy_with_logits. sp = softplus(-x), lw = 1 + (pw - 1) t:
//   l = w ((1-t) x + lw sp);  dx = u w ((1-t) - lw sigmoid(-x));  dt = u w (-x + (pw - 1) sp)

Var binary_cross_entropy_with_logits(const Var& input, const Var& target, const Tensor& pos_weight,
                                     Reduction reduction, const Tensor& weight) {
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(input, target, op);
  check_reduction(reduction, op);
  const Tensor x = input.value().contiguous(), t = target.value().contiguous();
  const Tensor pw = expand_to(pos_weight, x.shape(), x.dtype(), op, "pos_weight");
  const Tensor w = expand_to(weight, x.shape(), x.dtype(), op, "weight");
  const double div = static_cast<double>(x.numel());
  Tensor l = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pt = t.data<T>(), *ppw = pw.data<T>(), *pw8 = w.data<T>();
    T* pl = l.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const T lw = T(1) + (ppw[i] - T(1)) * pt[i];
      pl[i] = pw8[i] * ((T(1) - pt[i]) * px[i] + lw * softplus_neg(px[i]));
    }
  });
  return make_result(reduce_loss(l, reduction, div), {input, target},
                     [x, t, pw, w, reduction, div](const Tensor& g, const std::vector<bool>& need) {
    const Tensor u = upstream(g, reduction, x.shape(), div);
    Tensor dx, dt;
    if (need[0]) dx = Tensor::empty(x.shape(), x.dtype());
    if (need[1]) dt = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *pt = t.data<T>(), *ppw = pw.data<T>(), *pw8 = w.data<T>(), *pu = u.data<T>();
      T* pdx = need[0] ? dx.data<T>() : nullptr;
      T* pdt = need[1] ? dt.data<T>() : nullptr;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const T uw = pu[i] * pw8[i];
        if (pdx) {
          const T lw = T(1) + (ppw[i] - T(1)) * pt[i];
          pdx[i] = uw * ((T(1) - pt[i]) - lw * sigmoid_of(-px[i]));
        }
        if (pdt) pdt[i] = uw * (-px[i] + (ppw[i] - T(1)) * softplus_neg(px[i]));
      }
    });
    return std::vector<Tensor>{dx, dt};
  }, op);
}

// ------------------------------------------------------------------------------------------------------
// kl_div. log_target false: l = t log t - t x (0 log 0 = 0);  dx = -u t;  dt = u (log t + 1 - x)
//         log_target true:  l = e^t (t - x);                  dx = -u e^t; dt = u e^t (t - x + 1)

Var kl_div(const Var& input, const Var& target, Reduction reduction, bool log_target) {
  const char* op = "kl_div";
  check_pair(input, target, op);
  const Tensor x = input.value().contiguous(), t = target.value().contiguous();
  const double div = reduction == Reduction::BatchMean ? static_cast<double>(x.ndim() > 0 ? x.size(0) : 1)
                                                       : static_cast<double>(x.numel());
  Tensor l = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pt = t.data<T>();
    T* pl = l.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (log_target)
        pl[i] = std::exp(pt[i]) * (pt[i] - px[i]);
      else
        pl[i] = (pt[i] == T(0) ? T(0) : pt[i] * std::log(pt[i])) - pt[i] * px[i];
    }
  });
  return make_result(reduce_loss(l, reduction, div), {input, target},
                     [x, t, reduction, div, log_target](const Tensor& g, const std::vector<bool>& need) {
    const Tensor u = upstream(g, reduction, x.shape(), div);
    Tensor dx, dt;
    if (need[0]) dx = Tensor::empty(x.shape(), x.dtype());
    if (need[1]) dt = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *pt = t.data<T>(), *pu = u.data<T>();
      T* pdx = need[0] ? dx.data<T>() : nullptr;
      T* pdt = need[1] ? dt.data<T>() : nullptr;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const T q = log_target ? std::exp(pt[i]) : pt[i];  // the target as a probability
        if (pdx) pdx[i] = -pu[i] * q;
        if (pdt) {
          if (log_target)
            pdt[i] = pu[i] * q * (pt[i] - px[i] + T(1));
          else
            pdt[i] = pu[i] * ((pt[i] == T(0) ? T(0) : std::log(pt[i]) + T(1)) - px[i]);
        }
      }
    });
    return std::vector<Tensor>{dx, dt};
  }, op);
}

}  // namespace ssmkit::core
