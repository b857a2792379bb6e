// Data-parallel training on the cores of one machine: PyTorch DistributedDataParallel's arithmetic without
// processes. A batch is cut into K shards; shard k runs forward and backward on replica k of the model
// (replica 0 is the model itself) on a thread of its own, every op inside running single-threaded, dropout
// drawing from the shard's own generator; then the replicas' gradients are added into the model's and the
// optimizer steps the model as usual. The replicas' parameters are views of the model's values (separate
// autograd leaves over the same storage), so optimizer updates reach them at once; before each step they
// take the model's persistent buffers (BatchNorm statistics, as DDP's broadcast_buffers) and train/eval mode.
// Rebuild the DataParallel after anything that replaces the model's parameter storage (Module::to,
// load_state_dict copies in place and is fine).
//
// Why: small models (S-Mamba: 352 x 256 products) leave a second core mostly waiting when each op is split
// over threads; whole shards keep every core busy with no synchronisation inside the step.
// Arithmetic: it depends on K, not on the thread count. K shards give the same bits on one thread (shards in
// turn) as on K threads; K = 1 is exactly the plain loop (no extra draws from global_rng()).
// Not here: cutting the batch and weighting the shard losses (the caller's shard function; shard_rows() and
// backward_share() help), all-reduce across processes or machines.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"

namespace ssmkit::core {

// Rows [first, second) of shard k when n rows are cut into K shards (sizes differ by at most one; a shard is
// empty when n < K).
std::pair<int64_t, int64_t> shard_rows(int64_t n, int64_t K, int64_t k);

// For a shard function: backpropagates a shard's mean loss (a scalar) weighted by its share rows / batch of
// the batch, so that the shards' gradients add up to those of the batch mean, and returns the weighted value.
// A whole batch (rows == batch) backpropagates the loss itself, exactly as the plain loop does.
double backward_share(const Var& loss, int64_t rows, int64_t batch);

class DataParallel {
 public:
  // `replicas`: K - 1 further models of the model's configuration (their initial parameter values are
  // dropped: the replicas' parameters are re-pointed at the model's).
  // Their state_dict keys and shapes must match the model's, or Error naming the first difference.
  // The model must outlive this object.
  DataParallel(Module& model, std::vector<std::shared_ptr<Module>> replicas);

  int64_t shards() const { return static_cast<int64_t>(replicas_.size()) + 1; }
  Module& shard_model(int64_t k);  // 0: the model itself

  // One step's forward and backward over all shards. With K > 1: copies the model's buffers into the
  // replicas, draws one seed per shard from global_rng(), drops the replicas' gradients, runs
  // shard(k, shard_model(k)) for every k (up to omp_get_max_threads() at once; global_rng() on that thread
  // is the shard's generator), then adds each replica's gradients into the model's, in shard order.
  // shard() must backpropagate its share of the loss (e.g. its mean loss times its share of the batch) and
  // return that share's value; step() returns the sum. With K = 1 it just calls shard(0, model).
  // An exception from a shard is rethrown (the lowest k's) after all shards have finished.
  double step(const std::function<double(int64_t k, Module& m)>& shard);

 private:
  void sync_replicas(int64_t k);  // replica k (>= 1) takes the model's buffers; drops its gradients
  void reduce_gradients();

  Module& model_;
  std::vector<std::shared_ptr<Module>> replicas_;
  std::vector<Var> model_params_;                  // named_parameters() of the model, in order
  std::vector<std::vector<Var>> replica_params_;   // the same for each replica
  NamedTensors model_state_;                       // state_dict() of the model (shared values)
  // Per replica: its state_dict entries that are not views of the model's (buffers), by index into
  // model_state_; copied from the model before each step.
  std::vector<std::vector<std::pair<size_t, Tensor>>> replica_copies_;
  std::vector<Rng> rngs_;                          // one per shard, reseeded every step
};

}  // namespace ssmkit::core
