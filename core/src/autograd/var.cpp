// Autograd engine: leaves, recorded results, topological backward with graph freeing, grad mode.
#include "ssmkit/core/autograd/var.h"

#include <unordered_set>

namespace ssmkit::core {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
}

const Tensor& Var::value() const {
  SSMKIT_CHECK(node_, "use of an undefined Var");
  return node_->value;
}
Tensor& Var::value() {
  SSMKIT_CHECK(node_, "use of an undefined Var");
  return node_->value;
}
const Tensor& Var::grad() const {
  SSMKIT_CHECK(node_, "use of an undefined Var");
  return node_->grad;
}
Tensor& Var::grad() {
  SSMKIT_CHECK(node_, "use of an undefined Var");
  return node_->grad;
}
void Var::zero_grad() {
  if (node_) node_->grad = Tensor{};
}
void Var::set_requires_grad(bool on) {
  SSMKIT_CHECK(node_, "use of an undefined Var");
  SSMKIT_CHECK(!node_->backward_fn, "set_requires_grad(): only leaves can change requires_grad (this Var comes from ",
               node_->op, ")");
  node_->requires_grad = on;
}
Var Var::detach() const { return Var(value(), false); }

static void accumulate(const std::shared_ptr<Node>& node, Tensor&& g) {
  SSMKIT_CHECK(g.shape() == node->value.shape(), "autograd: gradient of shape ", shape_str(g.shape()),
               " for a value of shape ", shape_str(node->value.shape()), " (op ", node->op, ")");
  if (g.dtype() != node->value.dtype()) g = g.to(node->value.dtype());
  if (!node->grad.defined()) {
    // Take ownership when nobody else holds the storage; otherwise copy, so later += cannot alias.
    node->grad = (g.storage_unique() && g.is_contiguous()) ? std::move(g) : g.clone();
  } else {
    node->grad.add_(g);
  }
}

Var make_result(Tensor value, const std::vector<Var>& inputs, BackwardFn backward, const char* op) {
  auto node = std::make_shared<Node>();
  node->value = std::move(value);
  node->op = op;
  if (!g_grad_enabled) return Var(node);
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return Var(node);
  node->requires_grad = true;
  node->inputs.reserve(inputs.size());
  for (const Var& v : inputs) node->inputs.push_back(v.node());
  node->backward_fn = std::move(backward);
  return Var(node);
}

std::vector<Var> make_results(std::vector<Tensor> values, const std::vector<Var>& inputs, MultiBackwardFn backward,
                              const char* op) {
  std::vector<Var> outs;
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!g_grad_enabled || !any) {
    for (Tensor& t : values) outs.push_back(make_result(std::move(t), {}, nullptr, op));
    return outs;
  }
  // A hidden node collects the outputs' gradients, then runs the op's backward once. Each output is a
  // node whose backward hands its gradient to the hidden node's slot.
  const size_t n_out = values.size();
  auto slots = std::make_shared<std::vector<Tensor>>(n_out);
  auto hidden = std::make_shared<Node>();
  hidden->op = op;
  hidden->requires_grad = true;
  for (const Var& v : inputs) hidden->inputs.push_back(v.node());
  hidden->value = Tensor::empty({0});
  hidden->backward_fn = [slots, backward = std::move(backward)](const Tensor&, const std::vector<bool>& needs) {
    std::vector<Tensor> g = backward(*slots, needs);
    slots->clear();
    return g;
  };
  Var hidden_var(hidden);
  for (size_t k = 0; k < n_out; ++k) {
    outs.push_back(make_result(
        std::move(values[k]), {hidden_var},
        [slots, k](const Tensor& g, const std::vector<bool>&) {
          (*slots)[k] = g;
          return std::vector<Tensor>{Tensor::empty({0})};  // wakes the hidden node
        },
        op));
  }
  return outs;
}

void accumulate_grad(const std::shared_ptr<Node>& node, const Tensor& g) {
  Tensor copy = g;
  accumulate(node, std::move(copy));
}

void Var::backward() {
  SSMKIT_CHECK(node_, "backward() on an undefined Var");
  SSMKIT_CHECK(value().numel() == 1, "backward() without a seed needs a scalar, got shape ",
               shape_str(value().shape()), " (pass a seed gradient of the same shape)");
  backward(Tensor::full(value().shape(), 1.0, value().dtype()));
}

void Var::backward(const Tensor& seed) {
  SSMKIT_CHECK(node_, "backward() on an undefined Var");
  SSMKIT_CHECK(node_->requires_grad, "backward(): this value does not depend on anything that requires grad (op ",
               node_->op, ")");
  // Topological order by iterative depth-first search (post-order), then run it newest first. The order
  // holds the nodes alive until their own backward has run (clearing a node's inputs may drop the last
  // other reference to them), and releases each one right after.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{node_, 0}};
  seen.insert(node_.get());
  while (!stack.empty()) {
    Node* n = stack.back().first.get();
    size_t& i = stack.back().second;
    if (i < n->inputs.size()) {
      std::shared_ptr<Node> next = n->inputs[i++];
      if (next->requires_grad && !seen.count(next.get())) {
        seen.insert(next.get());
        stack.emplace_back(std::move(next), 0);
      }
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }
  accumulate_grad(node_, seed);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    std::shared_ptr<Node> n = std::move(*it);
    if (!n->backward_fn) continue;  // a leaf keeps its gradient
    std::vector<bool> needs;
    std::vector<Tensor> grads;
    if (n->grad.defined()) {
      needs.resize(n->inputs.size());
      for (size_t i = 0; i < needs.size(); ++i) needs[i] = n->inputs[i]->requires_grad;
      grads = n->backward_fn(n->grad, needs);
      SSMKIT_CHECK(grads.size() == n->inputs.size(), "autograd: op ", n->op, " returned ", grads.size(),
                   " gradients for ", n->inputs.size(), " inputs");
    }
    // Free the graph behind this node: its saved tensors (in the closure) and gradient before its inputs get
    // theirs, and each input's gradient once handed on, so that a gradient passed through unchanged (a view,
    // an add's operand) is usually the only reference to its storage and accumulate takes it over instead of
    // copying it; then its inputs.
    n->backward_fn = nullptr;
    n->grad = Tensor{};
    for (size_t i = 0; i < grads.size(); ++i) {
      if (needs[i] && grads[i].defined()) accumulate(n->inputs[i], std::move(grads[i]));
      grads[i] = Tensor{};
    }
    n->inputs.clear();
    n->requires_grad = false;
  }
}

}  // namespace ssmkit::core
