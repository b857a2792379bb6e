// Learning-rate schedules: timm CosineLRScheduler._get_lr, nnU-Net PolyLRScheduler.step, StepLR's closed
// form and the Time-Series-Library type1 halving, each a pure function of the step or epoch count.
// Not here: applying them to an optimizer (one line per group at the call site).
#include "ssmkit/core/train/schedule.h"

#include <cmath>
#include <numbers>

#include "ssmkit/core/error.h"

namespace ssmkit::core {

double cosine_lr(const CosineSchedule& s, double base_lr, double t) {
  SSMKIT_CHECK(s.t_initial > 0, "cosine_lr: t_initial must be positive, got ", s.t_initial);
  SSMKIT_CHECK(s.warmup_t >= 0 && t >= 0, "cosine_lr: warmup_t and t must be >= 0, got warmup_t ", s.warmup_t,
               ", t ", t);
  SSMKIT_CHECK(s.cycle_mul > 0, "cosine_lr: cycle_mul must be positive, got ", s.cycle_mul);
  if (t < s.warmup_t) return s.warmup_lr_init + t * (base_lr - s.warmup_lr_init) / s.warmup_t;
  if (s.warmup_prefix) t -= s.warmup_t;
  double i, t_i, t_curr;
  if (s.cycle_mul != 1.0) {
    i = std::floor(std::log(1 - t / s.t_initial * (1 - s.cycle_mul)) / std::log(s.cycle_mul));
    t_i = std::pow(s.cycle_mul, i) * s.t_initial;
    t_curr = t - (1 - std::pow(s.cycle_mul, i)) / (1 - s.cycle_mul) * s.t_initial;
  } else {
    i = std::floor(t / s.t_initial);  // Python's t // t_initial for t >= 0
    t_i = s.t_initial;
    t_curr = t - s.t_initial * i;
  }
  if (i >= static_cast<double>(s.cycle_limit)) return s.lr_min;
  const double lr_max = base_lr * std::pow(s.cycle_decay, i);
  const double k = s.k_decay;
  return s.lr_min +
         0.5 * (lr_max - s.lr_min) * (1 + std::cos(std::numbers::pi * std::pow(t_curr, k) / std::pow(t_i, k)));
}

double poly_lr(double initial_lr, double step, double max_steps, double exponent) {
  SSMKIT_CHECK(max_steps > 0, "poly_lr: max_steps must be positive, got ", max_steps);
  SSMKIT_CHECK(step >= 0 && step <= max_steps, "poly_lr: step ", step, " outside [0, max_steps = ", max_steps, "]");
  return initial_lr * std::pow(1 - step / max_steps, exponent);
}

double step_lr(double base_lr, int64_t epoch, int64_t step_size, double gamma) {
  SSMKIT_CHECK(step_size > 0, "step_lr: step_size must be positive, got ", step_size);
  SSMKIT_CHECK(epoch >= 0, "step_lr: epoch must be >= 0, got ", epoch);
  return base_lr * std::pow(gamma, static_cast<double>(epoch / step_size));
}

// Time-Series-Library (thuml/Time-Series-Library, utils/tools.py):
//     def adjust_learning_rate(optimizer, epoch, args):
//         if args.lradj == 'type1':
//             lr_adjust = {epoch: args.learning_rate * (0.5 ** ((epoch - 1) // 1))}
// called as adjust_learning_rate(model_optim, epoch + 1, self.args) after each (0-based) training epoch.
// Spec /work/shared/specs/timeseries.md §5.5: "then lr schedule `type1`: lr ← lr0·0.5^(epoch−1) applied
// after epoch `epoch` (halving every epoch)."
double tslib_type1_lr(double lr0, int64_t epoch) {
  SSMKIT_CHECK(epoch >= 1, "tslib_type1_lr: epoch is 1-based, got ", epoch);
  return lr0 * std::pow(0.5, static_cast<double>(epoch - 1));
}

double tslib_type1_lr_during(double lr0, int64_t epoch) {
  SSMKIT_CHECK(epoch >= 1, "tslib_type1_lr_during: epoch is 1-based, got ", epoch);
  return epoch == 1 ? lr0 : tslib_type1_lr(lr0, epoch - 1);
}

}  // namespace ssmkit::core
