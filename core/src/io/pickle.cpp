// Private: the restricted pickle machine (see pickle.h). One loop over opcodes with an explicit value
// stack, a MARK stack and a memo, as in CPython's Lib/pickle.py (_Unpickler.load_*); every length read
// from the file is checked against the bytes left, every pop against the innermost MARK, every memo
// lookup against the memo. Errors read "<file>: <pickle> at byte N: <what> (<hint>)".
// Not here: any meaning for names (Hooks), protocol 0/1 text opcodes, sets, buffers, extension codes.
#include "io/pickle.h"

#include <algorithm>
#include <cstring>

#include "ssmkit/core/error.h"
#include "io/utf8.h"

namespace ssmkit::core::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "class/function";
    case Kind::Opaque: return "object";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

std::string shown(const std::string& s, size_t max_len) {
  std::string out = "'";
  for (unsigned char c : s.substr(0, max_len)) {
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + (s.size() > max_len ? "...'" : "'");
}

Node* Arena::make(Kind k) {
  if (used_ == block_size_) {
    if (total_ >= kMaxNodes)
      throw Error(origin_ + ": the pickle creates more than " + std::to_string(kMaxNodes) +
                  " objects (a corrupt or hostile file; a training checkpoint has about 1e5)");
    block_size_ = std::min<size_t>(4096, size_t{64} << std::min<size_t>(blocks_.size(), 6));
    blocks_.push_back(std::make_unique<Node[]>(block_size_));
    used_ = 0;
  }
  ++total_;
  Node* n = &blocks_.back()[used_++];
  n->kind = k;
  return n;
}

// Identity of a dict key, so that Python's "same key replaces the value" holds for the hashable
// values a pickle can hold (1 == True == 1.0 as in Python); containers compare by identity.
static std::string key_id(const Node* k) {
  switch (k->kind) {
    case Kind::Str: return "s" + k->s;
    case Kind::Bytes: return "b" + k->s;
    case Kind::Int: return "i" + std::to_string(k->i);
    case Kind::Bool: return k->b ? "i1" : "i0";
    case Kind::None: return "n";
    case Kind::BigInt: return "I" + k->s;
    case Kind::Float:
      if (k->f == static_cast<double>(static_cast<int64_t>(k->f)) && k->f > -9.2e18 && k->f < 9.2e18)
        return "i" + std::to_string(static_cast<int64_t>(k->f));
      return "f" + std::to_string(k->f);
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "p%p", static_cast<const void*>(k));
      return buf;
    }
  }
}

void dict_set(Node* dict, Node* key, Node* value) {
  if (!dict->index) dict->index = std::make_unique<std::unordered_map<std::string, size_t>>();
  auto [it, fresh] = dict->index->emplace(key_id(key), dict->keys.size());
  if (fresh) {
    dict->keys.push_back(key);
    dict->items.push_back(value);
  } else {
    dict->items[it->second] = value;
  }
}

Node* dict_get(const Node* dict, const std::string& str_key) {
  if (!dict->index) return nullptr;
  auto it = dict->index->find("s" + str_key);
  return it == dict->index->end() ? nullptr : dict->items[it->second];
}

// UTF-8 as Python's "utf-8"/"surrogatepass" decoder accepts it: no overlongs, nothing above U+10FFFF.
static bool utf8_ok(const uint8_t* s, size_t n) { return io_detail::utf8_invalid_at(s, n, true) == n; }

static const char* opcode_name(uint8_t op) {
  switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

namespace {

struct Machine {
  Machine(const uint8_t* d_, size_t n_, size_t& pos_, Arena& arena_, Hooks& hooks_, const std::string& origin_,
          const std::string& name_)
      : d(d_), n(n_), pos(pos_), arena(arena_), hooks(hooks_), origin(origin_), name(name_) {}
  const uint8_t* d;
  size_t n;
  size_t& pos;
  Arena& arena;
  Hooks& hooks;
  const std::string& origin;
  const std::string& name;
  std::vector<Node*> stack;
  std::vector<size_t> marks;  // stack heights at each open MARK
  // The memo: keys below kDenseMemo (all that pickle writes) in a vector, others in a map.
  static constexpr uint64_t kDenseMemo = uint64_t{1} << 20;
  std::vector<Node*> memo_dense;
  std::unordered_map<uint64_t, Node*> memo_sparse;
  size_t memo_count = 0;  // distinct keys (MEMOIZE stores under this, as Python's len(memo))
  size_t op_pos = 0;
  uint8_t op = 0;
  Node* none = nullptr;
  Node* yes = nullptr;
  Node* no = nullptr;
  Node* empty_tuple = nullptr;

  Site where() const { return Site{origin, name, op_pos}; }

  [[noreturn]] void fail(const std::string& what, const std::string& hint) const {
    const char* on = opcode_name(op);
    throw Error(where().str() + " (" + (on ? on : "?") + "): " + what + " (" + hint + ")");
  }

  const uint8_t* take(uint64_t k) {
    if (n - pos < k)
      fail("truncated: needs " + std::to_string(k) + " more bytes, " + std::to_string(n - pos) + " left",
           "the file is cut short or corrupt");
    const uint8_t* p = d + pos;
    pos += static_cast<size_t>(k);
    return p;
  }
  uint64_t le(size_t k) {
    const uint8_t* p = take(k);
    uint64_t v = 0;
    for (size_t i = k; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }

  size_t floor() const { return marks.empty() ? 0 : marks.back(); }
  Node* pop() {
    if (stack.size() <= floor()) fail("stack underflow", "corrupt pickle");
    Node* v = stack.back();
    stack.pop_back();
    return v;
  }
  Node* top() {
    if (stack.size() <= floor()) fail("stack underflow", "corrupt pickle");
    return stack.back();
  }
  std::vector<Node*> pop_mark() {
    if (marks.empty()) fail("no MARK to pop to", "corrupt pickle");
    size_t m = marks.back();
    marks.pop_back();
    std::vector<Node*> items(stack.begin() + static_cast<std::ptrdiff_t>(m), stack.end());
    stack.resize(m);
    return items;
  }
  void nest(Node* parent, const Node* child) {
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxDepth)
      fail("containers nest deeper than " + std::to_string(kMaxDepth) + " levels", "a state dict nests a few levels; corrupt or hostile file");
  }
  Node* make_str(Kind k, uint64_t len) {
    const uint8_t* p = take(len);
    if (k == Kind::Str && !utf8_ok(p, static_cast<size_t>(len))) fail("string is not valid UTF-8", "corrupt pickle");
    Node* v = arena.make(k);
    v->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    return v;
  }
  Node* make_int(const uint8_t* p, uint64_t len) {  // little-endian two's complement
    size_t k = static_cast<size_t>(len);
    bool neg = k > 0 && (p[k - 1] & 0x80);
    while (k > 1 && p[k - 1] == (neg ? 0xff : 0x00) && ((p[k - 2] & 0x80) != 0) == neg) --k;  // redundant sign bytes
    if (k > 8) {
      Node* v = arena.make(Kind::BigInt);
      v->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      return v;
    }
    uint64_t u = neg ? ~uint64_t{0} : 0;  // sign-extended
    for (size_t i = k; i-- > 0;) u = (u << 8) | p[i];
    Node* v = arena.make(Kind::Int);
    v->i = static_cast<int64_t>(u);
    return v;
  }
  Node* make_tuple(const std::vector<Node*>& items) {
    if (items.empty()) return empty_tuple;
    Node* t = arena.make(Kind::Tuple);
    t->items = items;
    for (Node* x : items) nest(t, x);
    return t;
  }
  std::string read_line() {  // GLOBAL's module and name, each ended by '\n'
    const uint8_t* start = d + pos;
    const void* nl = std::memchr(start, '\n', std::min<size_t>(n - pos, 1024));
    if (!nl) fail("name not ended by a newline within 1024 bytes", "corrupt pickle");
    size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nl) - start);
    pos += len + 1;
    return std::string(reinterpret_cast<const char*>(start), len);
  }
  void set_items(Node* dict, const std::vector<Node*>& kv) {
    if (dict->kind != Kind::Dict) fail(std::string("SETITEM(S) on a ") + kind_name(dict->kind), "only dicts take items");
    if (kv.size() % 2) fail("SETITEMS with an odd number of items", "corrupt pickle");
    for (size_t i = 0; i < kv.size(); i += 2) {
      nest(dict, kv[i]);
      nest(dict, kv[i + 1]);
      // a tensor stored under a string key is named after it in later messages
      if (kv[i + 1]->kind == Kind::Tensor && kv[i + 1]->s.empty() && kv[i]->kind == Kind::Str) kv[i + 1]->s = kv[i]->s;
      dict_set(dict, kv[i], kv[i + 1]);
    }
  }
  void append(Node* list, const std::vector<Node*>& xs) {
    if (list->kind != Kind::List) fail(std::string("APPEND(S) on a ") + kind_name(list->kind), "only lists take appends");
    for (Node* x : xs) {
      nest(list, x);
      list->items.push_back(x);
    }
  }
  void push(Node* v) { stack.push_back(v); }
  void memo_put(uint64_t idx, Node* v) {
    if (idx < kDenseMemo) {
      if (idx >= memo_dense.size()) memo_dense.resize(std::max<size_t>(static_cast<size_t>(idx) + 1, 2 * memo_dense.size()), nullptr);
      memo_count += memo_dense[idx] == nullptr;
      memo_dense[idx] = v;
    } else {
      memo_count += memo_sparse.emplace(idx, v).second ? 1 : 0;
      memo_sparse[idx] = v;
    }
  }
  Node* memo_get(uint64_t idx) {
    Node* v = nullptr;
    if (idx < kDenseMemo) {
      if (idx < memo_dense.size()) v = memo_dense[idx];
    } else {
      auto it = memo_sparse.find(idx);
      if (it != memo_sparse.end()) v = it->second;
    }
    if (!v) fail("memo key " + std::to_string(idx) + " is not defined (" + std::to_string(memo_count) + " entries)", "corrupt pickle");
    return v;
  }

  Node* run() {
    none = arena.make(Kind::None);
    yes = arena.make(Kind::Bool);
    yes->b = true;
    no = arena.make(Kind::Bool);
    empty_tuple = arena.make(Kind::Tuple);
    op_pos = pos;
    if (pos >= n || d[pos] != 0x80)
      fail("does not start with PROTO", "only pickle protocols 2-5 are read (torch.save uses 2 unless told otherwise)");
    for (;;) {
      op_pos = pos;
      op = 0;
      if (pos >= n) fail("ends before STOP", "the file is cut short or corrupt");
      op = d[pos++];
      switch (op) {
        case 0x80: {  // PROTO
          uint64_t v = le(1);
          if (v < 2 || v > 5) fail("protocol " + std::to_string(v), "only pickle protocols 2-5 are read");
          break;
        }
        case 0x95: {  // FRAME: a length hint; opcodes run on regardless of frame boundaries
          uint64_t len = le(8);
          if (len > n - pos) fail("frame of " + std::to_string(len) + " bytes runs past the end", "the file is cut short or corrupt");
          break;
        }
        case '.': {  // STOP
          Node* v = pop();
          return v;
        }
        case '(':
          if (marks.size() >= kMaxMarks) fail("more than " + std::to_string(kMaxMarks) + " open MARKs", "corrupt or hostile pickle");
          marks.push_back(stack.size());
          break;
        case '0':
          if (stack.size() > floor()) {
            stack.pop_back();
          } else {
            pop_mark();
          }
          break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        case 'N': push(none); break;
        case 0x88: push(yes); break;
        case 0x89: push(no); break;
        case 'J': {
          Node* v = arena.make(Kind::Int);
          v->i = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
          push(v);
          break;
        }
        case 'K':
        case 'M': {
          Node* v = arena.make(Kind::Int);
          v->i = static_cast<int64_t>(le(op == 'K' ? 1 : 2));
          push(v);
          break;
        }
        case 0x8a:
        case 0x8b: {
          uint64_t len = op == 0x8a ? le(1) : static_cast<uint64_t>(static_cast<int32_t>(static_cast<uint32_t>(le(4))));
          if (op == 0x8b && static_cast<int64_t>(len) < 0) fail("negative length", "corrupt pickle");
          push(make_int(take(len), len));
          break;
        }
        case 'G': {
          uint64_t bits = 0;
          const uint8_t* p = take(8);
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
          Node* v = arena.make(Kind::Float);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X': push(make_str(Kind::Str, le(4))); break;
        case 0x8c: push(make_str(Kind::Str, le(1))); break;
        case 0x8d: push(make_str(Kind::Str, le(8))); break;
        case 'U': push(make_str(Kind::Str, le(1))); break;
        case 'T': {
          int32_t len = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
          if (len < 0) fail("negative length", "corrupt pickle");
          push(make_str(Kind::Str, static_cast<uint64_t>(len)));
          break;
        }
        case 'B': push(make_str(Kind::Bytes, le(4))); break;
        case 'C': push(make_str(Kind::Bytes, le(1))); break;
        case 0x8e:
        case 0x96: push(make_str(Kind::Bytes, le(8))); break;
        case ')': push(empty_tuple); break;
        case 't': push(make_tuple(pop_mark())); break;
        case 0x85:
        case 0x86:
        case 0x87: {
          size_t k = static_cast<size_t>(op - 0x84);
          std::vector<Node*> items(k);
          for (size_t i = k; i-- > 0;) items[i] = pop();
          push(make_tuple(items));
          break;
        }
        case ']': push(arena.make(Kind::List)); break;
        case 'l': {
          Node* l = arena.make(Kind::List);
          append(l, pop_mark());
          push(l);
          break;
        }
        case 'a': {
          Node* v = pop();
          append(top(), {v});
          break;
        }
        case 'e': {
          std::vector<Node*> xs = pop_mark();
          append(top(), xs);
          break;
        }
        case '}': push(arena.make(Kind::Dict)); break;
        case 'd': {
          Node* dct = arena.make(Kind::Dict);
          set_items(dct, pop_mark());
          push(dct);
          break;
        }
        case 's': {
          Node* v = pop();
          Node* k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {
          std::vector<Node*> kv = pop_mark();
          set_items(top(), kv);
          break;
        }
        case 'c': {
          std::string module = read_line();
          std::string attr = read_line();
          push(hooks.global(module, attr, where()));
          break;
        }
        case 0x93: {
          Node* attr = pop();
          Node* module = pop();
          if (module->kind != Kind::Str || attr->kind != Kind::Str)
            fail(std::string("STACK_GLOBAL needs two strings, got ") + kind_name(module->kind) + " and " + kind_name(attr->kind),
                 "corrupt pickle");
          push(hooks.global(module->s, attr->s, where()));
          break;
        }
        case 'R': {
          Node* args = pop();
          Node* fn = top();
          if (args->kind != Kind::Tuple) fail(std::string("REDUCE arguments are a ") + kind_name(args->kind) + ", not a tuple", "corrupt pickle");
          stack.back() = hooks.call(fn, args, where());
          break;
        }
        case 0x81: {
          Node* args = pop();
          Node* cls = pop();
          if (args->kind != Kind::Tuple) fail(std::string("NEWOBJ arguments are a ") + kind_name(args->kind) + ", not a tuple", "corrupt pickle");
          push(hooks.call(cls, args, where()));
          break;
        }
        case 0x92: {
          Node* kwargs = pop();
          Node* args = pop();
          Node* cls = pop();
          if (args->kind != Kind::Tuple || kwargs->kind != Kind::Dict)
            fail("NEWOBJ_EX needs a tuple and a dict", "corrupt pickle");
          if (!kwargs->keys.empty() && cls->kind != Kind::Opaque) fail("NEWOBJ_EX with keyword arguments", "not part of a state dict");
          push(hooks.call(cls, args, where()));
          break;
        }
        case 'b': {
          Node* state = pop();
          hooks.build(top(), state, where());
          break;
        }
        case 'Q': {
          Node* pid = pop();
          push(hooks.persistent_load(pid, where()));
          break;
        }
        case 'h':
        case 'j': {
          uint64_t idx = le(op == 'h' ? 1 : 4);
          push(memo_get(idx));
          break;
        }
        case 'q':
        case 'r': {
          uint64_t idx = le(op == 'q' ? 1 : 4);
          memo_put(idx, top());
          break;
        }
        case 0x94: memo_put(memo_count, top()); break;
        default: {
          const char* on = opcode_name(op);
          char buf[8];
          std::snprintf(buf, sizeof buf, "0x%02x", op);
          if (!on) fail(std::string("unknown opcode ") + buf, "corrupt file, or not a pickle");
          fail(std::string("opcode ") + on + " (" + buf + ") is not supported",
               "only what torch.save writes for state dicts is read (protocols 2-5; no text opcodes, sets, "
               "extension codes or out-of-band buffers)");
        }
      }
    }
  }
};

}  // namespace

Node* load(const uint8_t* data, size_t size, size_t& pos, Arena& arena, Hooks& hooks, const std::string& origin,
           const std::string& name) {
  Machine m(data, size, pos, arena, hooks, origin, name);
  return m.run();
}

}  // namespace ssmkit::core::pickle
