// Reverse-mode automatic differentiation over Tensor: a Var is a tensor plus, when it was produced by an
// op while gradients are recorded, the op's inputs and a backward function. Var::backward() from a scalar
// sorts the recorded graph topologically, runs each backward once (newest first), adds gradients into
// leaves (parameters keep accumulating until zero_grad()), and frees the graph as it goes.
// Under NoGradGuard nothing is recorded, so intermediates die as soon as their Vars do (inference mode).
// Ops are free functions in ops/*.h: a Tensor kernel pair (forward, backward) plus a Var wrapper that
// records the backward with make_result().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

class Var;
struct Node;

// The backward of a recorded op: given d loss / d output and which inputs need a gradient, returns one
// gradient per input (same shape as that input; undefined where not needed or zero).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;
// The backward of an op with several outputs: one gradient per output (undefined where none arrived).
using MultiBackwardFn =
    std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outs, const std::vector<bool>& needs)>;

// One value in the graph. Not used directly: see Var.
struct Node {
  Tensor value;
  Tensor grad;  // d loss / d value; undefined until some gradient reaches it
  bool requires_grad = false;
  std::vector<std::shared_ptr<Node>> inputs;  // recorded op inputs (empty for leaves)
  BackwardFn backward_fn;
  const char* op = "leaf";
};

class Var {
 public:
  Var() = default;
  // A leaf. Parameters are leaves with requires_grad = true.
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const;
  Tensor& value();
  const Tensor& grad() const;  // undefined when no gradient reached this Var
  Tensor& grad();
  bool requires_grad() const { return node_ && node_->requires_grad; }
  const char* op() const { return node_ ? node_->op : "undefined"; }
  const Shape& shape() const { return value().shape(); }
  int64_t size(int64_t dim) const { return value().size(dim); }
  int64_t ndim() const { return value().ndim(); }
  int64_t numel() const { return value().numel(); }
  DType dtype() const { return value().dtype(); }

  // Backpropagates from this Var: a scalar (numel 1) gets seed 1, otherwise `seed` of the same shape
  // is required. Frees the recorded graph behind this Var.
  void backward();
  void backward(const Tensor& seed);
  void zero_grad();            // drops this Var's gradient
  void set_requires_grad(bool on);
  Var detach() const;          // same value, no history, no gradient

  const std::shared_ptr<Node>& node() const { return node_; }

 private:
  explicit Var(std::shared_ptr<Node> n) : node_(std::move(n)) {}
  std::shared_ptr<Node> node_;
  friend Var make_result(Tensor, const std::vector<Var>&, BackwardFn, const char*);
  friend std::vector<Var> make_results(std::vector<Tensor>, const std::vector<Var>&, MultiBackwardFn, const char*);
};

// True unless a NoGradGuard is alive on this thread.
bool grad_enabled();

// Scope in which ops record nothing (inference, optimizer updates, evaluation).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// The result of an op. When gradients are on and any input requires grad, the result remembers the
// inputs and `backward`. `backward` should capture the Tensors it needs (input values, saved
// activations), never Vars, so that the graph can be freed.
Var make_result(Tensor value, const std::vector<Var>& inputs, BackwardFn backward, const char* op);

// The same for an op with several outputs (e.g. a scan's y and last state): `backward` runs once, after
// every output that the loss depends on has received its gradient.
std::vector<Var> make_results(std::vector<Tensor> values, const std::vector<Var>& inputs, MultiBackwardFn backward,
                              const char* op);

}  // namespace ssmkit::core
