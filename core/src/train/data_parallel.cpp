// Data-parallel training on one machine (data_parallel.h): replicas synced from the model before each step,
// the shards as parallel_tasks, gradients summed into the model in shard order.
#include "ssmkit/core/train/data_parallel.h"

#include "ssmkit/core/error.h"
#include "ssmkit/core/parallel_tasks.h"

namespace ssmkit::core {

std::pair<int64_t, int64_t> shard_rows(int64_t n, int64_t K, int64_t k) {
  SSMKIT_CHECK(n >= 0 && K > 0 && k >= 0 && k < K, "shard_rows: need n >= 0 and 0 <= k < K, got n ", n, ", K ", K,
               ", k ", k);
  return {k * n / K, (k + 1) * n / K};
}

double backward_share(const Var& loss, int64_t rows, int64_t batch) {
  SSMKIT_CHECK(loss.numel() == 1 && rows > 0 && rows <= batch, "backward_share: need a scalar loss and 0 < rows <= ",
               "batch, got a loss of shape ", shape_str(loss.shape()), ", rows ", rows, ", batch ", batch);
  if (rows == batch) {
    Var l = loss;
    l.backward();
    return l.value().to_double_vector()[0];
  }
  const double w = static_cast<double>(rows) / static_cast<double>(batch);
  Var l = loss;
  l.backward(Tensor::full(loss.shape(), w, loss.dtype()));
  return w * l.value().to_double_vector()[0];
}

namespace {
std::vector<Var> param_vars(const Module& m) {
  std::vector<Var> v;
  for (auto& [name, p] : m.named_parameters()) v.push_back(p);
  return v;
}
}  // namespace

DataParallel::DataParallel(Module& model, std::vector<std::shared_ptr<Module>> replicas)
    : model_(model), replicas_(std::move(replicas)) {
  model_params_ = param_vars(model_);
  model_state_ = model_.state_dict();
  const auto model_names = model_.named_parameters();
  for (size_t r = 0; r < replicas_.size(); ++r) {
    SSMKIT_CHECK(replicas_[r] != nullptr && replicas_[r].get() != &model_, "DataParallel: replica ", r + 1,
                 " is null or the model itself");
    NamedTensors st = replicas_[r]->state_dict();
    SSMKIT_CHECK(st.size() == model_state_.size(), "DataParallel: replica ", r + 1, " has ", st.size(),
                 " state_dict entries, the model ", model_state_.size());
    for (size_t i = 0; i < st.size(); ++i)
      SSMKIT_CHECK(st[i].first == model_state_[i].first && st[i].second.shape() == model_state_[i].second.shape() &&
                       st[i].second.dtype() == model_state_[i].second.dtype(),
                   "DataParallel: replica ", r + 1, " entry ", i, " is ", st[i].first, " ",
                   shape_str(st[i].second.shape()), ", the model's ", model_state_[i].first, " ",
                   shape_str(model_state_[i].second.shape()));
    const auto names = replicas_[r]->named_parameters();
    SSMKIT_CHECK(names.size() == model_names.size(), "DataParallel: replica ", r + 1, " has ", names.size(),
                 " parameters, the model ", model_names.size());
    for (size_t i = 0; i < names.size(); ++i)
      SSMKIT_CHECK(names[i].first == model_names[i].first, "DataParallel: replica ", r + 1, " parameter ", i, " is ",
                   names[i].first, ", the model's ", model_names[i].first);
    replica_params_.push_back(param_vars(*replicas_[r]));
    // The replica's parameters become views of the model's values (its own autograd leaves, so its
    // gradients stay separate): the optimizer's in-place updates reach every replica without a copy.
    std::vector<Var>& rp = replica_params_.back();
    for (size_t i = 0; i < rp.size(); ++i) rp[i].value() = model_params_[i].value();
    // What remains to copy before each step: buffers (BatchNorm statistics) and any state_dict entry that is
    // not one of those parameters.
    const NamedTensors now = replicas_[r]->state_dict();
    std::vector<std::pair<size_t, Tensor>> copies;
    for (size_t i = 0; i < now.size(); ++i)
      if (!now[i].second.same_storage(model_state_[i].second)) copies.emplace_back(i, now[i].second);
    replica_copies_.push_back(std::move(copies));
  }
  rngs_.resize(static_cast<size_t>(shards()));
}

Module& DataParallel::shard_model(int64_t k) {
  SSMKIT_CHECK(k >= 0 && k < shards(), "DataParallel: shard ", k, " of ", shards());
  return k == 0 ? model_ : *replicas_[static_cast<size_t>(k - 1)];
}

void DataParallel::sync_replicas(int64_t k) {
  for (auto& [i, t] : replica_copies_[static_cast<size_t>(k - 1)]) t.copy_from(model_state_[i].second);
  for (Var& p : replica_params_[static_cast<size_t>(k - 1)]) p.zero_grad();
}

void DataParallel::reduce_gradients() {
  // One parameter per task (each a separate tensor), replicas in order.
  parallel_tasks(static_cast<int64_t>(model_params_.size()), [&](int64_t i) {
    Var& p = model_params_[static_cast<size_t>(i)];
    for (auto& rp : replica_params_) {
      Var& q = rp[static_cast<size_t>(i)];
      if (!q.grad().defined()) continue;
      if (!p.grad().defined()) p.grad() = std::move(q.grad());
      else p.grad().add_(q.grad());
      q.zero_grad();
    }
  });
}

double DataParallel::step(const std::function<double(int64_t k, Module& m)>& shard) {
  const int64_t K = shards();
  if (K == 1) return shard(0, model_);
  for (auto& r : replicas_) r->train(model_.training());
  for (Rng& r : rngs_) r.seed(global_rng().next_u64());
  std::vector<double> losses(static_cast<size_t>(K), 0.0);
  // Every replica takes the model's buffers before any shard runs: shard 0 updates them in place (BatchNorm's
  // running statistics).
  for (int64_t k = 1; k < K; ++k) sync_replicas(k);
  parallel_tasks(K, [&](int64_t k) {
    ThreadRngScope scope(rngs_[static_cast<size_t>(k)]);
    losses[static_cast<size_t>(k)] = shard(k, shard_model(k));
  });
  reduce_gradients();
  double sum = 0.0;
  for (double l : losses) sum += l;
  return sum;
}

}  // namespace ssmkit::core
