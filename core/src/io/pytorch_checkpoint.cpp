// PyTorch checkpoint reader: the torch-specific meaning of the restricted pickle (the allowed globals,
// persistent ids to storages, _rebuild_tensor_v2), the two container formats (zip archive and the
// legacy stream of five pickles followed by raw storages), materialisation of tensors and the choice of
// the state dict. Rules are documented in ssmkit/core/io/pytorch_checkpoint.h.
// Not here: the zip parsing (io/zip_reader.cpp) and the pickle machine (io/pickle.cpp). Follows
// torch/serialization.py (_load, _legacy_load) and torch/_utils.py (_rebuild_tensor_v2) of torch 1.13/2.x.
#include "ssmkit/core/io/pytorch_checkpoint.h"

#include <bit>
#include <cerrno>
#include <cstring>
#include <map>
#include <unordered_map>

#include "io/mapped_file.h"
#include "io/pickle.h"
#include "io/zip_reader.h"

namespace ssmkit::core {

static_assert(std::endian::native == std::endian::little, "ssmkit's checkpoint readers assume a little-endian host");

using pickle::Kind;
using pickle::Node;
using pickle::shown;

[[noreturn]] static void fail(const std::string& origin, const std::string& what, const std::string& hint) {
  throw Error(origin + ": " + what + " (" + hint + ")");
}

static constexpr int64_t kMaxNdim = 64;
static constexpr int64_t kMaxExpandedNumel = int64_t{1} << 24;  // elements a stride-0 view may expand to
static const char* kDtypesHint = "ssmkit reads float32, float64, float16, bfloat16, int64, int32, uint8 and bool tensors";

// --- PthFile ----------------------------------------------------------------------------------------

bool PthFile::has(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return true;
  return false;
}

const Tensor& PthFile::get(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return kv.second;
  std::string present;
  for (size_t i = 0; i < tensors.size() && i < 8; ++i) present += (i ? ", " : "") + shown(tensors[i].first);
  if (tensors.size() > 8) present += ", ... (" + std::to_string(tensors.size()) + " in all)";
  fail(path, "no tensor " + shown(name) + (selected.empty() ? "" : " in " + shown(selected)),
       tensors.empty() ? std::string("the state dict is empty") : "present: " + present);
}

int64_t PthFile::numel() const {
  int64_t n = 0;
  for (const auto& kv : tensors) n += kv.second.numel();
  return n;
}

// --- the meaning of names: state-dict contents only ---------------------------------------------------

namespace {

struct StorageClass {
  const char* name;
  DType dtype;
  bool is_bool;
  const char* unsupported;  // non-null: the torch dtype ssmkit has no tensor type for
};

const StorageClass kStorageClasses[] = {
    {"FloatStorage", DType::F32, false, nullptr},        {"DoubleStorage", DType::F64, false, nullptr},
    {"HalfStorage", DType::F16, false, nullptr},         {"BFloat16Storage", DType::BF16, false, nullptr},
    {"LongStorage", DType::I64, false, nullptr},         {"IntStorage", DType::I32, false, nullptr},
    {"ByteStorage", DType::U8, false, nullptr},          {"BoolStorage", DType::U8, true, nullptr},
    {"ShortStorage", DType::U8, false, "int16"},         {"CharStorage", DType::U8, false, "int8"},
    {"ComplexFloatStorage", DType::U8, false, "complex64"}, {"ComplexDoubleStorage", DType::U8, false, "complex128"},
    {"QInt8Storage", DType::U8, false, "qint8"},         {"QUInt8Storage", DType::U8, false, "quint8"},
    {"QInt32Storage", DType::U8, false, "qint32"},       {"QUInt4x2Storage", DType::U8, false, "quint4x2"},
    {"QUInt2x4Storage", DType::U8, false, "quint2x4"},   {"UntypedStorage", DType::U8, false, "untyped storage"},
};

struct TorchHooks : pickle::Hooks {
  pickle::Arena& arena;
  const std::string& origin;
  const PthOptions& opts;
  bool legacy = false;
  bool torchscript = false;  // the zip holds code/ or constants.pkl: a torch.jit.save archive
  bool in_main = false;      // persistent ids are allowed only in the object pickle
  std::map<std::string, Node*> storages;  // key -> Storage node, in key order

  TorchHooks(pickle::Arena& a, const std::string& o, const PthOptions& op) : arena(a), origin(o), opts(op) {}

  [[noreturn]] void refuse(const pickle::Site& where, const std::string& what, const std::string& hint) const {
    throw Error(where.str() + ": " + what + " (" + hint + ")");
  }

  Node* global(const std::string& module, const std::string& name, const pickle::Site& where) override {
    auto make = [&](pickle::GlobalId id) {
      Node* g = arena.make(Kind::Global);
      g->global = id;
      g->s = module + "." + name;
      return g;
    };
    if (module == "collections" && name == "OrderedDict") return make(pickle::GlobalId::OrderedDict);
    if (module == "_codecs" && name == "encode") return make(pickle::GlobalId::CodecsEncode);
    if (module == "torch._utils") {
      if (name == "_rebuild_tensor_v2") return make(pickle::GlobalId::RebuildTensorV2);
      if (name == "_rebuild_parameter") return make(pickle::GlobalId::RebuildParameter);
      if (name == "_rebuild_parameter_with_state") return make(pickle::GlobalId::RebuildParameterWithState);
    }
    if (module == "torch") {
      for (const StorageClass& c : kStorageClasses) {
        if (name != c.name) continue;
        if (c.unsupported)
          refuse(where, "tensors of dtype " + std::string(c.unsupported) + " (torch." + name + ") are not supported", kDtypesHint);
        Node* g = make(pickle::GlobalId::StorageType);
        g->dtype = c.dtype;
        g->b = c.is_bool;
        return g;
      }
    }
    if (opts.opaque_objects) {
      Node* o = arena.make(Kind::Opaque);
      o->s = module + "." + name;
      return o;
    }
    std::string hint =
        torchscript || module.rfind("__torch__", 0) == 0
            ? "this looks like a TorchScript archive (torch.jit.save); save model.state_dict() with torch.save instead"
            : "only state-dict contents are allowed: collections.OrderedDict, torch tensors, parameters and storages; "
              "nothing named in a file is ever imported or run. If the file is trusted and keeps other objects next to "
              "the weights (training arguments, numpy scalars), PthOptions::opaque_objects (ssm-convert --ignore-objects) "
              "skips them";
    refuse(where, "refuses the global " + shown(module + "." + name, 120), hint);
  }

  static bool is_int(const Node* n) { return n->kind == Kind::Int; }

  Node* rebuild_tensor(const Node* args, const pickle::Site& where) {
    const std::string who = "torch._utils._rebuild_tensor_v2";
    const auto& a = args->items;
    if (a.size() != 6 && a.size() != 7)
      refuse(where, who + " called with " + std::to_string(a.size()) + " arguments",
             "expected (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])");
    if (a[0]->kind != Kind::Storage) refuse(where, who + ": argument 1 is a " + kind_name(a[0]->kind) + ", not a storage", "corrupt file");
    if (!is_int(a[1]) || a[1]->i < 0) refuse(where, who + ": storage_offset is not a non-negative int", "corrupt file");
    if (a[2]->kind != Kind::Tuple || a[3]->kind != Kind::Tuple)
      refuse(where, who + ": size and stride must be tuples, got " + kind_name(a[2]->kind) + " and " + kind_name(a[3]->kind), "corrupt file");
    if (a[2]->items.size() != a[3]->items.size())
      refuse(where, who + ": size has " + std::to_string(a[2]->items.size()) + " dims but stride " + std::to_string(a[3]->items.size()),
             "corrupt file");
    if (static_cast<int64_t>(a[2]->items.size()) > kMaxNdim)
      refuse(where, who + ": " + std::to_string(a[2]->items.size()) + " dims", "at most 64 are supported");
    if (a[4]->kind != Kind::Bool) refuse(where, who + ": requires_grad is a " + kind_name(a[4]->kind) + ", not a bool", "corrupt file");
    if (a[5]->kind != Kind::Dict) refuse(where, who + ": backward_hooks is a " + kind_name(a[5]->kind) + ", not a dict", "corrupt file");
    if (a.size() == 7 && a[6]->kind != Kind::Dict && a[6]->kind != Kind::None)
      refuse(where, who + ": metadata is a " + kind_name(a[6]->kind) + ", not a dict", "corrupt file");

    const Node* st = a[0];
    Node* t = arena.make(Kind::Tensor);
    t->view = std::make_unique<pickle::TensorView>();
    pickle::TensorView& v = *t->view;
    v.storage = const_cast<Node*>(st);
    t->dtype = st->dtype;
    t->b = st->b;
    v.offset = a[1]->i;
    int64_t numel = 1, last = v.offset;  // last: index of the last element addressed
    bool overflow = false;
    for (size_t d = 0; d < a[2]->items.size(); ++d) {
      const Node* sz = a[2]->items[d];
      const Node* sd = a[3]->items[d];
      if (!is_int(sz) || sz->i < 0 || !is_int(sd) || sd->i < 0)
        refuse(where, who + ": size/stride element " + std::to_string(d) + " is not a non-negative int", "corrupt file");
      v.size.push_back(sz->i);
      v.stride.push_back(sz->i == 1 ? 0 : sd->i);  // a size-1 dim's stride addresses nothing
      int64_t span;
      overflow |= __builtin_mul_overflow(numel, sz->i, &numel);
      if (sz->i > 0) overflow |= __builtin_mul_overflow(sz->i - 1, sd->i, &span) || __builtin_add_overflow(last, span, &last);
    }
    if (overflow || numel > (int64_t{1} << 56))
      refuse(where, "tensor of size " + shape_str(v.size) + " is too large (element count or extent overflows)", "corrupt file");
    if (numel > 0 && last >= st->i)
      refuse(where,
             "tensor of size " + shape_str(v.size) + ", stride " + shape_str(v.stride) + ", offset " + std::to_string(v.offset) +
                 " reaches element " + std::to_string(last) + " of storage " + shown(st->s) + " which holds " +
                 std::to_string(st->i) + " elements",
             "inconsistent file: the storage is too small for the tensor");
    if (numel > std::max(st->i, kMaxExpandedNumel))
      refuse(where,
             "tensor of size " + shape_str(v.size) + " expands " + std::to_string(st->i) + " stored elements to " +
                 std::to_string(numel),
             "stride-0 views larger than 2^24 elements are refused");
    return t;
  }

  // _codecs.encode(text, 'latin1'): protocol 2's spelling of a bytes object; each code point is one byte.
  Node* latin1_bytes(const Node* args, const pickle::Site& where) {
    const auto& a = args->items;
    if (a.size() != 2 || a[0]->kind != Kind::Str || a[1]->kind != Kind::Str || (a[1]->s != "latin1" && a[1]->s != "latin-1"))
      refuse(where, "_codecs.encode called with other arguments than (str, 'latin1')", "only the bytes encoding of protocol 2 is read");
    Node* b = arena.make(Kind::Bytes);
    const std::string& u = a[0]->s;  // valid UTF-8 (checked when read)
    for (size_t i = 0; i < u.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(u[i]);
      if (c < 0x80) {
        b->s += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && i + 1 < u.size()) {
        unsigned cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(u[++i]) & 0x3fu);
        if (cp > 0xff) refuse(where, "_codecs.encode: a character above U+00FF has no latin1 byte", "corrupt pickle");
        b->s += static_cast<char>(cp);
      } else {
        refuse(where, "_codecs.encode: a character above U+00FF has no latin1 byte", "corrupt pickle");
      }
    }
    return b;
  }

  Node* call(Node* fn, Node* args, const pickle::Site& where) override {
    if (fn->kind == Kind::Opaque) {
      Node* o = arena.make(Kind::Opaque);
      o->s = fn->s;
      return o;
    }
    if (fn->kind != Kind::Global) refuse(where, std::string("calls a ") + kind_name(fn->kind), "corrupt pickle");
    const auto& a = args->items;
    switch (fn->global) {
      case pickle::GlobalId::OrderedDict:
        if (!a.empty()) refuse(where, "collections.OrderedDict called with arguments", "torch.save pickles OrderedDict() and then its items");
        return arena.make(Kind::Dict);
      case pickle::GlobalId::RebuildTensorV2: return rebuild_tensor(args, where);
      case pickle::GlobalId::RebuildParameter:
      case pickle::GlobalId::RebuildParameterWithState: {
        size_t want = fn->global == pickle::GlobalId::RebuildParameter ? 3 : 4;
        if (a.size() != want || a[0]->kind != Kind::Tensor || a[1]->kind != Kind::Bool || a[2]->kind != Kind::Dict)
          refuse(where, fn->s + " called with other arguments than (tensor, requires_grad, backward_hooks" +
                            (want == 4 ? std::string(", state)") : std::string(")")),
                 "corrupt file");
        return a[0];
      }
      case pickle::GlobalId::StorageType: refuse(where, "calls the storage class " + fn->s, "storages come only from persistent ids");
      case pickle::GlobalId::CodecsEncode: return latin1_bytes(args, where);
    }
    refuse(where, "calls " + fn->s, "corrupt pickle");
  }

  void build(Node* obj, Node* state, const pickle::Site& where) override {
    if (obj->kind == Kind::Opaque) return;
    if (obj->kind == Kind::Dict && (state->kind == Kind::Dict || state->kind == Kind::Tuple || state->kind == Kind::None))
      return;  // an OrderedDict's attributes (the state dict's _metadata): not needed
    refuse(where, std::string("BUILD on a ") + kind_name(obj->kind) + " with a " + kind_name(state->kind), "not part of a state dict");
  }

  Node* persistent_load(Node* pid, const pickle::Site& where) override {
    if (!in_main) refuse(where, "persistent id outside the object pickle", "corrupt file");
    const char* form = legacy ? "('storage', storage_type, key, location, numel, None)" : "('storage', storage_type, key, location, numel)";
    if (pid->kind != Kind::Tuple || pid->items.empty() || (pid->items[0]->kind != Kind::Str && pid->items[0]->kind != Kind::Bytes))
      refuse(where, std::string("persistent id is a ") + kind_name(pid->kind) + " that is not a tagged tuple", std::string("expected ") + form);
    const auto& a = pid->items;
    if (a[0]->s != "storage")
      refuse(where, "persistent id of type " + shown(a[0]->s) + " is not supported",
             a[0]->s == "module" ? "the file pickles a whole nn.Module; save its state_dict() instead" : "only storages are read");
    if (a.size() != (legacy ? 6u : 5u)) refuse(where, "persistent id with " + std::to_string(a.size()) + " fields", std::string("expected ") + form);
    if (legacy && a[5]->kind != Kind::None)
      refuse(where, "storage view metadata in a persistent id", "storage views of torch < 0.4 are not supported; re-save with a newer torch");
    if (a[1]->kind != Kind::Global || a[1]->global != pickle::GlobalId::StorageType)
      refuse(where, std::string("persistent id names a ") + kind_name(a[1]->kind) + ", not a storage type", std::string("expected ") + form);
    if (a[2]->kind != Kind::Str || a[2]->s.empty() || a[2]->s.size() > 256)
      refuse(where, "storage key is not a non-empty string", std::string("expected ") + form);
    if (a[3]->kind != Kind::Str) refuse(where, "storage location is not a string", std::string("expected ") + form);
    if (a[4]->kind != Kind::Int || a[4]->i < 0) refuse(where, "storage numel is not a non-negative int", std::string("expected ") + form);
    const DType dt = a[1]->dtype;
    int64_t nbytes;
    if (__builtin_mul_overflow(a[4]->i, static_cast<int64_t>(dtype_size(dt)), &nbytes))
      refuse(where, "storage of " + std::to_string(a[4]->i) + " elements overflows", "corrupt file");
    auto it = storages.find(a[2]->s);
    if (it != storages.end()) {
      Node* s = it->second;
      if (s->dtype != dt || s->b != a[1]->b || s->i != a[4]->i)
        refuse(where, "storage " + shown(a[2]->s) + " is used with two different types or sizes", "inconsistent file");
      return s;
    }
    Node* s = arena.make(Kind::Storage);
    s->s = a[2]->s;
    s->dtype = dt;
    s->b = a[1]->b;
    s->i = a[4]->i;  // numel
    storages.emplace(s->s, s);
    return s;
  }
};

// --- tensors ---------------------------------------------------------------------------------------------

// A contiguous copy of the view `t` on its storage (geometry checked in rebuild_tensor, bytes located).
Tensor materialise(const Node* t) {
  const pickle::TensorView& v = *t->view;
  Tensor out = Tensor::empty(v.size, t->dtype);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const size_t es = dtype_size(t->dtype);
  const uint8_t* src = v.storage->bytes;
  uint8_t* dst = static_cast<uint8_t*>(out.raw());
  const size_t nd = v.size.size();
  bool contiguous = true;
  for (int64_t d = static_cast<int64_t>(nd) - 1, expect = 1; d >= 0; --d) {
    if (v.size[static_cast<size_t>(d)] != 1 && v.stride[static_cast<size_t>(d)] != expect) contiguous = false;
    expect *= v.size[static_cast<size_t>(d)];
  }
  if (contiguous) {
    std::memcpy(dst, src + static_cast<size_t>(v.offset) * es, static_cast<size_t>(n) * es);
  } else {
    std::vector<int64_t> idx(nd, 0);
    int64_t off = v.offset;
    for (int64_t k = 0; k < n; ++k) {
      std::memcpy(dst + static_cast<size_t>(k) * es, src + static_cast<size_t>(off) * es, es);
      for (size_t d = nd; d-- > 0;) {  // odometer over the dims, last fastest
        off += v.stride[d];
        if (++idx[d] < v.size[d]) break;
        off -= v.stride[d] * v.size[d];
        idx[d] = 0;
      }
    }
  }
  if (t->b)
    for (int64_t k = 0; k < n; ++k) dst[k] = dst[k] != 0;
  return out;
}

// --- choosing the state dict --------------------------------------------------------------------------

bool is_state_dict(const Node* n) {
  if (n->kind != Kind::Dict || n->keys.empty()) return false;
  for (size_t i = 0; i < n->keys.size(); ++i)
    if (n->keys[i]->kind != Kind::Str || n->items[i]->kind != Kind::Tensor) return false;
  return true;
}

std::string describe(const Node* n) {
  switch (n->kind) {
    case Kind::Dict: {
      size_t tensors = 0;
      for (const Node* v : n->items) tensors += v->kind == Kind::Tensor;
      return "dict of " + std::to_string(n->keys.size()) + (tensors ? ", " + std::to_string(tensors) + " tensors" : std::string());
    }
    case Kind::List:
    case Kind::Tuple: return std::string(kind_name(n->kind)) + " of " + std::to_string(n->items.size());
    case Kind::Opaque: return "object " + shown(n->s);
    default: return kind_name(n->kind);
  }
}

std::string list_keys(const Node* dict) {
  std::string s;
  size_t shown_n = std::min<size_t>(dict->keys.size(), 12);
  for (size_t i = 0; i < shown_n; ++i) {
    const Node* k = dict->keys[i];
    s += (i ? ", " : "") + (k->kind == Kind::Str ? shown(k->s) : std::string(kind_name(k->kind))) + " (" + describe(dict->items[i]) + ")";
  }
  if (shown_n < dict->keys.size()) s += ", ... (" + std::to_string(dict->keys.size()) + " in all)";
  return s.empty() ? "it is empty" : s;
}

const Node* search(const Node* n, const std::vector<std::string>& order, int level, std::string& path) {
  if (is_state_dict(n)) return n;
  if (n->kind != Kind::Dict || level >= 3) return nullptr;
  for (const std::string& k : order) {
    const Node* child = pickle::dict_get(n, k);
    if (!child) continue;
    std::string sub = path.empty() ? k : path + "/" + k;
    if (const Node* r = search(child, order, level + 1, sub)) {
      path = sub;
      return r;
    }
  }
  return nullptr;
}

const Node* select_state_dict(const Node* root, const PthOptions& opts, const std::string& origin, std::string& path) {
  if (!opts.key.empty()) {
    const Node* n = root;
    size_t start = 0;
    for (;;) {
      size_t slash = opts.key.find('/', start);
      std::string k = opts.key.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      std::string at = path.empty() ? "the top-level object" : shown(path);
      if (n->kind != Kind::Dict) fail(origin, "key path " + shown(opts.key) + ": " + at + " is a " + describe(n) + ", not a dict", "check the key path");
      const Node* child = pickle::dict_get(n, k);
      if (!child) fail(origin, "key path " + shown(opts.key) + ": no key " + shown(k) + " in " + at, "keys there: " + list_keys(n));
      path = path.empty() ? k : path + "/" + k;
      n = child;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (!is_state_dict(n))
      fail(origin, shown(path) + " is a " + describe(n) + ", not a state dict",
           n->kind == Kind::Dict ? "a state dict maps string keys to tensors only; keys there: " + list_keys(n)
                                 : std::string("a state dict maps string keys to tensors"));
    return n;
  }
  static const std::vector<std::string> plain = {"model", "state_dict", "model_ema", "state_dict_ema"};
  static const std::vector<std::string> ema = {"model_ema", "state_dict_ema", "model", "state_dict"};
  if (const Node* r = search(root, opts.prefer_ema ? ema : plain, 0, path)) return r;
  if (root->kind != Kind::Dict)
    fail(origin, "the file holds a " + describe(root) + ", not a state dict", "expected a dict of tensors, or one under 'model'/'state_dict'");
  fail(origin, "no state dict (a dict of string keys to tensors) at the top level or under 'model', 'state_dict', 'model_ema', 'state_dict_ema'",
       "top-level keys: " + list_keys(root) + "; choose one with PthOptions::key (ssm-convert --key)");
}

// --- the two container formats ----------------------------------------------------------------------------

int parse_version(const uint8_t* p, size_t n, const std::string& origin, const std::string& entry) {
  int v = 0;
  size_t i = 0;
  for (; i < n && p[i] >= '0' && p[i] <= '9' && v < 100000; ++i) v = v * 10 + (p[i] - '0');
  bool rest_ok = i > 0;
  for (; i < n; ++i) rest_ok &= p[i] == '\n' || p[i] == '\r' || p[i] == ' ';
  if (!rest_ok || v == 0) fail(origin, "record " + shown(entry) + " is not a version number", "corrupt archive");
  return v;
}

const Node* load_zip(const uint8_t* data, size_t size, const std::string& origin, const PthOptions& opts, pickle::Arena& arena,
                     TorchHooks& hooks, PthFile& out) {
  zip::Reader z(data, size, origin);
  if (z.entries().empty()) fail(origin, "the zip archive is empty", "expected torch.save's archive/data.pkl");
  const std::string& first = z.entries()[0].name;
  size_t slash = first.find('/');
  if (slash == std::string::npos || slash == 0)
    fail(origin, "first archive entry " + shown(first) + " is not inside a folder", "torch.save writes <name>/data.pkl, <name>/data/<key>, ...");
  const std::string prefix = first.substr(0, slash + 1);
  for (const zip::Entry& e : z.entries()) {
    const std::string& n = e.name;
    if (n.rfind(prefix + "code/", 0) == 0 || n == prefix + "constants.pkl") hooks.torchscript = true;
  }
  const zip::Entry* pkl = z.find(prefix + "data.pkl");
  if (!pkl) fail(origin, "no " + shown(prefix + "data.pkl") + " in the archive", "not a torch.save file (a zip of something else?)");

  const zip::Entry* ver = z.find(prefix + "version");
  if (!ver) ver = z.find(prefix + ".data/version");
  if (!ver) fail(origin, "no " + shown(prefix + "version") + " record in the archive", "not a torch.save file, or a damaged one");
  out.format_version = parse_version(z.read(*ver, opts.verify_crc), static_cast<size_t>(ver->size), origin, ver->name);
  if (const zip::Entry* bo = z.find(prefix + "byteorder")) {
    std::string order(reinterpret_cast<const char*>(z.read(*bo, opts.verify_crc)), static_cast<size_t>(bo->size));
    if (order != "little")
      fail(origin, "byteorder record says " + shown(order), "only little-endian checkpoints are read; re-save on a little-endian machine");
  }

  const uint8_t* p = z.read(*pkl, opts.verify_crc);
  size_t pos = 0;
  hooks.in_main = true;
  const Node* root = pickle::load(p, static_cast<size_t>(pkl->size), pos, arena, hooks, origin, "data.pkl");
  hooks.in_main = false;

  for (auto& [key, st] : hooks.storages) {
    const std::string name = prefix + "data/" + key;
    const zip::Entry* e = z.find(name);
    if (!e) fail(origin, "unknown storage key " + shown(key) + ": no entry " + shown(name), "inconsistent or truncated archive");
    const uint64_t need = static_cast<uint64_t>(st->i) * dtype_size(st->dtype);
    if (e->size < need)
      fail(origin, "storage " + shown(name) + " holds " + std::to_string(e->size) + " bytes, its tensors need " + std::to_string(need),
           "inconsistent or truncated archive");
    st->bytes = z.read(*e, opts.verify_crc);
  }
  return root;
}

const Node* load_legacy(const uint8_t* data, size_t size, const std::string& origin, pickle::Arena& arena, TorchHooks& hooks,
                        PthFile& out) {
  size_t pos = 0;
  // 1. magic number 0x1950a86a20f9469cfc6c, 2. protocol version 1001, 3. system info.
  const Node* magic = pickle::load(data, size, pos, arena, hooks, origin, "pickle 1 (magic number)");
  static const uint8_t kMagic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (magic->kind != Kind::BigInt || magic->s.size() != 10 || std::memcmp(magic->s.data(), kMagic, 10) != 0)
    fail(origin, "the first pickle is not torch's magic number", "not a torch.save file (legacy format), or a corrupt one");
  const Node* proto = pickle::load(data, size, pos, arena, hooks, origin, "pickle 2 (protocol version)");
  if (proto->kind != Kind::Int || proto->i != 1001)
    fail(origin, "legacy protocol version is not 1001", "a corrupt file, or one from an unknown torch version");
  out.format_version = 1001;
  const Node* info = pickle::load(data, size, pos, arena, hooks, origin, "pickle 3 (system info)");
  const Node* le = info->kind == Kind::Dict ? pickle::dict_get(info, "little_endian") : nullptr;
  if (!le || le->kind != Kind::Bool) fail(origin, "system info pickle has no little_endian flag", "corrupt file");
  if (!le->b) fail(origin, "the file was written on a big-endian machine", "only little-endian checkpoints are read");

  hooks.in_main = true;
  const Node* root = pickle::load(data, size, pos, arena, hooks, origin, "pickle 4 (the object)");
  hooks.in_main = false;
  const Node* keys = pickle::load(data, size, pos, arena, hooks, origin, "pickle 5 (storage keys)");
  if (keys->kind != Kind::List) fail(origin, "storage key pickle is a " + std::string(kind_name(keys->kind)) + ", not a list", "corrupt file");

  // 6. the storages, in the listed order: int64 element count, then the raw little-endian elements.
  for (const Node* k : keys->items) {
    if (k->kind != Kind::Str) fail(origin, "storage key list holds a " + std::string(kind_name(k->kind)), "corrupt file");
    auto it = hooks.storages.find(k->s);
    if (it == hooks.storages.end())
      fail(origin, "storage " + shown(k->s) + " is listed but no tensor uses it", "inconsistent file");
    Node* st = it->second;
    if (st->bytes) fail(origin, "storage " + shown(k->s) + " is listed twice", "inconsistent file");
    if (size - pos < 8)
      fail(origin, "storage " + shown(k->s) + " at byte " + std::to_string(pos) + ": file ends inside its element count", "the file is truncated");
    int64_t count = 0;
    std::memcpy(&count, data + pos, 8);
    if (count != st->i)
      fail(origin,
           "storage " + shown(k->s) + " at byte " + std::to_string(pos) + " records " + std::to_string(count) + " elements, its tensors say " +
               std::to_string(st->i),
           "inconsistent or corrupt file");
    pos += 8;
    const uint64_t nbytes = static_cast<uint64_t>(count) * dtype_size(st->dtype);
    if (size - pos < nbytes)
      fail(origin,
           "storage " + shown(k->s) + " needs " + std::to_string(nbytes) + " bytes at byte " + std::to_string(pos) + ", " +
               std::to_string(size - pos) + " left",
           "the file is truncated");
    st->bytes = data + pos;
    pos += static_cast<size_t>(nbytes);
  }
  for (const auto& [key, st] : hooks.storages)
    if (!st->bytes) fail(origin, "unknown storage key " + shown(key) + ": not in the file's storage list", "inconsistent or truncated file");
  return root;
}

PthFile parse_image(const uint8_t* data, size_t size, const std::string& origin, const PthOptions& opts) {
  PthFile out;
  out.path = origin;
  pickle::Arena arena(origin);
  TorchHooks hooks(arena, origin, opts);
  const Node* root;
  if (size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0) {
    out.format = "zip";
    root = load_zip(data, size, origin, opts, arena, hooks, out);
  } else if (size >= 2 && data[0] == 0x80) {
    out.format = "legacy";
    hooks.legacy = true;
    root = load_legacy(data, size, origin, arena, hooks, out);
  } else if (size >= 512 && std::memcmp(data + 257, "ustar", 5) == 0) {
    fail(origin, "a tar archive (the format of torch < 0.1.10)", "load and re-save it with a newer torch");
  } else {
    fail(origin, size == 0 ? "the file is empty" : "neither a zip archive nor a pickle stream",
         "not a torch.save file (expected a .pth/.pt checkpoint)");
  }

  if (root->kind == Kind::Dict)
    for (const Node* k : root->keys)
      if (k->kind == Kind::Str) out.top_keys.push_back(k->s);
  const Node* sd = select_state_dict(root, opts, origin, out.selected);
  out.tensors.reserve(sd->keys.size());
  for (size_t i = 0; i < sd->keys.size(); ++i) out.tensors.emplace_back(sd->keys[i]->s, materialise(sd->items[i]));
  for (const std::string& prefix : opts.strip_prefixes) out.tensors = strip_key_prefix(std::move(out.tensors), prefix, origin);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> strip_key_prefix(std::vector<std::pair<std::string, Tensor>> tensors,
                                                             const std::string& prefix, const std::string& origin) {
  if (prefix.empty()) return tensors;
  std::unordered_map<std::string, std::string> seen;  // new name -> old name
  seen.reserve(tensors.size());
  for (auto& kv : tensors) {
    std::string old = kv.first;
    if (kv.first.rfind(prefix, 0) == 0) kv.first.erase(0, prefix.size());
    auto [it, fresh] = seen.emplace(kv.first, old);
    if (!fresh)
      fail(origin, "stripping " + shown(prefix) + " makes " + shown(it->second) + " and " + shown(old) + " both " + shown(kv.first),
           "keep the prefix, or drop one of the two entries");
  }
  return tensors;
}

PthFile parse_pytorch_checkpoint(const void* bytes, size_t size, const std::string& origin, const PthOptions& options) {
  if (size > 0 && bytes == nullptr) fail(origin, "null buffer of " + std::to_string(size) + " bytes", "pass the image's bytes");
  return parse_image(static_cast<const uint8_t*>(bytes), size, origin, options);
}

PthFile load_pytorch_checkpoint(const std::string& path, const PthOptions& options) {
  // The tensors are copies: the mapping goes when parsing ends.
  const io_detail::MappedFile m = io_detail::map_file(path, "a .pth/.pt file", 1);
  if (m.size == 0) fail(path, "the file is empty", "not a torch.save file");
  return parse_image(m.data, m.size, path, options);
}

}  // namespace ssmkit::core
