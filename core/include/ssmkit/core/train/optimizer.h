// Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW; single-tensor path), parameter
// groups with timm's weight-decay split (param_groups_weight_decay plus Mamba's `_no_weight_decay` names),
// and gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_).
// Updates run under NoGradGuard, in place on the parameters' values; a parameter whose gradient is
// undefined is skipped (its state and step count do not advance), as in PyTorch.
// Not here: maximize, foreach/fused kernels, sparse gradients, LR schedulers (see train/schedule.h).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/module.h"

namespace ssmkit::core {

// Marks a group's weight_decay as "use the optimizer's default" (PyTorch: the key is absent from the group).
inline constexpr double kDefaultWeightDecay = std::numeric_limits<double>::quiet_NaN();

// A set of parameters sharing hyper-parameters (PyTorch's param_groups entry).
struct ParamGroup {
  std::vector<std::pair<std::string, Var>> params;  // (state_dict name, parameter); names unique per optimizer
  double lr = 1e-3;
  double weight_decay = kDefaultWeightDecay;  // NaN: the optimizer's default (options.weight_decay)
  double initial_lr = -1.0;  // the lr schedules start from; set to lr by the optimizer when negative
  std::string name;          // for logs: "decay", "no_decay", ...
};

// True for the parameter names that Mamba / VMamba flag `_no_weight_decay`: the last dotted component
// is one of A_log, A_logs, D, Ds.
bool is_ssm_no_weight_decay_name(const std::string& name);

// timm's param_groups_weight_decay plus the SSM names: every trainable parameter (requires_grad) with
// ndim <= 1 (norm weights, biases, D), a name ending in ".bias" (or equal to "bias"), a name for which
// is_ssm_no_weight_decay_name holds, or a name whose last component is in `extra_no_decay`, goes to
// group 0 ("no_decay", weight_decay 0); the rest go to group 1 ("decay", weight_decay). Both groups get
// `lr`, both are returned even when empty, and parameters keep their named_parameters() order.
std::vector<ParamGroup> default_param_groups(const Module& m, double weight_decay, double lr = 1e-3,
                                             const std::vector<std::string>& extra_no_decay = {});

// One group holding all trainable parameters of m (weight_decay: the optimizer's default unless given).
std::vector<ParamGroup> single_param_group(const Module& m, double lr = 1e-3,
                                           double weight_decay = kDefaultWeightDecay);

// ---------------------------------------------------------------------------------------------------------
// Optimizer: the groups and per-parameter state (lazily created on a parameter's first update), the
// checkpointable state_dict, lr access and zero_grad. Subclasses define the update.
class Optimizer {
 public:
  // Checks the groups (non-empty, unique names and parameters, contiguous F32/F64 values, lr >= 0) and
  // resolves each group's kDefaultWeightDecay to `default_weight_decay` and initial_lr < 0 to lr.
  Optimizer(std::vector<ParamGroup> groups, double default_weight_decay, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter that has a gradient.
  virtual void step() = 0;
  // Drops every parameter's gradient (PyTorch's set_to_none=True).
  void zero_grad();

  size_t n_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t g) const;
  ParamGroup& group(size_t g);
  double lr(size_t g = 0) const { return group(g).lr; }
  void set_lr(double lr);            // every group
  void set_lr(size_t g, double lr);  // one group
  std::vector<Var> parameters() const;  // all groups, in order (for clip_grad_norm_)

  // The state as tensors keyed by parameter name: "<param>.<state>" for each state tensor of each
  // parameter that has state (e.g. "fc.weight.exp_avg", "fc.weight.step" as an F64 scalar), plus
  // "param_groups.lr" (F64, (n_groups)). The tensors are the live state (not copies).
  NamedTensors state_dict() const;
  // Replaces the whole state with `source` (copied, converted to each parameter's dtype); parameters
  // absent from `source` start fresh. Unknown keys, shape mismatches, partial state or a wrong group
  // count throw Error naming `origin` and every problem; nothing is modified in that case.
  void load_state_dict(const NamedTensors& source, const std::string& origin = "optimizer state");

 protected:
  // Per-parameter state: `bufs` follow state_names(); `step` counts the updates applied (Adam family).
  struct ParamState {
    bool initialized = false;
    double step = 0;
    std::vector<Tensor> bufs;
  };
  // The names of a parameter's state tensors, in order (e.g. {"exp_avg", "exp_avg_sq"}).
  virtual std::vector<std::string> state_names() const = 0;
  // Whether the state holds a step count (saved as "<param>.step").
  virtual bool has_step() const = 0;
  ParamState& state(size_t g, size_t i) { return state_[g][i]; }

  std::vector<ParamGroup> groups_;
  const char* name_;  // "SGD", "Adam", "AdamW" (for error messages)

 private:
  std::vector<std::vector<ParamState>> state_;  // [group][param]
};

// torch.optim.SGD: g = grad + weight_decay * p; with momentum, buf = g on the first step, else
// buf = momentum * buf + (1 - dampening) * g, and g = nesterov ? g + momentum * buf : buf; p -= lr * g.
// State: "momentum_buffer" (only when momentum != 0).
struct SGDOptions {
  double weight_decay = 0.0;  // for groups that leave weight_decay at kDefaultWeightDecay
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions opt = {});
  void step() override;

 private:
  std::vector<std::string> state_names() const override;
  bool has_step() const override { return false; }
  SGDOptions opt_;
};

// torch.optim.Adam / AdamW. With t the parameter's step count after increment:
//   Adam:  g = grad + weight_decay * p          AdamW: p *= 1 - lr * weight_decay; g = grad
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  (amsgrad: vmax = max(vmax, v), use vmax)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// State: "exp_avg", "exp_avg_sq" (+ "max_exp_avg_sq" with amsgrad), "step".
// Defaults are PyTorch's: betas (0.9, 0.999), eps 1e-8, weight_decay 0 for Adam and 0.01 for AdamW.
struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // for groups that leave weight_decay at kDefaultWeightDecay
  bool amsgrad = false;
};
inline AdamOptions adamw_defaults() {
  AdamOptions o;
  o.weight_decay = 0.01;
  return o;
}
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions opt = {});
  void step() override;

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions opt, bool decoupled);

 private:
  std::vector<std::string> state_names() const override;
  bool has_step() const override { return true; }
  AdamOptions opt_;
  bool decoupled_;  // AdamW
};
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamOptions opt = adamw_defaults()) : Adam(std::move(groups), opt, true) {}
};

// ---------------------------------------------------------------------------------------------------------
// Gradient clipping (parameters without a gradient are ignored).

// torch.nn.utils.clip_grad_norm_: total = norm_type-norm of all gradients taken together (max |g| for
// norm_type = infinity); when max_norm / (total + 1e-6) < 1 every gradient is scaled by that factor.
// Returns total. A non-finite total throws Error when error_if_nonfinite (else gradients become nan/inf,
// as in PyTorch). Returns 0 when no parameter has a gradient.
double clip_grad_norm_(const std::vector<Var>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
// torch.nn.utils.clip_grad_value_: clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Var>& params, double clip_value);

}  // namespace ssmkit::core
