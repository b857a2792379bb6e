// Module bookkeeping: registration, recursive naming in PyTorch order, state_dict load/save.
#include "ssmkit/core/nn/module.h"

#include <set>

namespace ssmkit::core {

std::string LoadReport::str() const {
  std::string s;
  for (const auto& k : missing) s += "\n  missing key: " + k;
  for (const auto& k : unexpected) s += "\n  unexpected key: " + k;
  for (const auto& k : mismatched) s += "\n  shape mismatch: " + k;
  return s;
}

static void check_local_name(const std::string& name) {
  SSMKIT_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: invalid name \"", name,
               "\" (non-empty, no dots)");
}

Var Module::register_parameter(const std::string& name, Tensor init, bool requires_grad) {
  check_local_name(name);
  for (const auto& [n, v] : params_) SSMKIT_CHECK(n != name, "Module: parameter \"", name, "\" registered twice");
  Var v(std::move(init), requires_grad);
  params_.emplace_back(name, v);
  return v;
}

Var Module::register_parameter(const std::string& name, const Var& shared) {
  check_local_name(name);
  SSMKIT_CHECK(shared.defined(), "Module: parameter \"", name, "\" is undefined");
  for (const auto& [n, v] : params_) SSMKIT_CHECK(n != name, "Module: parameter \"", name, "\" registered twice");
  params_.emplace_back(name, shared);
  return shared;
}

Tensor Module::register_buffer(const std::string& name, Tensor init, bool persistent) {
  check_local_name(name);
  for (const auto& b : buffers_) SSMKIT_CHECK(b.name != name, "Module: buffer \"", name, "\" registered twice");
  buffers_.push_back({name, init, persistent});
  return init;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_local_name(name);
  SSMKIT_CHECK(child != nullptr, "Module: child \"", name, "\" is null");
  for (const auto& [n, c] : children_) SSMKIT_CHECK(n != name, "Module: child \"", name, "\" registered twice");
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Var>>* params,
                     NamedTensors* buffers, bool persistent_only) const {
  if (params)
    for (const auto& [n, v] : params_) params->emplace_back(prefix + n, v);
  if (buffers)
    for (const auto& b : buffers_)
      if (b.persistent || !persistent_only) buffers->emplace_back(prefix + b.name, b.value);
  for (const auto& [n, c] : children_) c->collect(prefix + n + ".", params, buffers, persistent_only);
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> all, out;
  collect("", &all, nullptr, true);
  std::set<const Node*> seen;
  for (auto& [n, v] : all)
    if (seen.insert(v.node().get()).second) out.emplace_back(n, v);
  return out;
}

NamedTensors Module::named_buffers(bool persistent_only) const {
  NamedTensors out;
  collect("", nullptr, &out, persistent_only);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, v] : named_parameters()) out.push_back(v);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, v] : named_parameters())
    if (v.requires_grad()) n += v.numel();
  return n;
}


// PyTorch order: per module, parameters then buffers, then children (depth first).
NamedTensors Module::state_dict() const {
  NamedTensors out;
  for (const auto& [n, v] : params_) out.emplace_back(n, v.value());
  for (const auto& b : buffers_)
    if (b.persistent) out.emplace_back(b.name, b.value);
  for (const auto& [n, c] : children_)
    for (auto& [k, t] : c->state_dict()) out.emplace_back(n + "." + k, t);
  return out;
}

LoadReport Module::load_state_dict(const NamedTensors& source, bool strict, const std::string& origin) {
  std::map<std::string, const Tensor*> src;
  for (const auto& [k, t] : source) src[k] = &t;
  NamedTensors mine = state_dict();
  LoadReport rep;
  std::set<std::string> used;
  for (const auto& [k, t] : mine) {
    auto it = src.find(k);
    if (it == src.end()) {
      rep.missing.push_back(k);
      continue;
    }
    used.insert(k);
    if (it->second->shape() != t.shape())
      rep.mismatched.push_back(k + ": source " + shape_str(it->second->shape()) + " vs module " + shape_str(t.shape()));
  }
  for (const auto& [k, t] : source)
    if (!used.count(k)) rep.unexpected.push_back(k);
  SSMKIT_CHECK(!strict || rep.ok(), origin, ": state_dict does not match the model:", rep.str());
  for (auto& [k, t] : mine) {
    auto it = src.find(k);
    if (it != src.end() && it->second->shape() == t.shape()) t.copy_from(*it->second);
  }
  return rep;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& [n, v] : named_parameters()) v.zero_grad();
}

void Module::to(DType dt) {
  for (auto& [n, v] : params_)
    if (v.dtype() != dt) v.value() = v.value().to(dt);
  for (auto& b : buffers_)
    if ((b.value.dtype() == DType::F32 || b.value.dtype() == DType::F64) && b.value.dtype() != dt) b.value = b.value.to(dt);
  for (auto& [n, c] : children_) c->to(dt);
}

Var& Module::param(const std::string& name) {
  for (auto& [n, v] : params_)
    if (n == name) return v;
  throw Error("Module: no parameter \"" + name + "\"");
}

Tensor& Module::buffer(const std::string& name) {
  for (auto& b : buffers_)
    if (b.name == name) return b.value;
  throw Error("Module: no buffer \"" + name + "\"");
}

Tensor Module::buffer(const std::string& name) const {
  for (const auto& b : buffers_)
    if (b.name == name) return b.value;
  throw Error("Module: no buffer \"" + name + "\"");
}

void save_module(const std::string& path, const Module& m, const Metadata& metadata) {
  save_safetensors(path, m.state_dict(), metadata);
}

Metadata load_module(const std::string& path, Module& m, bool strict) {
  SafetensorsFile f = load_safetensors(path);
  m.load_state_dict(f.tensors, strict, path);
  return f.metadata;
}

}  // namespace ssmkit::core
