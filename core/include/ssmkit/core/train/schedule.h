// Learning-rate schedules as pure functions of the step or epoch count t, so that a resumed run recomputes
// exactly the lr of the uninterrupted one: timm's CosineLRScheduler (linear warmup + cosine to lr_min, with
// cycles), nnU-Net's PolyLRScheduler, torch.optim.lr_scheduler.StepLR and the Time-Series-Library's
// `adjust_learning_rate` type1 halving. Each returns the lr for one base lr; apply it per parameter group
// (Optimizer::set_lr(g, f(group(g).initial_lr, ...))).
// Not here: stateful schedulers (ReduceLROnPlateau), noise, warmup of non-linear shape.
#pragma once

#include <cstdint>

namespace ssmkit::core {

// timm.scheduler.CosineLRScheduler. t counts epochs (t_in_epochs, timm's default: step(epoch + 1) after
// each epoch, so epoch e trains with cosine_lr(e)) or optimizer updates (step_update(num_updates)); t_initial
// and warmup_t are in the same unit. timm's create_scheduler_v2 with updates_per_epoch U and
// t_in_epochs = false uses t_initial = epochs * U and warmup_t = warmup_epochs * U.
struct CosineSchedule {
  double t_initial = 0;        // length of the (first) cycle; > 0
  double lr_min = 0.0;         // floor reached at the end of a cycle (absolute, not scaled by base lr)
  double warmup_t = 0;         // linear warmup length
  double warmup_lr_init = 0.0; // lr at t = 0 during warmup
  bool warmup_prefix = false;  // false (timm default): warmup overlaps the first cycle, whose cosine starts
                               // at t = 0; true: the cosine starts after the warmup
  double cycle_mul = 1.0;      // each cycle is cycle_mul times longer than the previous one
  double cycle_decay = 1.0;    // the peak lr of cycle i is base_lr * cycle_decay^i
  int64_t cycle_limit = 1;     // after this many cycles the lr stays at lr_min
  double k_decay = 1.0;        // cos(pi * t_curr^k / t_i^k)
};
// t < warmup_t: warmup_lr_init + t * (base_lr - warmup_lr_init) / warmup_t;
// else (t -= warmup_t when warmup_prefix) in cycle i at t_curr of length t_i:
// lr_min + 0.5 (base_lr cycle_decay^i - lr_min) (1 + cos(pi t_curr^k / t_i^k)), or lr_min once i >= cycle_limit.
double cosine_lr(const CosineSchedule& s, double base_lr, double t);

// nnU-Net PolyLRScheduler: initial_lr * (1 - step / max_steps)^exponent (step counts epochs in nnU-Net,
// which calls scheduler.step(current_epoch) at each epoch start). 0 <= step <= max_steps.
double poly_lr(double initial_lr, double step, double max_steps, double exponent = 0.9);

// torch.optim.lr_scheduler.StepLR: base_lr * gamma^floor(epoch / step_size) for 0-based epoch.
double step_lr(double base_lr, int64_t epoch, int64_t step_size, double gamma = 0.1);

// Time-Series-Library utils/tools.py adjust_learning_rate, lradj == 'type1' (see tslib_type1_lr in
// schedule.cpp for the quoted rule): the lr set after finishing 1-based `epoch` (>= 1): lr0 * 0.5^(epoch - 1).
// The first call (after epoch 1) leaves lr0, so epochs 1 and 2 both train with lr0 and epoch e >= 2 with
// lr0 * 0.5^(e - 2).
double tslib_type1_lr(double lr0, int64_t epoch);
// The lr that TSLib trains 1-based epoch `epoch` with under type1: lr0 for epochs 1 and 2, then halving.
double tslib_type1_lr_during(double lr0, int64_t epoch);

}  // namespace ssmkit::core
