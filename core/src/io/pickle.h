// Private: a minimal, non-executing unpickler for protocols 2-5 (the pickle machine of CPython's
// Lib/pickle.py, restricted). It builds a graph of inert Nodes; GLOBAL/STACK_GLOBAL, REDUCE/NEWOBJ,
// BUILD and BINPERSID are handed to Hooks, which decide what a name means (load_pytorch_checkpoint
// accepts only state-dict contents). Nothing named in a pickle is ever imported or called.
// Not here: protocol 0/1 text opcodes (INT, STRING, GET, PUT, INST, OBJ, PERSID), sets, extension
// registry codes, out-of-band buffers: all refused by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core::pickle {

enum class Kind : uint8_t {
  None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict,
  Global,   // a name the hooks accepted (what it is: Node::global)
  Opaque,   // an inert placeholder for a name the hooks let through without meaning (never resolved)
  Storage,  // a torch storage from a persistent id
  Tensor,   // a torch tensor rebuilt from a storage (materialised later)
};
const char* kind_name(Kind k);

// What an accepted global is (set by the hooks).
enum class GlobalId : uint8_t {
  OrderedDict, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, StorageType,
  CodecsEncode,  // _codecs.encode(str, 'latin1'): how protocol 2 pickles bytes
};

struct Node;

// Where a Tensor node looks into its storage (elements; set by the hooks).
struct TensorView {
  Node* storage = nullptr;
  int64_t offset = 0;
  Shape size, stride;
};

struct Node {
  Kind kind = Kind::None;
  bool b = false;             // Bool value; for storage types, storages and tensors: torch.bool
  DType dtype = DType::F32;   // StorageType global, Storage and Tensor dtype
  GlobalId global = GlobalId::OrderedDict;  // Global: which one
  int depth = 0;              // containers nested below this node (bounded by kMaxDepth)
  int64_t i = 0;              // Int; Storage: numel
  double f = 0;               // Float
  const uint8_t* bytes = nullptr;  // Storage: its data, once located
  std::string s;              // Str/Bytes contents; BigInt raw little-endian bytes; Global/Opaque "module.name";
                              // Storage key; Tensor label (the first dict key it was stored under)
  std::vector<Node*> items;   // Tuple/List elements; Dict values (same order as keys)
  std::vector<Node*> keys;    // Dict keys, in insertion order
  std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // Dict: key identity -> position
  std::unique_ptr<TensorView> view;                                // Tensor
};

inline constexpr int kMaxDepth = 100;           // nesting of containers (a state dict nests 2-4 deep)
inline constexpr size_t kMaxMarks = 10000;      // open MARKs at once
inline constexpr size_t kMaxNodes = 8u << 20;   // objects per file (a training checkpoint has ~1e5)

// Owns every Node of one file, in blocks of 64, 128, ... 4096 nodes (pointers stay valid as long as
// the arena lives).
class Arena {
 public:
  explicit Arena(std::string origin) : origin_(std::move(origin)) {}
  Node* make(Kind k);  // throws Error beyond kMaxNodes

 private:
  std::vector<std::unique_ptr<Node[]>> blocks_;
  size_t block_size_ = 0;  // of the last block
  size_t used_ = 0;        // nodes used in the last block
  size_t total_ = 0;       // nodes made
  std::string origin_;
};

// Where an opcode sits, for messages: str() is "<file>: <pickle name> at byte N" (built only on error).
struct Site {
  const std::string& origin;
  const std::string& name;
  size_t pos;
  std::string str() const { return origin + ": " + name + " at byte " + std::to_string(pos); }
};

// The meaning of names and calls. Each may throw Error.
struct Hooks {
  virtual ~Hooks() = default;
  virtual Node* global(const std::string& module, const std::string& name, const Site& where) = 0;
  virtual Node* call(Node* callable, Node* args, const Site& where) = 0;  // REDUCE, NEWOBJ(_EX)
  virtual void build(Node* obj, Node* state, const Site& where) = 0;     // BUILD
  virtual Node* persistent_load(Node* pid, const Site& where) = 0;       // BINPERSID
};

// Runs the pickle that starts at data[pos]; on return pos is just past its STOP. `name` labels the pickle
// in errors ("data.pkl", "pickle 4 (the object)"), `origin` is the file.
Node* load(const uint8_t* data, size_t size, size_t& pos, Arena& arena, Hooks& hooks, const std::string& origin,
           const std::string& name);

// Dict helpers (Python semantics: assigning an existing key replaces its value in place).
void dict_set(Node* dict, Node* key, Node* value);
Node* dict_get(const Node* dict, const std::string& str_key);  // nullptr when absent

// Printable, quoted and shortened form of a string from a file, for messages.
std::string shown(const std::string& s, size_t max_len = 80);

}  // namespace ssmkit::core::pickle
