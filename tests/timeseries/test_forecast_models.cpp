// The forecasters of timeseries/ (forecast_model.h): shapes, DLinear's decomposition and seasonal-naive by
// hand, finite-difference gradient checks in double of parameters of every trainable model, S-Mamba against a
// dump of the official PyTorch model (tests/data/timeseries/smamba_ref.safetensors, made by
// tests/timeseries/tools/make_smamba_ref.py), config JSON round trips through the factory, and bad names/keys.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "forecast_test_util.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/timeseries/dlinear.h"
#include "ssmkit/timeseries/forecast_model.h"
#include "ssmkit/timeseries/s4d_forecaster.h"
#include "ssmkit/timeseries/seasonal_naive.h"
#include "ssmkit/timeseries/smamba.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using core::Var;
using ssmkit::test::expect_error;
using ssmkit::test::gradcheck_params;
using ssmkit::test::marks_for;
using ssmkit::test::random_tensor;
using timeseries::ForecastDims;
using timeseries::ForecastModel;

namespace {

ForecastDims tiny_dims(int64_t L = 12, int64_t H = 5, int64_t C = 3, int64_t F = 0, int64_t P = 4) {
  return ssmkit::test::forecast_dims(L, H, C, F, P);
}


// config() -> make_forecast_model_from_config -> load the weights -> identical outputs and config.
void expect_round_trip(ForecastModel& m) {
  m.eval();
  const nlohmann::json cfg = m.config();
  core::Rng other(999);
  auto r = timeseries::make_forecast_model_from_config(nlohmann::json::parse(cfg.dump()), other);
  EXPECT_EQ(r->config(), cfg);
  EXPECT_EQ(r->model_name(), m.model_name());
  r->load_state_dict(m.state_dict());
  r->eval();
  const ForecastDims& d = m.dims();
  Var x(random_tensor({3, d.seq_len, d.n_channels}, 21, -2, 2, DType::F32));
  Var xm = marks_for(m, 3, 22, DType::F32);
  core::NoGradGuard ng;
  EXPECT_EQ(core::max_abs_diff(m.forward(x, xm).value(), r->forward(x, xm).value()), 0.0) << m.model_name();
}

}  // namespace

// --- DLinear --------------------------------------------------------------------------------------------

TEST(DLinear, DecompositionByHand) {
  // x = 1 2 4 7 11, k = 3: padded 1 1 2 4 7 11 11 -> trend 4/3 7/3 13/3 22/3 29/3
  Var x(Tensor::from_vector({1, 5, 1}, std::vector<double>{1, 2, 4, 7, 11}));
  auto d = timeseries::series_decomp(x, 3);
  ssmkit::test::expect_near(d.trend.value().to_double_vector(), {4. / 3, 7. / 3, 13. / 3, 22. / 3, 29. / 3}, 1e-12,
                            "trend");
  ssmkit::test::expect_near(d.seasonal.value().to_double_vector(), {-1. / 3, -1. / 3, -1. / 3, -1. / 3, 4. / 3},
                            1e-12, "seasonal");
  // k = 5 on a 3-row series: every window clamps to the edges. Two channels are independent.
  Var y(Tensor::from_vector({1, 3, 2}, std::vector<double>{1, 10, 2, 20, 6, 60}));
  auto e = timeseries::series_decomp(y, 5);
  // padded rows ch0: 1 1 1 2 6 6 6 -> (1+1+1+2+6)/5, (1+1+2+6+6)/5, (1+2+6+6+6)/5
  ssmkit::test::expect_near(e.trend.value().to_double_vector(), {11. / 5, 110. / 5, 16. / 5, 160. / 5, 21. / 5, 210. / 5},
                            1e-12, "trend k5");
  expect_error([&] { timeseries::series_decomp(x, 4); }, "odd");
}

TEST(DLinear, InitialModelIsWindowMeanPlusBiases) {
  // TSLib starts both weights at 1/L, so out[h,c] = mean_t x[t,c] + bias_s[h] + bias_t[h] (seasonal + trend = x).
  auto m = timeseries::make_forecast_model("dlinear", tiny_dims(12, 5, 3));
  auto& dl = dynamic_cast<timeseries::DLinear&>(*m);
  EXPECT_EQ(m->state_dict().size(), 4u);
  EXPECT_EQ(m->state_dict()[0].first, "Linear_Seasonal.weight");
  EXPECT_EQ(m->state_dict()[3].first, "Linear_Trend.bias");
  Var x(random_tensor({2, 12, 3}, 3, -2, 2, DType::F32));
  Var out = m->forward(x, Var{});
  ASSERT_EQ(out.shape(), (core::Shape{2, 5, 3}));
  auto xv = x.value().to_double_vector(), ov = out.value().to_double_vector();
  auto bs = dl.Linear_Seasonal->bias.value().to_double_vector(), bt = dl.Linear_Trend->bias.value().to_double_vector();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 3; ++c) {
      double mean = 0;
      for (int64_t t = 0; t < 12; ++t) mean += xv[static_cast<size_t>((b * 12 + t) * 3 + c)] / 12;
      for (int64_t h = 0; h < 5; ++h)
        EXPECT_NEAR(ov[static_cast<size_t>((b * 5 + h) * 3 + c)], mean + bs[h] + bt[h], 1e-5) << b << "," << h << "," << c;
    }
  for (double bias : bs) EXPECT_LE(std::abs(bias), 1 / std::sqrt(12.0));  // nn.Linear default U(+-1/sqrt(L))
}

TEST(DLinear, Gradients) {
  auto m = timeseries::make_forecast_model("dlinear", tiny_dims(9, 4, 2), {{"moving_avg", 5}});
  gradcheck_params(*m, {});
  auto ind = timeseries::make_forecast_model("dlinear", tiny_dims(9, 4, 2), {{"individual", true}, {"moving_avg", 3}});
  EXPECT_EQ(ind->state_dict()[0].first, "Linear_Seasonal.0.weight");
  EXPECT_EQ(ind->state_dict().size(), 8u);
  gradcheck_params(*ind, {});
}

// --- seasonal-naive ------------------------------------------------------------------------------------

TEST(SeasonalNaive, RepeatsTheLastSeason) {
  auto m = timeseries::make_forecast_model("seasonal-naive", tiny_dims(6, 6, 2, 0, 4));
  EXPECT_FALSE(m->trainable());
  EXPECT_TRUE(m->parameters().empty());
  // x[t, c] = 10 t + c; last season rows 2..5 -> outputs rows 2,3,4,5,2,3
  std::vector<double> v;
  for (int t = 0; t < 6; ++t)
    for (int c = 0; c < 2; ++c) v.push_back(10 * t + c);
  Var out = m->forward(Var(Tensor::from_vector({1, 6, 2}, v)), Var{});
  EXPECT_EQ(out.value().to_double_vector(), (std::vector<double>{20, 21, 30, 31, 40, 41, 50, 51, 20, 21, 30, 31}));
  expect_error([] { timeseries::make_forecast_model("seasonal-naive", tiny_dims(6, 6, 2, 0, 7)); }, "period 7");
}

// --- S4D forecaster ------------------------------------------------------------------------------------

TEST(S4DForecaster, ShapesKeysAndGradients) {
  nlohmann::json opt = {{"d_model", 6}, {"n_layers", 2}, {"d_state", 4}, {"dropout", 0.1}};
  auto m = timeseries::make_forecast_model("s4d", tiny_dims(10, 4, 3), opt);
  EXPECT_FALSE(m->uses_marks());
  auto sd = m->state_dict();
  EXPECT_EQ(sd.front().first, "encoder.weight");
  EXPECT_EQ(sd.back().first, "decoder.bias");
  EXPECT_EQ(m->named_parameters().size(), 2u + 2u * (2u + 7u) + 2u);  // encoder, 2 x (norm + S4D), decoder
  Var out = m->forward(Var(random_tensor({2, 10, 3}, 5, -2, 2, DType::F32)), Var{});
  EXPECT_EQ(out.shape(), (core::Shape{2, 4, 3}));
  // Instance norm: shifting and scaling a channel's window shifts and scales its forecast (eval mode).
  m->eval();
  core::NoGradGuard ng0;
  Tensor x = random_tensor({1, 10, 3}, 6, -2, 2);
  m->to(DType::F64);
  Tensor x2 = x.clone();
  for (int64_t t = 0; t < 10; ++t) x2.at<double>({0, t, 1}) = 3 * x.at<double>({0, t, 1}) + 5;
  auto y = m->forward(Var(x), Var{}).value(), y2 = m->forward(Var(x2), Var{}).value();
  for (int64_t h = 0; h < 4; ++h) {
    EXPECT_NEAR(y2.at<double>({0, h, 1}), 3 * y.at<double>({0, h, 1}) + 5, 1e-3);  // up to the eps in the std
    EXPECT_NEAR(y2.at<double>({0, h, 0}), y.at<double>({0, h, 0}), 1e-12);         // channels are independent
  }
}

TEST(S4DForecaster, Gradients) {
  nlohmann::json opt = {{"d_model", 4}, {"n_layers", 2}, {"d_state", 4}};
  auto m = timeseries::make_forecast_model("s4d", tiny_dims(8, 3, 2), opt);
  gradcheck_params(*m, {"encoder.weight", "norms.0.bias", "s4_layers.0.kernel.log_dt", "s4_layers.1.kernel.C",
                        "s4_layers.1.D", "s4_layers.1.output_linear.0.weight", "decoder.bias"});
}

// --- S-Mamba -------------------------------------------------------------------------------------------

TEST(SMamba, ShapesKeysAndGradients) {
  nlohmann::json opt = {{"d_model", 8}, {"d_ff", 12}, {"e_layers", 2}, {"d_state", 3}};
  auto m = timeseries::make_forecast_model("smamba", tiny_dims(10, 4, 3, 2), opt);
  EXPECT_TRUE(m->uses_marks());
  auto sd = m->state_dict();
  EXPECT_EQ(sd.front().first, "enc_embedding.value_embedding.weight");
  EXPECT_EQ(sd[2].first, "encoder.attn_layers.0.attention.A_log");
  EXPECT_EQ(sd.back().first, "projector.bias");
  Var out = m->forward(Var(random_tensor({2, 10, 3}, 5, -2, 2, DType::F32)),
                       Var(random_tensor({2, 10, 2}, 6, -0.5, 0.5, DType::F32)));
  EXPECT_EQ(out.shape(), (core::Shape{2, 4, 3}));
  expect_error([&] { m->forward(Var(Tensor::zeros({2, 10, 3})), Var{}); }, "x_mark must be (2,10,2)");
  gradcheck_params(*m, {"enc_embedding.value_embedding.bias", "encoder.attn_layers.0.attention.A_log",
                        "encoder.attn_layers.0.attention.in_proj.weight", "encoder.attn_layers.1.attention_r.dt_proj.bias",
                        "encoder.attn_layers.0.conv1.weight", "encoder.attn_layers.1.norm2.weight", "encoder.norm.bias",
                        "projector.weight"});
  // Without marks (n_marks 0) the tokens are the C channels only.
  auto nm = timeseries::make_forecast_model("smamba", tiny_dims(10, 4, 3, 0), opt);
  EXPECT_EQ(nm->forward(Var(random_tensor({1, 10, 3}, 5, -2, 2, DType::F32)), Var{}).shape(), (core::Shape{1, 4, 3}));
}

TEST(SMamba, MatchesTheOfficialModel) {
  // Made by tests/timeseries/tools/make_smamba_ref.py from the official model/S_Mamba.py (float64, eval).
  auto f = core::load_safetensors(std::string(SSMKIT_TEST_DATA_DIR) + "/timeseries/smamba_ref.safetensors");
  const nlohmann::json cfg = nlohmann::json::parse(f.meta("config"));
  // The official state_dict, minus the unused man/man2/a modules, is exactly ours, in order.
  core::NamedTensors official;
  for (const auto& k : nlohmann::json::parse(f.meta("official_keys"))) official.emplace_back(k.get<std::string>(), Tensor{});
  auto kept = timeseries::smamba_drop_unused_keys(official);
  EXPECT_LT(kept.size(), official.size());
  auto probe = timeseries::make_forecast_model_from_config(cfg);
  auto sd = probe->state_dict();
  ASSERT_EQ(kept.size(), sd.size());
  for (size_t i = 0; i < sd.size(); ++i) EXPECT_EQ(kept[i].first, sd[i].first);

  for (DType dt : {DType::F64, DType::F32}) {
    auto m = timeseries::make_forecast_model_from_config(cfg);
    m->to(dt);
    m->eval();
    core::NamedTensors params;
    for (const auto& [name, t] : f.tensors)
      if (name.rfind("param.", 0) == 0) params.emplace_back(name.substr(6), t);
    m->load_state_dict(params);
    Var x(f.get("input.x").to(dt)), xm(f.get("input.x_mark").to(dt));
    Var out = m->forward(x, xm);
    const Tensor& want = f.get("output");
    const double rel = dt == DType::F64 ? 1e-10 : 1e-5;
    double err = core::max_abs_diff(out.value(), want) / core::max_abs(want);
    EXPECT_LE(err, rel) << core::dtype_name(dt) << " output";
    core::sum(core::square(out)).backward();
    double worst = 0;
    for (const auto& [name, p] : m->named_parameters()) {
      const Tensor& g = f.get("grad." + name);
      ASSERT_TRUE(p.grad().defined()) << name;
      double e = core::max_abs_diff(p.grad(), g) / std::max(core::max_abs(g), 1e-3);
      worst = std::max(worst, e);
      EXPECT_LE(e, dt == DType::F64 ? 1e-9 : 1e-5) << core::dtype_name(dt) << " grad " << name;
    }
    std::printf("S-Mamba vs official (%s): output rel err %.3g, worst gradient rel err %.3g\n", core::dtype_name(dt),
                err, worst);
  }
}

// --- factory -------------------------------------------------------------------------------------------

TEST(ForecastFactory, NamesConfigsAndErrors) {
  auto names = timeseries::forecast_model_names();
  for (const char* n : {"dlinear", "seasonal-naive", "s4d", "smamba"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  expect_error([] { timeseries::make_forecast_model("prophet", tiny_dims()); }, "unknown model \"prophet\"");
  expect_error([] { timeseries::make_forecast_model("prophet", tiny_dims()); }, "dlinear");
  expect_error([] { timeseries::make_forecast_model("dlinear", tiny_dims(), {{"kernel", 3}}); },
               "unknown key \"kernel\"; expected one of moving_avg, individual");
  expect_error([] { timeseries::make_forecast_model("dlinear", tiny_dims(), {{"moving_avg", "x"}}); },
               "\"moving_avg\" must be an integer");
  expect_error([] { timeseries::make_forecast_model("seasonal-naive", tiny_dims(), {{"moving_avg", 3}}); },
               "unknown key \"moving_avg\"");
  expect_error([] { timeseries::make_forecast_model("dlinear", tiny_dims(0)); }, "seq_len 0");
  expect_error([] { timeseries::make_forecast_model_from_config({{"seq_len", 3}}); }, "no \"model\"");
  expect_error([] { timeseries::make_forecast_model_from_config({{"model", "dlinear"}, {"seq_len", 3}}); },
               "lacks \"pred_len\"");
  // dims keys and "model" are accepted (ignored) in the options
  auto m = timeseries::make_forecast_model("dlinear", tiny_dims(), {{"model", "dlinear"}, {"seq_len", 1000}});
  EXPECT_EQ(m->dims().seq_len, 12);
  // wrong input shapes name the model and the expected shape
  expect_error([&] { m->forward(Var(Tensor::zeros({2, 11, 3})), Var{}); }, "dlinear: x must be (B,12,3)");
}

TEST(ForecastFactory, ConfigRoundTrip) {
  auto dl = timeseries::make_forecast_model("dlinear", tiny_dims(), {{"moving_avg", 7}});
  EXPECT_EQ(dl->config(), (nlohmann::json{{"model", "dlinear"}, {"seq_len", 12}, {"pred_len", 5}, {"enc_in", 3},
                                          {"n_marks", 0}, {"period", 4}, {"moving_avg", 7}, {"individual", false}}));
  expect_round_trip(*dl);
  expect_round_trip(*timeseries::make_forecast_model("dlinear", tiny_dims(), {{"individual", true}}));
  expect_round_trip(*timeseries::make_forecast_model("seasonal-naive", tiny_dims()));
  expect_round_trip(*timeseries::make_forecast_model("s4d", tiny_dims(), {{"d_model", 5}, {"d_state", 6}}));
  expect_round_trip(*timeseries::make_forecast_model("smamba", tiny_dims(12, 5, 3, 2),
                                                     {{"d_model", 8}, {"d_ff", 4}, {"activation", "relu"}}));
  // defaults are written out in full
  auto sm = timeseries::make_forecast_model("smamba", ForecastDims{});
  EXPECT_EQ(sm->config()["d_model"], 256);
  EXPECT_EQ(sm->config()["d_state"], 2);
  EXPECT_EQ(sm->config()["activation"], "gelu");
  expect_error([] { timeseries::make_forecast_model("smamba", tiny_dims(), {{"activation", "tanh"}}); },
               "\"activation\" must be \"gelu\" or \"relu\"");
  expect_error([] { timeseries::make_forecast_model("s4d", tiny_dims(), {{"d_state", 5}}); }, "even");
}
