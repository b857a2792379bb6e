// Learning-rate schedules at known steps: timm CosineLRScheduler (warmup, lr_min, warmup_prefix, cycles,
// cycle_mul, k_decay), nnU-Net poly, StepLR and the Time-Series-Library type1 halving. Expected values are
// worked out by hand from the reference formulas (decimal literals computed in double).
#include <gtest/gtest.h>

#include "ssmkit/core/error.h"
#include "ssmkit/core/train/schedule.h"

using namespace ssmkit::core;

TEST(Schedule, CosineWithWarmup) {
  CosineSchedule s;
  s.t_initial = 10;
  s.lr_min = 0.001;
  s.warmup_t = 2;
  s.warmup_lr_init = 1e-4;
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 0), 1e-4);
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 1), 0.05005);  // 1e-4 + (0.1 - 1e-4) / 2
  // After warmup the cosine continues from its own t (timm's default warmup_prefix = false):
  // 0.001 + 0.5 * 0.099 * (1 + cos(0.2 pi)).
  EXPECT_NEAR(cosine_lr(s, 0.1, 2), 0.090546341221559898, 1e-15);
  EXPECT_NEAR(cosine_lr(s, 0.1, 5), 0.001 + 0.5 * 0.099, 1e-15);  // cos(pi/2) = 0
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 10), 0.001);                 // past the only cycle: lr_min
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 25), 0.001);
  // Fractional t (per-step use with t in epochs) interpolates.
  EXPECT_NEAR(cosine_lr(s, 0.1, 0.5), 1e-4 + 0.5 * (0.1 - 1e-4) / 2, 1e-15);
}

TEST(Schedule, CosineWarmupPrefixShiftsTheCosine) {
  CosineSchedule s;
  s.t_initial = 10;
  s.warmup_t = 3;
  s.warmup_prefix = true;
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 3), 0.1);  // cosine starts at its peak right after warmup
  EXPECT_NEAR(cosine_lr(s, 0.1, 8), 0.05, 1e-15);
  EXPECT_NEAR(cosine_lr(s, 0.1, 12.999999), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 13), 0.0);
}

TEST(Schedule, CosineCycles) {
  CosineSchedule s;
  s.t_initial = 10;
  s.lr_min = 0.001;
  s.cycle_limit = 2;
  s.cycle_decay = 0.5;
  // Second cycle restarts at base * 0.5 with t_curr = t - 10.
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 10), 0.05);
  EXPECT_NEAR(cosine_lr(s, 0.1, 12), 0.045320916362186214, 1e-15);
  EXPECT_DOUBLE_EQ(cosine_lr(s, 0.1, 20), 0.001);
  // cycle_mul 2: cycles of 10 then 20; t = 15 is 5 into the second one: 0.5 * 0.1 * (1 + cos(pi / 4)).
  CosineSchedule m;
  m.t_initial = 10;
  m.cycle_mul = 2;
  m.cycle_limit = 3;
  EXPECT_NEAR(cosine_lr(m, 0.1, 15), 0.085355339059327379, 1e-15);
  // k_decay 2: cos(pi * 5^2 / 10^2).
  CosineSchedule k;
  k.t_initial = 10;
  k.k_decay = 2;
  EXPECT_NEAR(cosine_lr(k, 0.1, 5), 0.085355339059327379, 1e-15);
}

TEST(Schedule, CosineBadArgumentsThrow) {
  CosineSchedule s;
  EXPECT_THROW(cosine_lr(s, 0.1, 0), Error);  // t_initial 0
  s.t_initial = 10;
  EXPECT_THROW(cosine_lr(s, 0.1, -1), Error);
}

TEST(Schedule, PolyNnUNet) {
  EXPECT_DOUBLE_EQ(poly_lr(0.01, 0, 1000), 0.01);
  EXPECT_NEAR(poly_lr(0.01, 500, 1000), 0.0053588673126814656, 1e-17);  // 0.01 * 0.5^0.9
  EXPECT_DOUBLE_EQ(poly_lr(0.01, 1000, 1000), 0.0);
  EXPECT_DOUBLE_EQ(poly_lr(1.0, 3, 4, 1.0), 0.25);
  EXPECT_THROW(poly_lr(0.01, 1001, 1000), Error);
  EXPECT_THROW(poly_lr(0.01, 0, 0), Error);
}

TEST(Schedule, StepLR) {
  EXPECT_DOUBLE_EQ(step_lr(0.1, 0, 30), 0.1);
  EXPECT_DOUBLE_EQ(step_lr(0.1, 29, 30), 0.1);
  EXPECT_NEAR(step_lr(0.1, 30, 30), 0.01, 1e-17);
  EXPECT_NEAR(step_lr(0.1, 65, 30), 0.001, 1e-17);
  EXPECT_DOUBLE_EQ(step_lr(1.0, 5, 2, 0.5), 0.25);
  EXPECT_THROW(step_lr(0.1, 3, 0), Error);
}

TEST(Schedule, TimeSeriesLibraryType1) {
  // The value set after 1-based epoch e: lr0 * 0.5^(e - 1).
  EXPECT_DOUBLE_EQ(tslib_type1_lr(1e-4, 1), 1e-4);
  EXPECT_DOUBLE_EQ(tslib_type1_lr(1e-4, 2), 5e-5);
  EXPECT_DOUBLE_EQ(tslib_type1_lr(1e-4, 3), 2.5e-5);
  EXPECT_DOUBLE_EQ(tslib_type1_lr(1e-4, 10), 1e-4 / 512);
  // The lr each epoch trains with: epochs 1 and 2 at lr0, then halving.
  EXPECT_DOUBLE_EQ(tslib_type1_lr_during(1e-4, 1), 1e-4);
  EXPECT_DOUBLE_EQ(tslib_type1_lr_during(1e-4, 2), 1e-4);
  EXPECT_DOUBLE_EQ(tslib_type1_lr_during(1e-4, 3), 5e-5);
  EXPECT_DOUBLE_EQ(tslib_type1_lr_during(1e-4, 4), 2.5e-5);
  EXPECT_THROW(tslib_type1_lr(1e-4, 0), Error);
  EXPECT_THROW(tslib_type1_lr_during(1e-4, 0), Error);
}
