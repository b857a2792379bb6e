// DataParallel (core/train/data_parallel.h): K shards of a batch on replicas give the model the gradient of
// the whole batch's mean loss (to rounding) when nothing random is drawn; K shards give the same bits on one
// thread as on K threads (with dropout); the replicas' parameters are views of the model's (optimizer
// updates reach them); BatchNorm buffers go from the model to each replica before a step (DDP's
// broadcast_buffers); mismatched replicas and a failing shard are reported.
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "gradcheck.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"

using namespace ssmkit::core;

namespace {

constexpr int64_t kIn = 6, kHidden = 16, kOut = 3, kBatch = 10;

// x (B,6) -> BatchNorm (optional) -> Linear -> GELU -> LayerNorm -> dropout -> Linear -> (B,3)
struct Net : Module {
  std::shared_ptr<BatchNorm> bn;
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<LayerNorm> ln;
  double p;
  Net(int64_t hidden, double p, bool batchnorm, uint64_t seed) : p(p) {
    Rng rng(seed);
    if (batchnorm) bn = register_module("bn", std::make_shared<BatchNorm>(kIn));
    fc1 = register_module("fc1", std::make_shared<Linear>(kIn, hidden, true, rng));
    ln = register_module("ln", std::make_shared<LayerNorm>(Shape{hidden}));
    fc2 = register_module("fc2", std::make_shared<Linear>(hidden, kOut, true, rng));
  }
  Var forward(const Var& x) const {
    Var h = bn ? bn->forward(x) : x;
    h = ln->forward(gelu(fc1->forward(h)));
    return fc2->forward(dropout(h, p, training()));
  }
};

Tensor random_tensor(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (float& f : v) f = static_cast<float>(rng.normal());
  return Tensor::from_vector(s, v);
}

std::vector<std::shared_ptr<Module>> replicas_of(int64_t K, double p, bool bn) {
  std::vector<std::shared_ptr<Module>> r;
  for (int64_t k = 1; k < K; ++k) r.push_back(std::make_shared<Net>(kHidden, p, bn, 100 + static_cast<uint64_t>(k)));
  return r;
}

// Shard k's share of the batch mean MSE, backpropagated.
double shard_loss(const Module& m, const Tensor& x, const Tensor& y, int64_t K, int64_t k) {
  const auto [r0, r1] = shard_rows(x.size(0), K, k);
  if (r1 <= r0) return 0.0;
  const Net& net = static_cast<const Net&>(m);
  Var pred = net.forward(Var(x.slice(0, r0, r1).contiguous()));
  return backward_share(mse_loss(pred, Var(y.slice(0, r0, r1).contiguous())), r1 - r0, x.size(0));
}

std::vector<double> values_of(const Tensor& t) { return t.to_double_vector(); }

using Threads = ssmkit::test::ScopedThreads;

}  // namespace

TEST(DataParallel, ShardRowsCoverTheBatch) {
  using Rows = std::pair<int64_t, int64_t>;
  EXPECT_EQ(shard_rows(10, 3, 0), Rows(0, 3));
  EXPECT_EQ(shard_rows(10, 3, 1), Rows(3, 6));
  EXPECT_EQ(shard_rows(10, 3, 2), Rows(6, 10));
  EXPECT_EQ(shard_rows(1, 2, 0), Rows(0, 0));
  EXPECT_EQ(shard_rows(1, 2, 1), Rows(0, 1));
  EXPECT_THROW(shard_rows(4, 2, 2), Error);
  // backward_share takes a scalar loss and a share within the batch.
  Var v(Tensor::full({2}, 1.0), true);
  EXPECT_THROW(backward_share(v, 1, 2), Error);
  EXPECT_THROW(backward_share(Var(Tensor::full({}, 1.0), true), 3, 2), Error);
}

TEST(DataParallel, GradientsAreThoseOfTheWholeBatch) {
  const Tensor x = random_tensor({kBatch, kIn}, 1), y = random_tensor({kBatch, kOut}, 2);
  Net ref(kHidden, 0.0, false, 7);
  Var loss = mse_loss(ref.forward(Var(x)), Var(y));
  loss.backward();
  const double ref_loss = loss.value().to_double_vector()[0];
  for (int64_t K : {1, 2, 3, 4}) {
    Threads t(2);
    Net model(kHidden, 0.0, false, 7);
    DataParallel dp(model, replicas_of(K, 0.0, false));
    ASSERT_EQ(dp.shards(), K);
    const double l = dp.step([&](int64_t k, Module& m) { return shard_loss(m, x, y, K, k); });
    EXPECT_NEAR(l, ref_loss, 1e-6 * std::abs(ref_loss)) << "K " << K;
    const auto a = ref.named_parameters(), b = model.named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(b[i].second.grad().defined()) << b[i].first;
      const std::vector<double> ga = values_of(a[i].second.grad()), gb = values_of(b[i].second.grad());
      for (size_t j = 0; j < ga.size(); ++j)
        ASSERT_NEAR(gb[j], ga[j], 1e-5 * (1.0 + std::abs(ga[j]))) << "K " << K << " " << b[i].first << "[" << j << "]";
    }
    for (int64_t k = 1; k < K; ++k)
      for (const auto& [name, p] : dp.shard_model(k).named_parameters())
        EXPECT_FALSE(p.grad().defined()) << "replica " << k << " kept its gradient of " << name;
  }
}

TEST(DataParallel, SameBitsOnOneThreadAsOnSeveral) {
  // Dropout on: each shard draws from its own generator, seeded from global_rng() in shard order.
  const Tensor x = random_tensor({kBatch, kIn}, 3), y = random_tensor({kBatch, kOut}, 4);
  auto train = [&](int threads) {
    Threads t(threads);
    manual_seed(11);
    Net model(kHidden, 0.3, false, 9);
    DataParallel dp(model, replicas_of(3, 0.3, false));
    Adam opt(single_param_group(model, 1e-2));
    std::vector<double> losses;
    for (int step = 0; step < 4; ++step) {
      opt.zero_grad();
      losses.push_back(dp.step([&](int64_t k, Module& m) { return shard_loss(m, x, y, 3, k); }));
      opt.step();
    }
    std::vector<double> out = losses;
    for (const auto& [name, p] : model.named_parameters()) {
      const std::vector<double> v = values_of(p.value());
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  const std::vector<double> one = train(1), many = train(3);
  ASSERT_EQ(one.size(), many.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], many[i]) << "value " << i;
  // And the dropout masks really differ between shards and steps: the losses are not all equal.
  EXPECT_NE(one[0], one[1]);
}

TEST(DataParallel, ReplicaParametersAreViewsOfTheModels) {
  Threads t(2);
  const Tensor x = random_tensor({kBatch, kIn}, 5), y = random_tensor({kBatch, kOut}, 6);
  Net model(kHidden, 0.0, false, 13);
  auto reps = replicas_of(2, 0.0, false);
  Module& replica = *reps[0];
  DataParallel dp(model, reps);
  EXPECT_EQ(&dp.shard_model(0), &model);
  EXPECT_EQ(&dp.shard_model(1), &replica);
  Adam opt(single_param_group(model, 1e-2));
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    dp.step([&](int64_t k, Module& m) { return shard_loss(m, x, y, 2, k); });
    opt.step();
  }
  const auto a = model.named_parameters(), b = replica.named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].second.value().same_storage(b[i].second.value())) << a[i].first;
  model.eval();
  replica.eval();
  const Tensor ya = static_cast<Net&>(model).forward(Var(x)).value();
  const Tensor yb = static_cast<Net&>(replica).forward(Var(x)).value();
  EXPECT_EQ(values_of(ya), values_of(yb));
}

TEST(DataParallel, BatchNormStatisticsComeFromTheModel) {
  // Before the step the model's running mean is 5 everywhere; each replica starts from it and updates it with
  // its own shard's batch mean (momentum 0.1), as DDP does with broadcast buffers.
  Threads t(2);
  const Tensor x = random_tensor({kBatch, kIn}, 7), y = random_tensor({kBatch, kOut}, 8);
  Net model(kHidden, 0.0, true, 17);
  auto reps = replicas_of(2, 0.0, true);
  Module& replica = *reps[0];
  DataParallel dp(model, reps);
  model.bn->buffer("running_mean").copy_from(Tensor::full({kIn}, 5.0));
  dp.step([&](int64_t k, Module& m) { return shard_loss(m, x, y, 2, k); });
  const std::vector<double> xs = values_of(x);
  for (int64_t k = 0; k < 2; ++k) {
    const auto [r0, r1] = shard_rows(kBatch, 2, k);
    const std::vector<double> rm = values_of(static_cast<Net&>(dp.shard_model(k)).bn->buffer("running_mean"));
    for (int64_t c = 0; c < kIn; ++c) {
      double mean = 0;
      for (int64_t r = r0; r < r1; ++r) mean += xs[static_cast<size_t>(r * kIn + c)];
      mean /= static_cast<double>(r1 - r0);
      EXPECT_NEAR(rm[static_cast<size_t>(c)], 0.9 * 5.0 + 0.1 * mean, 1e-5) << "shard " << k << " channel " << c;
    }
  }
  EXPECT_NE(&replica, &model);
}

TEST(DataParallel, ReportsMismatchedReplicasAndFailingShards) {
  Net model(kHidden, 0.0, false, 1);
  std::vector<std::shared_ptr<Module>> wrong{std::make_shared<Net>(kHidden + 1, 0.0, false, 2)};
  try {
    DataParallel dp(model, wrong);
    FAIL() << "a replica of another width was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("replica 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fc1.weight"), std::string::npos) << e.what();
  }
  DataParallel dp(model, replicas_of(3, 0.0, false));
  const Tensor x = random_tensor({kBatch, kIn}, 9), y = random_tensor({kBatch, kOut}, 10);
  Threads t(2);
  try {
    dp.step([&](int64_t k, Module& m) {
      if (k == 2) throw Error("shard two failed");
      return shard_loss(m, x, y, 3, k);
    });
    FAIL() << "the shard's error was lost";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "shard two failed");
  }
}
