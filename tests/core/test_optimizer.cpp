// Optimizers against PyTorch's documented update rules (three steps of SGD with momentum / nesterov /
// dampening / weight decay, Adam with L2 and amsgrad, AdamW's decoupled decay; expected values computed
// by hand in double from the torch.optim formulas), parameter groups (timm + Mamba no-decay names),
// the optimizer state_dict round trip and its errors, and gradient clipping.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/optimizer.h"

using namespace ssmkit::core;

namespace {

Tensor vec(std::vector<double> v) { return Tensor::from_vector({static_cast<int64_t>(v.size())}, v); }

// A leaf parameter p = [1, -2] (F64) updated three times with the gradients G (independent of p).
const std::vector<std::vector<double>> kGrads = {{0.5, -0.1}, {-0.3, 0.2}, {0.2, 0.4}};

// Runs `make(groups)` on p = [1, -2] for the gradients `grads`, returning p after each step.
template <class MakeOpt>
std::vector<std::vector<double>> run(MakeOpt make, const std::vector<std::vector<double>>& grads = kGrads) {
  Var p(vec({1.0, -2.0}), true);
  ParamGroup g;
  g.params.emplace_back("p", p);
  g.lr = 0.0;  // set by make()
  std::unique_ptr<Optimizer> opt = make(std::vector<ParamGroup>{g});
  std::vector<std::vector<double>> out;
  for (const auto& gv : grads) {
    p.grad() = vec(gv);
    opt->step();
    out.push_back(p.value().to_double_vector());
  }
  return out;
}

void expect_steps(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want,
                  const char* what, double tol = 1e-14) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t s = 0; s < want.size(); ++s)
    for (size_t j = 0; j < want[s].size(); ++j)
      EXPECT_NEAR(got[s][j], want[s][j], tol) << what << " step " << s + 1 << " element " << j;
}

std::vector<ParamGroup> with_lr(std::vector<ParamGroup> g, double lr, double wd) {
  g[0].lr = lr;
  g[0].weight_decay = wd;
  return g;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// SGD: p -= lr * d, d = grad + wd p; buf = d (first) or momentum buf + (1 - dampening) d; nesterov d + m buf.

TEST(SGD, PlainStep) {
  auto got = run([](std::vector<ParamGroup> g) { return std::make_unique<SGD>(with_lr(g, 0.1, 0.0)); });
  expect_steps(got, {{0.95, -1.99}, {0.98, -2.01}, {0.96, -2.05}}, "sgd");
}

TEST(SGD, Momentum) {
  // buf: 0.5 -> 0.9*0.5 - 0.3 = 0.15 -> 0.135 + 0.2 = 0.335; p: 1 - 0.05, - 0.015, - 0.0335.
  auto got = run([](std::vector<ParamGroup> g) {
    SGDOptions o;
    o.momentum = 0.9;
    return std::make_unique<SGD>(with_lr(g, 0.1, 0.0), o);
  });
  expect_steps(got, {{0.95, -1.99}, {0.935, -2.001}, {0.9015, -2.0509}}, "sgd momentum");
}

TEST(SGD, Nesterov) {
  // d = g + 0.9 buf: 0.95, -0.165, 0.5015.
  auto got = run([](std::vector<ParamGroup> g) {
    SGDOptions o;
    o.momentum = 0.9;
    o.nesterov = true;
    return std::make_unique<SGD>(with_lr(g, 0.1, 0.0), o);
  });
  expect_steps(got, {{0.905, -1.981}, {0.9215, -2.0109}, {0.87135, -2.09581}}, "sgd nesterov");
}

TEST(SGD, DampeningAndWeightDecay) {
  auto got = run([](std::vector<ParamGroup> g) {
    SGDOptions o;
    o.momentum = 0.9;
    o.dampening = 0.25;
    return std::make_unique<SGD>(with_lr(g, 0.1, 0.01), o);
  });
  expect_steps(got,
               {{0.949, -1.988}, {0.92488825, -1.990709}, {0.8874940088125, -2.02165406825}},
               "sgd dampening + weight decay");
}

TEST(SGD, BadOptionsThrow) {
  Var p(vec({1.0}), true);
  ParamGroup g;
  g.params.emplace_back("p", p);
  SGDOptions o;
  o.nesterov = true;  // without momentum
  EXPECT_THROW(SGD({g}, o), Error);
  o.momentum = 0.9;
  o.dampening = 0.1;  // nesterov with dampening
  EXPECT_THROW(SGD({g}, o), Error);
  ParamGroup bad = g;
  bad.lr = -1;
  EXPECT_THROW(SGD({bad}), Error);
  ParamGroup twice = g;
  twice.params.emplace_back("q", p);  // the same parameter under two names
  try {
    SGD opt({twice});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"q\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(SGD(std::vector<ParamGroup>{}), Error);
}

// ---------------------------------------------------------------------------------------------------------
// Adam / AdamW

TEST(Adam, ThreeSteps) {
  // Step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected -> p -= lr * g / (|g| + eps) ~ lr sign(g).
  auto got = run([](std::vector<ParamGroup> g) { return std::make_unique<Adam>(with_lr(g, 0.01, 0.0)); });
  expect_steps(got,
               {{0.99000000020000001, -1.9900000009999999},
                {0.98808501989417752, -1.9936610360388489},
                {0.98461074307908825, -2.0006181172902586}},
               "adam");
}

TEST(Adam, L2WeightDecayAddedToGradient) {
  auto got = run([](std::vector<ParamGroup> g) { return std::make_unique<Adam>(with_lr(g, 0.01, 0.1)); });
  expect_steps(got,
               {{0.99000000016666667, -1.9900000003333334},
                {0.98601158616227824, -1.9833242722026891},
                {0.98049552657611794, -1.9826092593728957}},
               "adam weight decay");
}

TEST(Adam, AmsgradKeepsTheMaximum) {
  // v falls after the large first gradient of element 0, so amsgrad's max differs from step 2 on.
  const std::vector<std::vector<double>> grads = {{1.0, -0.1}, {0.01, 0.2}, {0.01, 0.4}};
  AdamOptions o;
  o.amsgrad = true;
  auto got = run([&](std::vector<ParamGroup> g) { return std::make_unique<Adam>(with_lr(g, 0.01, 0.0), o); }, grads);
  expect_steps(got,
               {{0.9900000001, -1.9900000009999999},
                {0.98322835510128204, -1.9936610360388489},
                {0.97793259045394787, -2.0006181172902586}},
               "adam amsgrad");
  auto plain = run([&](std::vector<ParamGroup> g) { return std::make_unique<Adam>(with_lr(g, 0.01, 0.0)); }, grads);
  EXPECT_NEAR(plain[2][0], 0.977924770912731, 1e-14);
}

TEST(AdamW, DecoupledWeightDecay) {
  // p *= 1 - lr wd before the Adam step on the raw gradient.
  auto got = run([](std::vector<ParamGroup> g) { return std::make_unique<AdamW>(with_lr(g, 0.01, 0.1)); });
  expect_steps(got,
               {{0.98900000020000001, -1.9880000009999999},
                {0.98609601989397755, -1.989673036037849},
                {0.98163564705899431, -1.9946404442532208}},
               "adamw");
}

TEST(AdamW, PyTorchDefaults) {
  Var p(vec({1.0}), true);
  ParamGroup g;
  g.params.emplace_back("p", p);
  AdamW w({g});
  EXPECT_DOUBLE_EQ(w.group(0).weight_decay, 0.01);  // AdamW default
  EXPECT_DOUBLE_EQ(w.group(0).lr, 1e-3);
  Adam a({g});
  EXPECT_DOUBLE_EQ(a.group(0).weight_decay, 0.0);  // Adam default
  ParamGroup explicit_wd = g;
  explicit_wd.weight_decay = 0.0;
  AdamW w0({explicit_wd});  // an explicit group value wins over the optimizer default
  EXPECT_DOUBLE_EQ(w0.group(0).weight_decay, 0.0);
}

TEST(Adam, Float32MatchesFloat64) {
  Var p32(vec({1.0, -2.0}).to(DType::F32), true), p64(vec({1.0, -2.0}), true);
  ParamGroup a, b;
  a.params.emplace_back("p", p32);
  b.params.emplace_back("p", p64);
  a.lr = b.lr = 0.01;
  AdamW o32({a}), o64({b});
  for (const auto& gv : kGrads) {
    p32.grad() = vec(gv).to(DType::F32);
    p64.grad() = vec(gv);
    o32.step();
    o64.step();
  }
  EXPECT_EQ(p32.value().dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(p32.value(), p64.value()), 1e-6);
}

TEST(Optimizer, LargeParametersMatchTheScalarFormulas) {
  // 40,001 elements (odd, so vector tails run; above the threading threshold), three steps of each
  // variant against the update written out element by element in double.
  const int64_t n = 40001;
  auto grad_at = [](int64_t j, int s) { return std::sin(0.37 * static_cast<double>(j) + s) * (1.0 + s); };
  auto p0_at = [](int64_t j) { return std::cos(0.11 * static_cast<double>(j)); };
  struct Variant {
    const char* name;
    std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)> make;
    std::function<std::vector<double>(int64_t)> want;  // element j after three steps
  };
  const double lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, mom = 0.9;
  auto adam_ref = [&](int64_t j, bool decoupled, bool ams) {
    double p = p0_at(j), m = 0, v = 0, vmax = 0;
    for (int s = 0; s < 3; ++s) {
      double g = grad_at(j, s);
      if (decoupled)
        p *= 1 - lr * wd;
      else
        g += wd * p;
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      vmax = std::max(vmax, v);
      const double t = s + 1;
      p -= lr / (1 - std::pow(b1, t)) * m / (std::sqrt(ams ? vmax : v) / std::sqrt(1 - std::pow(b2, t)) + eps);
    }
    return std::vector<double>{p};
  };
  auto sgd_ref = [&](int64_t j) {
    double p = p0_at(j), buf = 0;
    for (int s = 0; s < 3; ++s) {
      double d = grad_at(j, s) + wd * p;
      buf = s == 0 ? d : mom * buf + d;
      p -= lr * (d + mom * buf);
    }
    return std::vector<double>{p};
  };
  AdamOptions ams;
  ams.amsgrad = true;
  SGDOptions nesterov;
  nesterov.momentum = mom;
  nesterov.nesterov = true;
  const std::vector<Variant> variants = {
      {"AdamW", [&](std::vector<ParamGroup> g) { return std::make_unique<AdamW>(with_lr(g, lr, wd)); },
       [&](int64_t j) { return adam_ref(j, true, false); }},
      {"Adam amsgrad + L2", [&](std::vector<ParamGroup> g) { return std::make_unique<Adam>(with_lr(g, lr, wd), ams); },
       [&](int64_t j) { return adam_ref(j, false, true); }},
      {"SGD nesterov + L2",
       [&](std::vector<ParamGroup> g) { return std::make_unique<SGD>(with_lr(g, lr, wd), nesterov); },
       [&](int64_t j) { return sgd_ref(j); }}};
  for (const Variant& var : variants)
    for (DType dt : {DType::F64, DType::F32}) {
      std::vector<double> p0(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) p0[static_cast<size_t>(j)] = p0_at(j);
      Var p(Tensor::from_vector({n}, p0).to(dt), true);
      ParamGroup g;
      g.params.emplace_back("p", p);
      std::unique_ptr<Optimizer> opt = var.make({g});
      for (int s = 0; s < 3; ++s) {
        std::vector<double> gv(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) gv[static_cast<size_t>(j)] = grad_at(j, s);
        p.grad() = Tensor::from_vector({n}, gv).to(dt);
        opt->step();
      }
      const std::vector<double> got = p.value().to_double_vector();
      double worst = 0;
      for (int64_t j = 0; j < n; ++j) worst = std::max(worst, std::abs(got[static_cast<size_t>(j)] - var.want(j)[0]));
      EXPECT_LT(worst, dt == DType::F64 ? 1e-13 : 2e-6) << var.name << " " << dtype_name(dt);
    }
}

TEST(Optimizer, SkipsParametersWithoutGradient) {
  Var a(vec({1.0}), true), b(vec({2.0}), true);
  ParamGroup g;
  g.params = {{"a", a}, {"b", b}};
  g.lr = 0.1;
  Adam opt({g});
  a.grad() = vec({1.0});
  opt.step();
  opt.step();
  EXPECT_EQ(b.value().to_double_vector(), (std::vector<double>{2.0}));
  NamedTensors sd = opt.state_dict();
  bool has_a = false, has_b = false;
  for (const auto& [k, t] : sd) {
    has_a = has_a || k == "a.step";
    has_b = has_b || k.rfind("b.", 0) == 0;
    if (k == "a.step") {
      EXPECT_EQ(t.to_double_vector()[0], 2.0);
    }
  }
  EXPECT_TRUE(has_a);
  EXPECT_FALSE(has_b);  // no state for a parameter that never had a gradient
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optimizer, LrPerGroup) {
  Var a(vec({1.0}), true), b(vec({1.0}), true);
  ParamGroup ga, gb;
  ga.params = {{"a", a}};
  gb.params = {{"b", b}};
  ga.lr = 0.1;
  gb.lr = 0.2;
  SGD opt({ga, gb});
  EXPECT_DOUBLE_EQ(opt.group(1).initial_lr, 0.2);
  opt.set_lr(1, 0.5);
  a.grad() = vec({1.0});
  b.grad() = vec({1.0});
  opt.step();
  EXPECT_DOUBLE_EQ(a.value().to_double_vector()[0], 0.9);
  EXPECT_DOUBLE_EQ(b.value().to_double_vector()[0], 0.5);
  opt.set_lr(0.25);
  EXPECT_DOUBLE_EQ(opt.lr(0), 0.25);
  EXPECT_DOUBLE_EQ(opt.lr(1), 0.25);
  EXPECT_DOUBLE_EQ(opt.group(1).initial_lr, 0.2);  // unchanged by set_lr
  EXPECT_THROW(opt.set_lr(2, 0.1), Error);
  EXPECT_THROW(opt.set_lr(0, -1.0), Error);
}

// ---------------------------------------------------------------------------------------------------------
// State dict

TEST(Optimizer, StateDictRoundTripContinuesIdentically) {
  auto make = [](Var& p) {
    ParamGroup g;
    g.params.emplace_back("w", p);
    g.lr = 0.01;
    AdamOptions o;
    o.amsgrad = true;
    return std::make_unique<AdamW>(std::vector<ParamGroup>{g}, o);
  };
  Var p1(vec({1.0, -2.0}), true);
  auto o1 = make(p1);
  for (int s = 0; s < 2; ++s) {
    p1.grad() = vec(kGrads[static_cast<size_t>(s)]);
    o1->step();
  }
  o1->set_lr(0.005);
  Var p2(p1.value().clone(), true);
  auto o2 = make(p2);
  NamedTensors sd = o1->state_dict();
  std::vector<std::string> keys;
  for (const auto& [k, t] : sd) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"w.exp_avg", "w.exp_avg_sq", "w.max_exp_avg_sq", "w.step",
                                            "param_groups.lr"}));
  o2->load_state_dict(sd);
  EXPECT_DOUBLE_EQ(o2->lr(0), 0.005);
  p1.grad() = vec(kGrads[2]);
  p2.grad() = vec(kGrads[2]);
  o1->step();
  o2->step();
  EXPECT_EQ(p1.value().to_double_vector(), p2.value().to_double_vector());
}

TEST(Optimizer, LoadStateDictErrorsNameTheProblem) {
  Var p(vec({1.0, -2.0}), true);
  ParamGroup g;
  g.params.emplace_back("w", p);
  Adam opt({g});
  p.grad() = vec({1.0, 1.0});
  opt.step();
  NamedTensors good = opt.state_dict();
  auto expect_error = [&](NamedTensors sd, const std::string& needle) {
    try {
      opt.load_state_dict(sd, "ckpt.safetensors");
      FAIL() << "expected Error mentioning " << needle;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find("ckpt.safetensors"), std::string::npos) << msg;
    }
  };
  NamedTensors extra = good;
  extra.emplace_back("v.exp_avg", vec({0.0}));
  expect_error(extra, "unexpected key: v.exp_avg");
  NamedTensors wrong_shape = good;
  wrong_shape[0].second = vec({0.0, 0.0, 0.0});
  expect_error(wrong_shape, "shape mismatch: w.exp_avg");
  NamedTensors partial = {good[0], good[3]};  // exp_avg and lr only
  expect_error(partial, "missing key: w.exp_avg_sq");
  NamedTensors no_lr(good.begin(), good.end() - 1);
  expect_error(no_lr, "param_groups.lr");
  // Nothing changed: the state still continues from the good values.
  NamedTensors after = opt.state_dict();
  EXPECT_EQ(after[2].first, "w.step");
  EXPECT_EQ(after[2].second.to_double_vector()[0], 1.0);
}

// ---------------------------------------------------------------------------------------------------------
// Parameter groups

namespace {
struct Leaf : Module {
  explicit Leaf(const std::vector<std::pair<std::string, Shape>>& params) {
    for (const auto& [n, s] : params) register_parameter(n, Tensor::zeros(s));
  }
};
struct Net : Module {
  Net() {
    register_parameter("scale", Tensor::zeros({4}));
    register_parameter("frozen", Tensor::zeros({4, 4}), false);
    register_module("norm", std::make_shared<Leaf>(std::vector<std::pair<std::string, Shape>>{
                                {"weight", {8}}, {"bias", {8}}}));
    register_module("fc", std::make_shared<Leaf>(std::vector<std::pair<std::string, Shape>>{
                              {"weight", {8, 4}}, {"bias", {8}}}));
    register_module("mixer", std::make_shared<Leaf>(std::vector<std::pair<std::string, Shape>>{
                                 {"A_log", {8, 16}}, {"D", {8}}, {"conv_weight", {8, 1, 4}}, {"xD", {8, 2}}}));
    register_module("op", std::make_shared<Leaf>(std::vector<std::pair<std::string, Shape>>{
                              {"A_logs", {32, 16}}, {"Ds", {32}}, {"dt_projs_bias", {4, 8}}, {"pos_embed", {1, 8, 4}}}));
  }
};
std::vector<std::string> names_of(const ParamGroup& g) {
  std::vector<std::string> out;
  for (const auto& [n, p] : g.params) out.push_back(n);
  return out;
}
}  // namespace

TEST(ParamGroups, TimmRulePlusMambaNames) {
  Net net;
  std::vector<ParamGroup> groups = default_param_groups(net, 0.05, 1e-3);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "no_decay");
  EXPECT_DOUBLE_EQ(groups[0].weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(groups[1].weight_decay, 0.05);
  EXPECT_EQ(names_of(groups[0]), (std::vector<std::string>{"scale", "norm.weight", "norm.bias", "fc.bias",
                                                           "mixer.A_log", "mixer.D", "op.A_logs", "op.Ds"}));
  EXPECT_EQ(names_of(groups[1]), (std::vector<std::string>{"fc.weight", "mixer.conv_weight", "mixer.xD",
                                                           "op.dt_projs_bias", "op.pos_embed"}));
  // Extra names (e.g. timm's no_weight_decay() set) go to the no-decay group too.
  groups = default_param_groups(net, 0.05, 1e-3, {"pos_embed"});
  EXPECT_EQ(names_of(groups[1]),
            (std::vector<std::string>{"fc.weight", "mixer.conv_weight", "mixer.xD", "op.dt_projs_bias"}));
  EXPECT_TRUE(is_ssm_no_weight_decay_name("layers.0.mixer.A_log"));
  EXPECT_TRUE(is_ssm_no_weight_decay_name("Ds"));
  EXPECT_FALSE(is_ssm_no_weight_decay_name("mixer.A_log_scale"));
  EXPECT_FALSE(is_ssm_no_weight_decay_name("mixer.xD"));
  // An optimizer built from the groups decays only the decay group.
  AdamW opt(default_param_groups(net, 0.5, 0.1));
  EXPECT_EQ(opt.n_groups(), 2u);
  EXPECT_DOUBLE_EQ(opt.group(0).weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(opt.group(1).weight_decay, 0.5);
  EXPECT_EQ(opt.parameters().size(), 13u);  // frozen is left out
  EXPECT_THROW(default_param_groups(net, -1.0), Error);
}

// ---------------------------------------------------------------------------------------------------------
// Clipping

TEST(ClipGrad, NormScalesWhenAboveMax) {
  Var a(vec({0, 0}), true), b(vec({0}), true), c(vec({5}), true);
  a.grad() = vec({3, 4});
  b.grad() = vec({12});
  // c has no gradient: ignored.
  double total = clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_DOUBLE_EQ(total, 13.0);
  const double s = 6.5 / (13.0 + 1e-6);
  EXPECT_DOUBLE_EQ(a.grad().to_double_vector()[0], 3 * s);
  EXPECT_DOUBLE_EQ(a.grad().to_double_vector()[1], 4 * s);
  EXPECT_DOUBLE_EQ(b.grad().to_double_vector()[0], 12 * s);
  // Below the max: unchanged.
  a.grad() = vec({3, 4});
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a}, 10.0), 5.0);
  EXPECT_EQ(a.grad().to_double_vector(), (std::vector<double>{3, 4}));
  // Other norms.
  a.grad() = vec({3, -4});
  b.grad() = vec({12});
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 100.0, 1.0), 19.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 100.0, std::numeric_limits<double>::infinity()), 12.0);
  EXPECT_NEAR(clip_grad_norm_({a, b}, 100.0, 3.0), std::cbrt(27.0 + 64.0 + 1728.0), 1e-12);
  EXPECT_DOUBLE_EQ(clip_grad_norm_({c}, 1.0), 0.0);  // no gradients at all
  // Non-finite.
  a.grad() = vec({std::numeric_limits<double>::infinity(), 0});
  EXPECT_THROW(clip_grad_norm_({a}, 1.0, 2.0, true), Error);
  EXPECT_THROW(clip_grad_norm_({a}, 1.0, -1.0), Error);
}

TEST(ClipGrad, ValueClamps) {
  Var a(vec({0, 0, 0}).to(DType::F32), true);
  a.grad() = vec({-3, 0.5, 7}).to(DType::F32);
  clip_grad_value_({a}, 1.0);
  EXPECT_EQ(a.grad().to_double_vector(), (std::vector<double>{-1, 0.5, 1}));
  EXPECT_THROW(clip_grad_value_({a}, -1.0), Error);
}

TEST(Optimizer, TrainsALeastSquaresProblem) {
  // y = 2 x0 - x1 + 0.5: a few hundred AdamW steps through autograd bring the loss near zero.
  Var w(Tensor::zeros({1, 2}, DType::F64), true), b(Tensor::zeros({1}, DType::F64), true);
  Var x(Tensor::from_vector({4, 2}, std::vector<double>{1, 0, 0, 1, 1, 1, -1, 2}));
  Var y(Tensor::from_vector({4}, std::vector<double>{2.5, -0.5, 1.5, -3.5}));
  ParamGroup g;
  g.params = {{"w", w}, {"b", b}};
  g.lr = 0.05;
  g.weight_decay = 0.0;
  AdamW opt({g});
  double loss0 = 0, loss = 0;
  for (int s = 0; s < 400; ++s) {
    opt.zero_grad();
    Var l = mean(square(sum(x * w, {1}) + b - y));
    loss = l.value().to_double_vector()[0];
    if (s == 0) loss0 = loss;
    l.backward();
    opt.step();
  }
  EXPECT_LT(loss, 1e-4 * loss0);
}

// One step runs every parameter's update as pieces in one parallel loop: a parameter of several pieces next to
// small ones (F32 and F64, two groups, AMSGrad) gets exactly what it gets when stepped alone.
TEST(Adam, PiecesOfManyParametersMatchSteppingEachAlone) {
  auto make = [](int64_t n, uint64_t seed, DType dt) {
    std::vector<double> v(static_cast<size_t>(n));
    Rng r(seed);
    for (double& x : v) x = r.uniform(-1, 1);
    return Tensor::from_vector({n}, v).to(dt);
  };
  const std::vector<int64_t> sizes = {100003, 7, 40000, 1};
  const std::vector<DType> types = {DType::F32, DType::F32, DType::F64, DType::F32};
  AdamOptions o;
  o.amsgrad = true;
  std::vector<Var> together, alone;
  std::vector<ParamGroup> groups(2);
  std::vector<std::unique_ptr<AdamW>> singles;
  for (size_t k = 0; k < sizes.size(); ++k) {
    together.emplace_back(make(sizes[k], 10 + k, types[k]), true);
    alone.emplace_back(make(sizes[k], 10 + k, types[k]), true);
    ParamGroup& g = groups[k % 2];
    g.lr = k % 2 ? 0.02 : 0.01;
    g.params.emplace_back("p" + std::to_string(k), together.back());
    ParamGroup single;
    single.lr = g.lr;
    single.params.emplace_back("p", alone.back());
    singles.push_back(std::make_unique<AdamW>(std::vector<ParamGroup>{single}, o));
  }
  AdamW all(groups, o);
  for (int step = 0; step < 3; ++step) {
    for (size_t k = 0; k < sizes.size(); ++k) {
      const Tensor g = make(sizes[k], 100 * step + k, types[k]);
      together[k].grad() = g;
      alone[k].grad() = g.clone();
    }
    all.step();
    for (auto& s : singles) s->step();
  }
  for (size_t k = 0; k < sizes.size(); ++k)
    EXPECT_EQ(max_abs_diff(together[k].value(), alone[k].value()), 0.0) << "parameter " << k;
}
