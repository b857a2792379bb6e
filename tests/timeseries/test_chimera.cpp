// Chimera and SiMBA-TS forecasters (timeseries/chimera.h, simba_ts.h): output shapes of every token / head /
// seasonal variant, the variate-direction bookkeeping of the 2-D scan heads (reverse-only = flip, forward-only,
// flip; bidirectional with shared parameters is equivariant under a variate flip, with separate A it is not;
// bidirectional sum = forward + reverse), finite-difference gradient checks in double of parameters of every
// block type, config JSON round trips through the factory (forecast_model.h) that rebuild identical models, bad
// options throwing, time marks as extra variate rows, and a few dozen Adam steps overfitting one batch.
#include <algorithm>
#include <cmath>

#include "forecast_test_util.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/timeseries/chimera.h"
#include "ssmkit/timeseries/forecast_model.h"
#include "ssmkit/timeseries/simba_ts.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using core::Var;
using nlohmann::json;
using ssmkit::test::expect_error;
using ssmkit::test::forecast_dims;
using ssmkit::test::marks_for;
using ssmkit::test::OneThread;
using ssmkit::test::random_tensor;
using timeseries::Chimera;
using timeseries::ChimeraConfig;
using timeseries::ForecastDims;
using timeseries::ForecastModel;
using timeseries::SimbaTS;
using timeseries::SimbaTSConfig;

namespace {

// A small Chimera: D 8, N 2, patches of 4 with stride 2 (L 12 -> 6 patches).
json tiny_chimera(json extra = json::object()) {
  json c{{"d_model", 8}, {"d_state", 2}, {"patch_len", 4}, {"patch_stride", 2}, {"d_conv", 2}, {"e_layers", 1}};
  c.update(extra);
  return c;
}

std::shared_ptr<Chimera> chimera(const ForecastDims& d, const json& cfg, uint64_t seed = 1) {
  core::Rng rng(seed);
  return std::make_shared<Chimera>(d, ChimeraConfig::from_json(cfg), rng);
}

std::shared_ptr<SimbaTS> simba(const ForecastDims& d, const json& cfg, uint64_t seed = 1) {
  core::Rng rng(seed);
  return std::make_shared<SimbaTS>(d, SimbaTSConfig::from_json(cfg), rng);
}

Tensor run(const ForecastModel& m, const Tensor& x, const Var& xm = {}) {
  core::NoGradGuard ng;
  return m.forward(Var(x), xm).value();
}

// x (B,L,C) -> x with the variate (channel) axis reversed; also for outputs (B,H,C).
Tensor flip_c(const Tensor& x) {
  core::NoGradGuard ng;
  return core::flip(Var(x), {2}).value();
}

// Copies every parameter of `from` into `to` (same keys).
void copy_params(const core::Module& from, core::Module& to) { to.load_state_dict(from.state_dict()); }

// Every named parameter must get a gradient; rtol 2e-5 (the 2-D scan heads' longer chains).
void gradcheck_params(ForecastModel& m, const std::vector<std::string>& names) {
  ssmkit::test::gradcheck_params(m, names, 2e-5, true);
}

// Adam on one fixed batch; returns (first loss, last loss).
std::pair<double, double> overfit(ForecastModel& m, int steps, double lr) {
  OneThread one;
  const ForecastDims& d = m.dims();
  const int64_t B = 8, L = d.seq_len, H = d.pred_len, C = d.n_channels;
  Tensor x = Tensor::empty({B, L, C}), y = Tensor::empty({B, H, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const double ph = 0.7 * b + 1.3 * c, amp = 1.0 + 0.3 * c, per = 5.0 + b % 3;
      for (int64_t t = 0; t < L + H; ++t) {
        const float v = static_cast<float>(amp * std::sin(2 * M_PI * t / per + ph) + 0.05 * t);
        if (t < L) x.at<float>({b, t, c}) = v;
        else y.at<float>({b, t - L, c}) = v;
      }
    }
  Var xm = marks_for(m, B, 5);
  m.train();
  core::Adam opt(core::single_param_group(m, lr));
  double first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Var loss = core::mse_loss(m.forward(Var(x), xm), Var(y));
    loss.backward();
    opt.step();
    last = loss.value().to_double_vector()[0];
    if (s == 0) first = last;
  }
  return {first, last};
}

}  // namespace

// --- shapes ------------------------------------------------------------------------------------------------

TEST(Chimera, ShapesOfEveryVariant) {
  const ForecastDims d = forecast_dims(12, 5, 3);
  Tensor x = random_tensor({2, 12, 3}, 1, -1, 1, DType::F32);
  auto m = chimera(d, tiny_chimera());
  EXPECT_EQ(m->n_patches(), 6);  // (12 - 4) / 2 + 1 + 1 (end padding)
  EXPECT_EQ(run(*m, x).shape(), (core::Shape{2, 5, 3}));
  for (const json& extra :
       {json{{"patch_len", 1}, {"patch_stride", 1}}, json{{"patch_pad", false}}, json{{"head", "mean"}},
        json{{"head", "last"}}, json{{"seasonal", "lag"}}, json{{"seasonal", "none"}}, json{{"d_conv", 0}},
        json{{"direction_merge", "concat"}, {"share_direction_A", false}}, json{{"variate_scan", "reverse"}},
        json{{"discretization", "state_zoh"}, {"expand", 2}, {"e_layers", 2}}, json{{"revin", false}}}) {
    auto v = chimera(d, tiny_chimera(extra));
    Tensor y = run(*v, x);
    EXPECT_EQ(y.shape(), (core::Shape{2, 5, 3})) << extra.dump();
    for (double e : y.to_double_vector()) ASSERT_TRUE(std::isfinite(e)) << extra.dump();
  }
  EXPECT_EQ(chimera(d, tiny_chimera({{"patch_len", 1}, {"patch_stride", 1}}))->n_patches(), 12);
  EXPECT_EQ(chimera(d, tiny_chimera({{"patch_pad", false}}))->n_patches(), 5);
  // seasonal lag: one season (period 4) of stride-2 patches = 2 grid steps; explicit lags are kept
  EXPECT_EQ(chimera(d, tiny_chimera({{"seasonal", "lag"}}))->seasonal_lag(), 2);
  EXPECT_EQ(chimera(d, tiny_chimera({{"seasonal", "lag"}, {"seasonal_lag", 3}}))->seasonal_lag(), 3);
  EXPECT_EQ(chimera(d, tiny_chimera({{"seasonal", "delta"}}))->seasonal_lag(), 1);
  // a season longer than the window (period 24 = 12 grid steps >= 6): the lag stays 1
  EXPECT_EQ(chimera(forecast_dims(12, 5, 3, 0, 24), tiny_chimera({{"seasonal", "lag"}}))->seasonal_lag(), 1);
  EXPECT_FALSE(m->uses_marks());
}

TEST(Chimera, ParameterNames) {
  auto m = chimera(forecast_dims(12, 5, 3), tiny_chimera({{"share_direction_A", false}, {"direction_merge", "concat"}}));
  std::vector<std::string> keys;
  for (const auto& [k, t] : m->state_dict()) keys.push_back(k);
  for (const char* k : {"embed.weight", "embed.bias", "layers.0.D", "layers.0.norm.weight", "layers.0.in_proj.weight",
                        "layers.0.conv1d.weight", "layers.0.conv1d.bias", "layers.0.trend.A1_log",
                        "layers.0.trend.A4_log_rev", "layers.0.trend.x_proj.weight", "layers.0.trend.dt1_proj.bias",
                        "layers.0.trend.dt2_proj.weight", "layers.0.trend.merge.weight", "layers.0.seasonal.A2_log",
                        "layers.0.out_proj.weight", "norm.weight", "head.weight", "head.bias"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  // shapes: x_proj rows [dt1 | dt2 | B1 | B2 | C1 | C2] = 2R + 4N with R = ceil(8/16) = 1, N = 2
  EXPECT_EQ(m->layers[0]->trend->x_proj->weight.shape(), (core::Shape{10, 8}));
  EXPECT_EQ(m->head->weight.shape(), (core::Shape{5, 6 * 8}));
  // Δ init: softplus(dt bias) within the configured ranges (trend 1e-3..1e-1, seasonal 1e-1..1, variates 0.5..2)
  auto dt_range = [](const Var& bias) {
    std::vector<double> v = bias.value().to_double_vector();
    for (double& e : v) e = std::log1p(std::exp(e));
    return std::pair<double, double>{*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
  };
  auto [t_lo, t_hi] = dt_range(m->layers[0]->trend->dt1_proj->bias);
  auto [s_lo, s_hi] = dt_range(m->layers[0]->seasonal->dt1_proj->bias);
  auto [v_lo, v_hi] = dt_range(m->layers[0]->trend->dt2_proj->bias);
  EXPECT_GE(t_lo, 1e-3 * 0.999);
  EXPECT_LE(t_hi, 1e-1 * 1.001);
  EXPECT_GE(s_lo, 1e-1 * 0.999);
  EXPECT_LE(s_hi, 1.0 * 1.001);
  EXPECT_GE(v_lo, 0.5 * 0.999);
  EXPECT_LE(v_hi, 2.0 * 1.001);
  // A_log S4D-real: A = -(n + 1)
  EXPECT_NEAR(m->layers[0]->trend->A1_log.value().at<float>({3, 1}), std::log(2.0), 1e-6);
}

TEST(SimbaTS, ShapesOfEveryVariant) {
  const ForecastDims d = forecast_dims(12, 5, 3, 2);
  Tensor x = random_tensor({2, 12, 3}, 2, -1, 1, DType::F32);
  json base{{"d_model", 8}, {"d_state", 2}, {"e_layers", 1}};
  auto m = simba(d, base);
  EXPECT_TRUE(m->uses_marks());
  EXPECT_EQ(m->n_tokens(), 5);  // 3 variates + 2 marks
  EXPECT_EQ(run(*m, x, marks_for(*m, 2, 3)).shape(), (core::Shape{2, 5, 3}));
  json nomarks = base;
  nomarks["use_marks"] = false;
  auto m2 = simba(d, nomarks);
  EXPECT_FALSE(m2->uses_marks());
  EXPECT_EQ(m2->n_tokens(), 3);
  EXPECT_EQ(run(*m2, x).shape(), (core::Shape{2, 5, 3}));
  json patch = nomarks;
  patch.update(json{{"tokens", "patch"}, {"patch_len", 4}, {"patch_stride", 4}, {"bidirectional", false}});
  auto m3 = simba(d, patch);
  EXPECT_EQ(m3->n_tokens(), 4);  // (12 - 4) / 4 + 1 + 1
  Tensor y = run(*m3, x);
  EXPECT_EQ(y.shape(), (core::Shape{2, 5, 3}));
  for (double e : y.to_double_vector()) ASSERT_TRUE(std::isfinite(e));
}

// --- variate directions ----------------------------------------------------------------------------------

TEST(Chimera, VariateDirectionBookkeeping) {
  const ForecastDims d = forecast_dims(12, 5, 4);
  Tensor x = random_tensor({2, 12, 4}, 3, -2, 2);  // F64
  auto prep = [](std::shared_ptr<Chimera> m) {
    m->to(DType::F64);
    m->eval();
    return m;
  };
  // reverse-only with the forward-only model's parameters = flip, forward-only, flip back
  auto fwd = prep(chimera(d, tiny_chimera({{"variate_scan", "forward"}, {"seasonal", "lag"}})));
  auto rev = prep(chimera(d, tiny_chimera({{"variate_scan", "reverse"}, {"seasonal", "lag"}}), 99));
  copy_params(*fwd, *rev);
  const double tol = 1e-10;
  EXPECT_LE(core::max_abs_diff(run(*rev, x), flip_c(run(*fwd, flip_c(x)))), tol);
  // a one-direction scan really depends on the variate order
  EXPECT_GT(core::max_abs_diff(run(*fwd, flip_c(x)), flip_c(run(*fwd, x))), 1e-4);
  // bidirectional, one parameter set for both directions, summed: equivariant under a variate flip
  auto bi = prep(chimera(d, tiny_chimera({{"seasonal", "lag"}})));
  EXPECT_LE(core::max_abs_diff(run(*bi, flip_c(x)), flip_c(run(*bi, x))), tol);
  // with a separate A for the reversed direction (made different), not any more
  auto bi_sep = prep(chimera(d, tiny_chimera({{"seasonal", "lag"}, {"share_direction_A", false}})));
  {
    core::NoGradGuard ng;
    for (auto& [name, p] : bi_sep->named_parameters())
      if (name.find("_rev") != std::string::npos) p.value().add_(random_tensor(p.shape(), 7, 0.5, 1.0));
  }
  EXPECT_GT(core::max_abs_diff(run(*bi_sep, flip_c(x)), flip_c(run(*bi_sep, x))), 1e-4);
}

// use_marks: the F time-mark features are F more variate rows of the grid, after the C variates, and only the
// C variates are forecast. Without RevIN that is exactly the same model run on concat(x, x_mark) (C + F
// variates; no parameter depends on the number of variates) with its last F outputs dropped.
TEST(Chimera, TimeMarksAreExtraVariateRows) {
  const int64_t B = 2, L = 12, H = 5, C = 3, F = 2;
  const json cfg = tiny_chimera({{"seasonal", "lag"}, {"revin", false}});
  json with_marks = cfg;
  with_marks["use_marks"] = true;
  auto m = chimera(forecast_dims(L, H, C, F), with_marks);
  auto plain = chimera(forecast_dims(L, H, C + F), cfg, 42);
  EXPECT_TRUE(m->uses_marks());
  EXPECT_FALSE(chimera(forecast_dims(L, H, C, F), cfg)->uses_marks());
  m->to(DType::F64);
  plain->to(DType::F64);
  m->eval();
  plain->eval();
  copy_params(*m, *plain);
  Tensor x = random_tensor({B, L, C}, 21, -2, 2), xm = random_tensor({B, L, F}, 22, -0.5, 0.5);
  Tensor y = run(*m, x, Var(xm));
  EXPECT_EQ(y.shape(), (core::Shape{B, H, C}));
  Tensor y_plain;
  {
    core::NoGradGuard ng;
    y_plain = core::slice(plain->forward(core::concat({Var(x), Var(xm)}, 2)), 2, 0, C).value();
  }
  EXPECT_LE(core::max_abs_diff(y, y_plain), 1e-12);
  // the forecasts really depend on the marks
  Tensor xm2 = random_tensor({B, L, F}, 23, -0.5, 0.5);
  EXPECT_GT(core::max_abs_diff(y, run(*m, x, Var(xm2))), 1e-4);
  // with RevIN (the default) the variates are normalized and the marks are not: still C outputs, finite
  json revin = with_marks;
  revin["revin"] = true;
  auto mr = chimera(forecast_dims(L, H, C, F), revin);
  Tensor yr = run(*mr, x.to(DType::F32), marks_for(*mr, B, 24));
  EXPECT_EQ(yr.shape(), (core::Shape{B, H, C}));
  for (double e : yr.to_double_vector()) ASSERT_TRUE(std::isfinite(e));
  // gradients reach the embedding through the mark rows too
  auto g = chimera(forecast_dims(L, 3, C, F), with_marks);
  gradcheck_params(*g, {"embed.weight", "layers.0.trend.A3_log", "layers.0.seasonal.x_proj.weight", "head.weight"});
}

TEST(Chimera, BidirectionalHeadIsForwardPlusReverse) {
  const int64_t B = 2, V = 3, T = 5;
  ChimeraConfig c = ChimeraConfig::from_json(tiny_chimera());
  core::Rng r1(4), r2(5), r3(6);
  timeseries::ChimeraHead both(c, 2, 1e-2, 1e-1, r1);
  c.variate_scan = "forward";
  timeseries::ChimeraHead f(c, 2, 1e-2, 1e-1, r2);
  c.variate_scan = "reverse";
  timeseries::ChimeraHead r(c, 2, 1e-2, 1e-1, r3);
  both.to(DType::F64);
  f.to(DType::F64);
  r.to(DType::F64);
  copy_params(both, f);
  copy_params(both, r);
  Tensor xc = random_tensor({B, V, T, 8}, 8);
  Var x_cell(xc), x_grid(xc.permute({0, 3, 1, 2}).contiguous());
  core::NoGradGuard ng;
  Tensor yb = both.forward(x_cell, x_grid).value();
  Tensor ys = core::add(f.forward(x_cell, x_grid), r.forward(x_cell, x_grid)).value();
  EXPECT_EQ(yb.shape(), (core::Shape{B, 8, V, T}));
  EXPECT_LE(core::max_abs_diff(yb, ys), 1e-12);
}

// --- gradients -------------------------------------------------------------------------------------------

TEST(Chimera, GradcheckEveryBlockType) {
  // both heads, lagged seasonal head, separate reverse A, concat merge, conv, flatten head
  auto m = chimera(forecast_dims(12, 3, 3), tiny_chimera({{"seasonal", "lag"},
                                                    {"share_direction_A", false},
                                                    {"direction_merge", "concat"},
                                                    {"discretization", "axis_zoh"}}));
  gradcheck_params(*m, {"embed.weight", "embed.bias", "layers.0.D", "layers.0.norm.weight", "layers.0.in_proj.weight",
                        "layers.0.conv1d.weight", "layers.0.trend.A1_log", "layers.0.trend.A2_log",
                        "layers.0.trend.A3_log_rev", "layers.0.trend.A4_log_rev", "layers.0.trend.x_proj.weight",
                        "layers.0.trend.dt1_proj.bias", "layers.0.trend.dt2_proj.weight", "layers.0.trend.merge.weight",
                        "layers.0.seasonal.A1_log", "layers.0.seasonal.dt1_proj.weight", "norm.bias", "head.bias"});
  // the default layout (sum of directions, shared A), per-cell tokens, mean head, state pairing
  auto m2 = chimera(forecast_dims(8, 3, 3), tiny_chimera({{"patch_len", 1}, {"patch_stride", 1}, {"head", "mean"},
                                                    {"discretization", "state_euler"}}));
  gradcheck_params(*m2, {"embed.weight", "layers.0.trend.A2_log", "layers.0.trend.A3_log",
                         "layers.0.seasonal.x_proj.weight", "layers.0.seasonal.dt2_proj.bias", "head.bias"});
}

TEST(SimbaTS, GradcheckEveryBlockType) {
  auto m = simba(forecast_dims(12, 3, 3, 2), {{"d_model", 8}, {"d_state", 2}, {"e_layers", 1}});
  gradcheck_params(*m, {"embed.weight", "layers.0.norm1.weight", "layers.0.mamba.in_proj.weight",
                        "layers.0.mamba.A_log", "layers.0.mamba.conv1d.weight", "layers.0.mamba_r.dt_proj.bias",
                        "layers.0.mamba_r.x_proj.weight", "layers.0.norm2.bias", "layers.0.einfft.complex_weight_1",
                        "layers.0.einfft.complex_bias_2", "norm.weight", "head.weight"});
  auto m2 = simba(forecast_dims(12, 3, 2),
                  {{"d_model", 8}, {"d_state", 2}, {"e_layers", 1}, {"tokens", "patch"}, {"use_marks", false},
                   {"patch_len", 4}, {"patch_stride", 4}});
  gradcheck_params(*m2, {"embed.weight", "layers.0.mamba.out_proj.weight", "layers.0.einfft.complex_weight_2",
                         "head.weight"});
}

// --- configs ---------------------------------------------------------------------------------------------

TEST(Chimera, ConfigRoundTripRebuildsTheModel) {
  const ForecastDims d = forecast_dims(12, 5, 3, 0, 4);
  auto m = chimera(d, tiny_chimera({{"seasonal", "lag"}, {"direction_merge", "concat"}, {"share_direction_A", false},
                                    {"trend_dt_max", 0.05}, {"cross_A_scale", 3.0}, {"head", "last"}}));
  const json cfg = m->config();
  EXPECT_EQ(cfg["model"], "chimera");
  EXPECT_EQ(cfg["seq_len"], 12);
  EXPECT_EQ(cfg["period"], 4);
  // every option is recorded, and the JSON survives a text round trip
  const json chimera_defaults = ChimeraConfig{}.to_json();
  for (const auto& item : chimera_defaults.items()) EXPECT_TRUE(cfg.contains(item.key())) << item.key();
  core::Rng rng(77);
  std::shared_ptr<ForecastModel> m2 = timeseries::make_forecast_model_from_config(json::parse(cfg.dump()), rng);
  EXPECT_EQ(m2->model_name(), "chimera");
  EXPECT_EQ(m2->config(), cfg);
  m2->load_state_dict(m->state_dict());  // strict: same keys and shapes
  Tensor x = random_tensor({2, 12, 3}, 9, -1, 1, DType::F32);
  m->eval();
  m2->eval();
  EXPECT_EQ(core::max_abs_diff(run(*m, x), run(*m2, x)), 0.0);
}

TEST(SimbaTS, ConfigRoundTripRebuildsTheModel) {
  const ForecastDims d = forecast_dims(12, 5, 3, 2);
  auto m = simba(d, {{"d_model", 8}, {"d_state", 3}, {"e_layers", 2}, {"bidirectional", false}, {"d_conv", 3}});
  const json cfg = m->config();
  EXPECT_EQ(cfg["model"], "simba");
  const json simba_defaults = SimbaTSConfig{}.to_json();
  for (const auto& item : simba_defaults.items()) EXPECT_TRUE(cfg.contains(item.key())) << item.key();
  core::Rng rng(78);
  std::shared_ptr<ForecastModel> m2 = timeseries::make_forecast_model_from_config(json::parse(cfg.dump()), rng);
  EXPECT_EQ(m2->model_name(), "simba");
  EXPECT_EQ(m2->config(), cfg);
  m2->load_state_dict(m->state_dict());
  Tensor x = random_tensor({2, 12, 3}, 10, -1, 1, DType::F32);
  Var xm = marks_for(*m, 2, 11);
  m->eval();
  m2->eval();
  EXPECT_EQ(core::max_abs_diff(run(*m, x, xm), run(*m2, x, xm)), 0.0);
}

TEST(Chimera, BadOptionsThrow) {
  const ForecastDims d = forecast_dims(12, 5, 3, 0, 24);
  auto make = [&](const json& c) { return chimera(d, c); };
  expect_error([&] { make({{"d_modle", 8}}); }, "unknown key \"d_modle\"");
  expect_error([&] { make({{"d_modle", 8}}); }, "d_model");  // the known keys are listed
  expect_error([&] { make({{"d_model", 0}}); }, "\"d_model\" must be positive");
  expect_error([&] { make({{"d_state", "16"}}); }, "\"d_state\" must be an integer");
  expect_error([&] { make({{"variate_scan", "both"}}); }, "\"variate_scan\" must be");
  expect_error([&] { make({{"direction_merge", "mean"}}); }, "\"direction_merge\"");
  expect_error([&] { make({{"seasonal", "fourier"}}); }, "\"seasonal\"");
  expect_error([&] { make({{"discretization", "bilinear"}}); }, "\"discretization\" must be one of");
  expect_error([&] { make({{"head", "attention"}}); }, "\"head\"");
  expect_error([&] { make({{"trend_dt_min", 0.5}, {"trend_dt_max", 0.1}}); }, "trend_dt_min");
  expect_error([&] { make({{"dropout", 1.0}}); }, "\"dropout\" must be in [0, 1)");
  expect_error([&] { make({{"patch_len", 16}}); }, "\"patch_len\" 16 exceeds seq_len 12");
  // an explicit lag must fit the 6 grid steps of L 12 with patches 4 / stride 2
  expect_error([&] { make(tiny_chimera({{"seasonal", "lag"}, {"seasonal_lag", 6}})); },
               "\"seasonal_lag\" 6 is not below");
  expect_error([&] { make(json::array()); }, "expected a JSON object");
  expect_error([&] { timeseries::make_forecast_model("chimera", d, {{"n_layers", 2}}); }, "unknown key \"n_layers\"");
  // the factory's defaults are ChimeraConfig's
  EXPECT_EQ(timeseries::make_forecast_model("chimera", forecast_dims(96, 24, 3, 0, 24))->config()["d_model"],
            ChimeraConfig{}.d_model);
  // bad inputs at forward
  auto m = chimera(forecast_dims(12, 5, 3), tiny_chimera());
  expect_error([&] { run(*m, Tensor::zeros({2, 12, 4})); }, "x must be (B,12,3)");
}

TEST(SimbaTS, BadOptionsThrow) {
  const ForecastDims d = forecast_dims(12, 5, 3);
  auto make = [&](const json& c) { return simba(d, c); };
  expect_error([&] { make({{"layers", 2}}); }, "unknown key \"layers\"");
  expect_error([&] { timeseries::make_forecast_model("simba", d, {{"d_model", 6}}); }, "multiple of 4");
  expect_error([&] { make({{"d_model", 10}}); }, "multiple of 4");
  expect_error([&] { make({{"tokens", "cell"}}); }, "\"tokens\"");
  expect_error([&] { make({{"tokens", "patch"}}); }, "\"use_marks\" needs tokens \"variate\"");
  expect_error([&] { make({{"bidirectional", 1}}); }, "\"bidirectional\" must be true or false");
  expect_error([&] { make({{"tokens", "patch"}, {"use_marks", false}, {"patch_len", 13}}); }, "exceeds seq_len");
}

// --- training --------------------------------------------------------------------------------------------

TEST(Chimera, OverfitsOneBatch) {
  auto m = chimera(forecast_dims(24, 8, 3), tiny_chimera({{"d_model", 16}, {"d_state", 4}, {"dropout", 0.0},
                                                    {"head_dropout", 0.0}}));
  auto [first, last] = overfit(*m, 40, 1e-2);
  std::printf("chimera overfit: loss %.4f -> %.5f\n", first, last);
  EXPECT_LT(last, first / 20);
}

TEST(SimbaTS, OverfitsOneBatch) {
  auto m = simba(forecast_dims(24, 8, 3, 2), {{"d_model", 16}, {"d_state", 4}, {"e_layers", 1}, {"dropout", 0.0}});
  auto [first, last] = overfit(*m, 40, 1e-2);
  std::printf("simba overfit: loss %.4f -> %.5f\n", first, last);
  EXPECT_LT(last, first / 20);
}
