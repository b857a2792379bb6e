// Module: the unit models are built from (PyTorch nn.Module semantics). A module owns named parameters
// (Vars with requires_grad), named buffers (Tensors: running statistics, masks) and named children;
// names compose with dots exactly as PyTorch's state_dict keys, in the same order (each module's
// parameters, then its buffers, then its children), so official checkpoints map 1:1.
// Loading is strict by default and reports every missing key, unexpected key and shape mismatch by name.
// Subclasses register everything in their constructor and expose a forward(...) of their own signature.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found; ok() when nothing is missing, unexpected or mis-shaped.
struct LoadReport {
  std::vector<std::string> missing;      // keys the module has but the source lacks
  std::vector<std::string> unexpected;   // keys in the source the module does not have
  std::vector<std::string> mismatched;   // "key: source (a,b) vs module (c,d)"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const;  // one line per problem
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registration (constructors only). Returns a handle sharing the registered storage.
  Var register_parameter(const std::string& name, Tensor init, bool requires_grad = true);
  // Registers an existing parameter under a second name (tied weights, e.g. lm_head.weight = embedding
  // weight): state_dict lists both keys, named_parameters() lists it once.
  Var register_parameter(const std::string& name, const Var& shared);
  Tensor register_buffer(const std::string& name, Tensor init, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

  // Recursive, dotted names, PyTorch order; a tied parameter appears once (under its first name).
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  NamedTensors named_buffers(bool persistent_only = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  std::vector<Var> parameters() const;
  int64_t num_parameters() const;  // elements of all trainable parameters

  // Parameters and persistent buffers, in PyTorch state_dict order (values shared, not copied).
  NamedTensors state_dict() const;
  // Copies matching tensors in (converting dtype). With strict, any problem throws Error listing all of
  // them, naming `origin` (a file path, say); nothing is modified in that case.
  LoadReport load_state_dict(const NamedTensors& source, bool strict = true, const std::string& origin = "state_dict");

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool training() const { return training_; }
  void zero_grad();  // drops every parameter's gradient
  // Converts every parameter and floating buffer to `dt` in place (handles stay valid), e.g. F64 for
  // gradient checks. Integer buffers keep their dtype.
  void to(DType dt);

  // Looks up a parameter or buffer of this module (not children) by local name; throws when absent.
  Var& param(const std::string& name);
  Tensor& buffer(const std::string& name);
  Tensor buffer(const std::string& name) const;  // a handle sharing the buffer's storage

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Var>>* params, NamedTensors* buffers,
               bool persistent_only) const;

  std::vector<std::pair<std::string, Var>> params_;
  struct Buffer {
    std::string name;
    Tensor value;
    bool persistent;
  };
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Checkpoints: the state_dict as safetensors, with metadata (see docs/conventions.md). Written atomically.
void save_module(const std::string& path, const Module& m, const Metadata& metadata = {});
// Loads `path` into `m` (strict by default; errors name the file and every bad key). Returns the metadata.
Metadata load_module(const std::string& path, Module& m, bool strict = true);

}  // namespace ssmkit::core
