// PyTorch checkpoint reader: the golden groupmamba_small .pth files (zip and legacy) against
// groupmamba.safetensors bit for bit; the committed fixtures of tests/data/pytorch (every dtype, views,
// shared storages, nested/EMA dicts, protocols 2/4/5, objects next to the weights); hand-made hostile
// and inconsistent files (built here byte by byte: pickles, stored and ZIP64 zips, legacy streams);
// truncation at every cut point; and a seeded mutation fuzz loop that must only parse or throw Error.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gradcheck.h"
#include "ssmkit/core/io/pytorch_checkpoint.h"
#include "ssmkit/core/io/safetensors.h"

namespace fs = std::filesystem;
using namespace ssmkit::core;
using ssmkit::test::golden_file;

using Bytes = std::vector<uint8_t>;

// --- helpers ----------------------------------------------------------------------------------------

static Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

static void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

static std::string fixture(const std::string& name) { return std::string(SSMKIT_TEST_DATA_DIR) + "/pytorch/" + name; }

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ssmkit_test_pth_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

static bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == 0 || std::memcmp(ca.raw(), cb.raw(), ca.nbytes()) == 0;
}

static const char* kOrigin = "bad.pth";

// parse must throw Error whose message starts with the origin and contains every part.
static void expect_error(const Bytes& img, std::initializer_list<std::string> parts, const PthOptions& o = {}) {
  try {
    parse_pytorch_checkpoint(img.data(), img.size(), kOrigin, o);
    ADD_FAILURE() << "no error; expected one mentioning \"" << *parts.begin() << "\"";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind(std::string(kOrigin) + ": ", 0), 0u) << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing \"" << p << "\" in: " << msg;
    EXPECT_EQ(msg.back(), ')') << "no (hint) at the end of: " << msg;
  }
}

// CRC-32 as zip uses it (bitwise, independent of the library's table version).
static uint32_t crc32_of(const Bytes& b) {
  uint32_t c = 0xffffffffu;
  for (uint8_t x : b) {
    c ^= x;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void put16(Bytes& b, uint64_t v) { for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
static void put32(Bytes& b, uint64_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
static void put64(Bytes& b, uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
static void put_str(Bytes& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }

struct ZipItem {
  std::string name;
  Bytes data;
  uint16_t method = 0;
  uint16_t flags = 0;
};

// A zip image of stored entries. zip64: ZIP64 end records, and every central size/offset saturated
// with the real values in a ZIP64 extra field (legal for any archive, needed only above 4 GiB).
static Bytes make_zip(const std::vector<ZipItem>& items, bool zip64 = false) {
  Bytes b;
  std::vector<uint64_t> offsets;
  for (const ZipItem& it : items) {
    offsets.push_back(b.size());
    put32(b, 0x04034b50);
    put16(b, zip64 ? 45 : 20), put16(b, it.flags), put16(b, it.method), put16(b, 0), put16(b, 0);
    put32(b, crc32_of(it.data)), put32(b, it.data.size()), put32(b, it.data.size());
    put16(b, it.name.size()), put16(b, 0);
    put_str(b, it.name);
    b.insert(b.end(), it.data.begin(), it.data.end());
  }
  uint64_t cd_offset = b.size();
  for (size_t i = 0; i < items.size(); ++i) {
    const ZipItem& it = items[i];
    put32(b, 0x02014b50);
    put16(b, zip64 ? 45 : 20), put16(b, zip64 ? 45 : 20), put16(b, it.flags), put16(b, it.method), put16(b, 0), put16(b, 0);
    put32(b, crc32_of(it.data));
    put32(b, zip64 ? 0xffffffffu : it.data.size()), put32(b, zip64 ? 0xffffffffu : it.data.size());
    put16(b, it.name.size()), put16(b, zip64 ? 28 : 0), put16(b, 0), put16(b, 0), put16(b, 0), put32(b, 0);
    put32(b, zip64 ? 0xffffffffu : offsets[i]);
    put_str(b, it.name);
    if (zip64) {
      put16(b, 1), put16(b, 24);
      put64(b, it.data.size()), put64(b, it.data.size()), put64(b, offsets[i]);
    }
  }
  uint64_t cd_size = b.size() - cd_offset;
  if (zip64) {
    uint64_t e64 = b.size();
    put32(b, 0x06064b50), put64(b, 44), put16(b, 45), put16(b, 45), put32(b, 0), put32(b, 0);
    put64(b, items.size()), put64(b, items.size()), put64(b, cd_size), put64(b, cd_offset);
    put32(b, 0x07064b50), put32(b, 0), put64(b, e64), put32(b, 1);
  }
  put32(b, 0x06054b50), put16(b, 0), put16(b, 0);
  put16(b, zip64 ? 0xffff : items.size()), put16(b, zip64 ? 0xffff : items.size());
  put32(b, zip64 ? 0xffffffffu : cd_size), put32(b, zip64 ? 0xffffffffu : cd_offset), put16(b, 0);
  return b;
}

// A pickle assembler: each method appends one opcode (and its argument) as CPython's pickler writes it.
struct Pkl {
  Bytes b;
  Pkl& op(uint8_t c) { b.push_back(c); return *this; }
  Pkl& proto(int v = 2) { return op(0x80).op(static_cast<uint8_t>(v)); }
  Pkl& mark() { return op('('); }
  Pkl& tuple() { return op('t'); }
  Pkl& reduce() { return op('R'); }
  Pkl& stop() { return op('.'); }
  Pkl& none() { return op('N'); }
  Pkl& boolean(bool v) { return op(v ? 0x88 : 0x89); }
  Pkl& str(const std::string& s) {
    op('X');
    put32(b, s.size());
    put_str(b, s);
    return *this;
  }
  Pkl& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<uint8_t>(v));
    if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      put32(b, static_cast<uint64_t>(v));
      return *this;
    }
    op(0x8a).op(8);
    put64(b, static_cast<uint64_t>(v));
    return *this;
  }
  Pkl& global(const std::string& m, const std::string& n) {
    op('c');
    put_str(b, m + "\n" + n + "\n");
    return *this;
  }
  Pkl& ints(const std::vector<int64_t>& v) {
    mark();
    for (int64_t x : v) integer(x);
    return tuple();
  }
  Pkl& odict() { return global("collections", "OrderedDict").op(')').reduce(); }
  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  Pkl& tensor(const std::string& stype, const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& size,
              const std::vector<int64_t>& stride, bool legacy = false) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", stype).str(key).str("cpu").integer(numel);
    if (legacy) none();
    tuple().op('Q');
    integer(offset).ints(size).ints(stride).boolean(false).odict();
    return tuple().reduce();
  }
  Pkl& cat(const Bytes& more) {
    b.insert(b.end(), more.begin(), more.end());
    return *this;
  }
};

static Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// An OrderedDict {'w': FloatStorage '0' of `numel` elements viewed as size/stride/offset}.
static Bytes one_tensor_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                               bool legacy = false, const std::string& stype = "FloatStorage") {
  Pkl p;
  p.proto().odict().mark().str("w").tensor(stype, "0", numel, offset, size, stride, legacy).op('u').stop();
  return p.b;
}

// A torch.save zip image: archive/data.pkl, archive/data/<key> for each storage, archive/version.
static Bytes pth_zip(const Bytes& pkl, const std::vector<std::pair<std::string, Bytes>>& storages, bool zip64 = false,
                     std::vector<ZipItem> extra = {}) {
  std::vector<ZipItem> items = {{"archive/data.pkl", pkl}};
  for (const auto& [k, v] : storages) items.push_back({"archive/data/" + k, v});
  items.push_back({"archive/version", Bytes{'3', '\n'}});
  for (ZipItem& e : extra) items.push_back(std::move(e));
  return make_zip(items, zip64);
}

// A legacy torch.save stream: magic, protocol 1001, system info, the object, the key list, the storages.
static Bytes pth_legacy(const Bytes& main_pkl, const std::vector<std::pair<std::string, Bytes>>& storages, int elem_size = 4,
                        bool little_endian = true) {
  Bytes b = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  Pkl proto;
  proto.proto().integer(1001).stop();
  Pkl info;
  info.proto().op('}').str("little_endian").boolean(little_endian).op('s').stop();
  Pkl keys;
  keys.proto().op(']').mark();
  for (const auto& s : storages) keys.str(s.first);
  keys.op('e').stop();
  b.insert(b.end(), proto.b.begin(), proto.b.end());
  b.insert(b.end(), info.b.begin(), info.b.end());
  b.insert(b.end(), main_pkl.begin(), main_pkl.end());
  b.insert(b.end(), keys.b.begin(), keys.b.end());
  for (const auto& s : storages) {
    put64(b, s.second.size() / static_cast<size_t>(elem_size));
    b.insert(b.end(), s.second.begin(), s.second.end());
  }
  return b;
}

// --- the golden checkpoints ---------------------------------------------------------------------------

// groupmamba_small(.pth|_legacy.pth) hold exactly the `param.<key>` tensors of groupmamba.safetensors
// (whose header is sorted by name, so the two are matched by key).
static void expect_golden_weights(const std::string& pth, const char* format, int version) {
  SafetensorsFile st = load_safetensors(golden_file("models/groupmamba.safetensors"));
  PthFile f = load_pytorch_checkpoint(golden_file(pth));
  EXPECT_EQ(f.format, format);
  EXPECT_EQ(f.format_version, version);
  EXPECT_EQ(f.selected, "");
  size_t n_want = 0;
  for (const auto& kv : st.tensors) n_want += kv.first.rfind("param.", 0) == 0;
  ASSERT_EQ(f.tensors.size(), n_want);
  size_t n_i64 = 0;
  int64_t n_params = 0;
  for (const auto& [key, t] : f.tensors) {
    ASSERT_TRUE(st.has("param." + key)) << key;
    Tensor want = st.get("param." + key);
    // The golden safetensors stores the 0-dim num_batches_tracked (torch.tensor(0)) with shape [1];
    // the .pth files keep torch's shape [], which is what the reader must return.
    if (t.dtype() == DType::I64 && t.ndim() == 0 && want.shape() == Shape{1}) want = want.view({});
    EXPECT_EQ(t.dtype(), want.dtype()) << key;
    EXPECT_EQ(t.shape(), want.shape()) << key;
    EXPECT_TRUE(t.is_contiguous()) << key;
    EXPECT_TRUE(same_bytes(t, want)) << key << " differs from groupmamba.safetensors";
    n_i64 += t.dtype() == DType::I64;
    n_params += t.numel();
  }
  EXPECT_EQ(f.tensors.front().first, "patch_embed1.conv.0.weight");  // state_dict() order, not sorted
  EXPECT_EQ(n_i64, 3u);  // the BatchNorm num_batches_tracked scalars
  EXPECT_EQ(f.numel(), n_params);
  std::printf("%s: %zu tensors, %lld values compared bit for bit with groupmamba.safetensors\n", pth.c_str(),
              f.tensors.size(), static_cast<long long>(n_params));
}

TEST(PthGolden, ZipFileMatchesSafetensorsBitForBit) { expect_golden_weights("models/groupmamba_small.pth", "zip", 3); }
TEST(PthGolden, LegacyFileMatchesSafetensorsBitForBit) { expect_golden_weights("models/groupmamba_small_legacy.pth", "legacy", 1001); }

TEST(PthGolden, ZipAndLegacyAgreeAndParseFromMemory) {
  Bytes z = read_bytes(golden_file("models/groupmamba_small.pth"));
  PthFile a = parse_pytorch_checkpoint(z.data(), z.size(), "mem.pth");
  PthFile b = load_pytorch_checkpoint(golden_file("models/groupmamba_small_legacy.pth"));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_TRUE(same_bytes(a.tensors[i].second, b.tensors[i].second)) << a.tensors[i].first;
  }
  EXPECT_EQ(a.top_keys.size(), a.tensors.size());  // the top level is the state dict itself
}

// --- the committed fixtures (tests/data/pytorch/make_fixtures.py) -----------------------------------------

static std::vector<double> range_values(int n, double scale, double shift) {
  std::vector<double> v;
  for (int k = 0; k < n; ++k) v.push_back(k * scale + shift);
  return v;
}

struct Expect {
  std::string key;
  DType dtype;
  Shape shape;
  std::vector<double> values;
};

// model_state(0) of make_fixtures.py, with its keys under `prefix` ("module." as saved, "" when stripped).
static std::vector<Expect> model_state(const std::string& prefix) {
  std::vector<double> i64;
  for (int k = 0; k < 5; ++k) i64.push_back(static_cast<double>(int64_t{k} * 1000000007 - (int64_t{1} << 40)));
  std::vector<double> f64;
  for (int k = 0; k < 6; ++k) f64.push_back(k / 3.0);
  return {
      {prefix + "f32", DType::F32, {3, 4}, range_values(12, 0.25, -1)},
      {prefix + "f64", DType::F64, {6}, f64},
      {prefix + "f16", DType::F16, {10}, range_values(10, 0.5, -2.5)},
      {prefix + "bf16", DType::BF16, {8}, range_values(8, 0.125, -0.375)},
      {prefix + "i64", DType::I64, {5}, i64},
      {prefix + "i32", DType::I32, {4}, range_values(4, 1, -2)},
      {prefix + "u8", DType::U8, {6}, range_values(6, 40, 0)},
      {prefix + "bool", DType::U8, {3}, {1, 0, 1}},
      {prefix + "transposed", DType::F32, {3, 2}, {0, 3, 1, 4, 2, 5}},
      {prefix + "shared_a", DType::F32, {2}, {1, 2}},
      {prefix + "shared_b", DType::F32, {5}, {5, 7, 9, 11, 13}},
      {prefix + "scalar", DType::F32, {}, {3.5}},
      {prefix + "empty", DType::F32, {0, 4}, {}},
      {prefix + "expanded", DType::F32, {3, 2}, {1, 2, 1, 2, 1, 2}},
      {prefix + "param", DType::F32, {2}, {0.5, -0.5}},
      {"num_batches_tracked", DType::I64, {}, {5}},
  };
}

static void expect_tensors(const PthFile& f, const std::vector<Expect>& want) {
  ASSERT_EQ(f.tensors.size(), want.size()) << f.path;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& [key, t] = f.tensors[i];
    EXPECT_EQ(key, want[i].key) << f.path << " entry " << i;
    EXPECT_EQ(t.dtype(), want[i].dtype) << key;
    EXPECT_EQ(t.shape(), want[i].shape) << key;
    EXPECT_TRUE(t.is_contiguous()) << key;
    EXPECT_EQ(t.to_double_vector(), want[i].values) << f.path << ": " << key;
  }
}

static const std::vector<std::string> kNestedTopKeys = {"model", "model_ema", "optimizer", "epoch", "best_acc", "name",
                                                        "flags", "history", "big", "neg", "blob"};

TEST(PthFixtures, NestedModelEveryDtypeViewsAndSharedStorages) {
  for (const char* name : {"nested.pth", "nested_legacy.pth", "nested_proto4.pth"}) {
    PthFile f = load_pytorch_checkpoint(fixture(name));
    EXPECT_EQ(f.format, std::string(name) == "nested_legacy.pth" ? "legacy" : "zip") << name;
    EXPECT_EQ(f.selected, "model") << name;
    EXPECT_EQ(f.top_keys, kNestedTopKeys) << name;
    expect_tensors(f, model_state("module."));
    EXPECT_FALSE(f.get("module.shared_a").same_storage(f.get("module.shared_b")));  // each tensor owns its copy
  }
}

TEST(PthFixtures, StripModulePrefixAndPreferEma) {
  for (const char* name : {"nested.pth", "nested_legacy.pth", "nested_proto4.pth"}) {
    PthOptions o;
    o.strip_prefixes = {"module."};
    expect_tensors(load_pytorch_checkpoint(fixture(name), o), model_state(""));
    o.prefer_ema = true;
    PthFile e = load_pytorch_checkpoint(fixture(name), o);
    EXPECT_EQ(e.selected, "model_ema");
    expect_tensors(e, {{"f32", DType::F32, {3, 4}, range_values(12, 0.25, 0)}, {"i32", DType::I32, {4}, range_values(4, 1, 10)}});
  }
}

TEST(PthFixtures, ExplicitKeyPath) {
  PthOptions o;
  o.key = "model_ema";
  EXPECT_EQ(load_pytorch_checkpoint(fixture("nested.pth"), o).tensors.size(), 2u);
  o.key = "optimizer/state";  // a dict keyed by ints: not a state dict
  try {
    load_pytorch_checkpoint(fixture("nested.pth"), o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'optimizer/state' is a dict of 1, not a state dict"), std::string::npos) << e.what();
  }
  o.key = "nope";
  try {
    load_pytorch_checkpoint(fixture("nested.pth"), o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(fixture("nested.pth") + ": ", 0), 0u) << m;
    EXPECT_NE(m.find("no key 'nope'"), std::string::npos) << m;
    EXPECT_NE(m.find("'model' (dict of 16, 16 tensors)"), std::string::npos) << m;
    EXPECT_NE(m.find("'epoch' (int)"), std::string::npos) << m;
  }
}

TEST(PthFixtures, TimmStyleLegacyProtocol5) {
  PthFile f = load_pytorch_checkpoint(fixture("timm_style_legacy_proto5.pth"));
  EXPECT_EQ(f.format, "legacy");
  EXPECT_EQ(f.selected, "state_dict");
  expect_tensors(f, {{"w", DType::F32, {2}, {1, 2}}, {"b", DType::F32, {1}, {3}}});
  PthOptions o;
  o.prefer_ema = true;
  o.strip_prefixes = {"module."};
  PthFile e = load_pytorch_checkpoint(fixture("timm_style_legacy_proto5.pth"), o);
  EXPECT_EQ(e.selected, "state_dict_ema");
  expect_tensors(e, {{"w", DType::F32, {2}, {1.5, 2.5}}, {"b", DType::F32, {1}, {3.5}}});
}

TEST(PthFixtures, ObjectsNextToWeightsRefusedUnlessOpaque) {
  try {
    load_pytorch_checkpoint(fixture("with_objects.pth"));
    ADD_FAILURE() << "argparse.Namespace was accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(fixture("with_objects.pth") + ": data.pkl at byte ", 0), 0u) << m;
    EXPECT_NE(m.find("refuses the global 'argparse.Namespace'"), std::string::npos) << m;
  }
  PthOptions o;
  o.opaque_objects = true;
  PthFile f = load_pytorch_checkpoint(fixture("with_objects.pth"), o);
  EXPECT_EQ(f.selected, "model");
  expect_tensors(f, {{"w", DType::F32, {2}, {1, 2}}});
}

// --- hand-made files: what is accepted ------------------------------------------------------------------

TEST(PthHandmade, MinimalZipLegacyAndZip64AllRead) {
  Bytes data = f32_bytes({1, 2, 3, 4, 5, 6});
  Bytes pkl = one_tensor_pickle(6, 1, {2, 2}, {1, 2});  // w[i][j] = s[1 + i + 2j]
  std::vector<double> want = {2, 4, 3, 5};
  for (bool z64 : {false, true}) {
    Bytes img = pth_zip(pkl, {{"0", data}}, z64);
    PthFile f = parse_pytorch_checkpoint(img.data(), img.size(), "min.pth");
    ASSERT_EQ(f.tensors.size(), 1u);
    EXPECT_EQ(f.tensors[0].second.to_double_vector(), want) << "zip64 " << z64;
  }
  Bytes leg = pth_legacy(one_tensor_pickle(6, 1, {2, 2}, {1, 2}, true), {{"0", data}});
  PthFile f = parse_pytorch_checkpoint(leg.data(), leg.size(), "min_legacy.pth");
  EXPECT_EQ(f.format, "legacy");
  EXPECT_EQ(f.tensors[0].second.to_double_vector(), want);
}

TEST(PthHandmade, MemoFramesAndStackGlobalOfProtocol4) {
  // protocol 4: FRAME, STACK_GLOBAL, MEMOIZE/BINGET reusing the OrderedDict class and the storage tuple
  Pkl p;
  p.proto(4).op(0x95);
  put64(p.b, 0);  // a frame length hint (not enforced beyond the bytes left)
  p.str("collections").str("OrderedDict").op(0x93).op(0x94).op(')').reduce();  // memo 0: OrderedDict
  p.mark().str("a").tensor("FloatStorage", "0", 2, 0, {2}, {1}).op(0x94);      // memo 1: tensor a
  p.str("b").op('h').op(1);                                                  // b is the same object as a
  p.op('u').stop();
  Bytes img = pth_zip(p.b, {{"0", f32_bytes({7, 8})}});
  PthFile f = parse_pytorch_checkpoint(img.data(), img.size(), "p4.pth");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[1].first, "b");
  EXPECT_EQ(f.tensors[1].second.to_double_vector(), (std::vector<double>{7, 8}));
}

TEST(PthHandmade, CrcIsCheckedUnlessDisabled) {
  Bytes img = read_bytes(fixture("nested.pth"));
  // the first storage's bytes: module.f32 (3,4) starts with -1.0f = 00 00 80 bf
  static const uint8_t minus_one[4] = {0x00, 0x00, 0x80, 0xbf};
  auto it = std::search(img.begin(), img.end(), minus_one, minus_one + 4);
  ASSERT_NE(it, img.end());
  it[3] = 0x3f;  // -1.0f -> +1.0f
  expect_error(img, {"CRC-32", "data/0", "corrupt"});
  PthOptions o;
  o.verify_crc = false;
  PthFile f = parse_pytorch_checkpoint(img.data(), img.size(), kOrigin, o);
  EXPECT_EQ(f.get("module.f32").to_double_vector()[0], 1.0);
}

TEST(PthHandmade, StripPrefixCollisionAndHelpers) {
  std::vector<std::pair<std::string, Tensor>> t = {{"module.a", Tensor::empty({1})}, {"b", Tensor::empty({1})}};
  auto s = strip_key_prefix(t, "module.", "x.pth");
  EXPECT_EQ(s[0].first, "a");
  EXPECT_EQ(s[1].first, "b");
  EXPECT_EQ(strip_key_prefix(t, "", "x.pth")[0].first, "module.a");
  t.emplace_back("a", Tensor::empty({1}));
  try {
    strip_key_prefix(t, "module.", "x.pth");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.pth: stripping 'module.' makes 'module.a' and 'a' both 'a'"), std::string::npos) << e.what();
  }
  PthFile f = load_pytorch_checkpoint(fixture("timm_style_legacy_proto5.pth"));
  EXPECT_TRUE(f.has("w"));
  EXPECT_FALSE(f.has("module.w"));
  try {
    f.get("module.w");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("timm_style_legacy_proto5.pth: no tensor 'module.w' in 'state_dict'"), std::string::npos) << m;
    EXPECT_NE(m.find("'w', 'b'"), std::string::npos) << m;
  }
}

// --- hand-made files: what is refused ------------------------------------------------------------------

TEST(PthHostile, GlobalsOtherThanStateDictContentsAreRefusedByName) {
  TempDir dir;
  const std::string marker = (dir.path / "pwned").string();
  struct Case {
    std::string module, name;
  };
  const Case cases[] = {{"os", "system"},        {"posix", "system"},      {"builtins", "eval"},  {"__builtin__", "exec"},
                        {"subprocess", "Popen"}, {"torch", "load"},        {"torch._utils", "_rebuild_qtensor"},
                        {"collections", "defaultdict"}, {"numpy", "load"}, {"__torch__", "Net"}};
  for (const Case& c : cases) {
    const std::string full = c.module + "." + c.name;
    // GLOBAL + REDUCE as pickle writes os.system('touch marker'), and the same through STACK_GLOBAL
    Pkl g;
    g.proto().global(c.module, c.name).str("touch " + marker).op(0x85).reduce().stop();
    Pkl s;
    s.proto(4).str(c.module).str(c.name).op(0x93).str("touch " + marker).op(0x85).reduce().stop();
    for (const Bytes& pkl : {g.b, s.b}) {
      expect_error(pth_zip(pkl, {}), {"data.pkl at byte ", "refuses the global '" + full + "'"});
      expect_error(pth_legacy(pkl, {}), {"pickle 4 (the object) at byte ", "refuses the global '" + full + "'"});
      expect_error(pkl, {"pickle 1 (magic number) at byte ", "refuses the global '" + full + "'"});  // a bare pickle
    }
  }
  EXPECT_FALSE(fs::exists(marker));
  // TorchScript archives get a hint
  Pkl ts;
  ts.proto().global("__torch__", "Net").op(')').op(0x81).stop();
  expect_error(pth_zip(ts.b, {}, false, {{"archive/code/__torch__.py", Bytes{'#'}}}), {"'__torch__.Net'", "TorchScript"});
}

TEST(PthHostile, CompressedEncryptedAndBrokenZips) {
  Bytes pkl = one_tensor_pickle(4, 0, {4}, {1});
  Bytes good = pth_zip(pkl, {{"0", f32_bytes({1, 2, 3, 4})}});
  std::vector<ZipItem> items = {{"archive/data.pkl", pkl, 8}, {"archive/data/0", f32_bytes({1, 2, 3, 4})}, {"archive/version", Bytes{'3'}}};
  expect_error(make_zip(items), {"entry 'archive/data.pkl' is compressed (method 8, deflate)", "zip -0"});
  items[0].method = 0;
  items[1].flags = 1;
  expect_error(make_zip(items), {"entry 'archive/data/0' is encrypted"});
  items[1].flags = 0;
  items.pop_back();
  expect_error(make_zip(items), {"no 'archive/version' record"});
  expect_error(make_zip({{"archive/other.pkl", pkl}, {"archive/version", Bytes{'3'}}}), {"no 'archive/data.pkl'"});
  expect_error(make_zip({{"data.pkl", pkl}}), {"not inside a folder"});
  expect_error(pth_zip(pkl, {{"0", f32_bytes({1, 2, 3, 4})}}, false, {{"archive/byteorder", Bytes{'b', 'i', 'g'}}}),
               {"byteorder record says 'big'"});
  expect_error(make_zip({{"archive/data.pkl", pkl}, {"archive/data.pkl", pkl}}), {"duplicate entry 'archive/data.pkl'"});
  // a central directory that points outside the file, and end records that disagree
  Bytes bad = good;
  bad[bad.size() - 6] ^= 0x40;  // central directory offset
  expect_error(bad, {"zip: central directory"});
  Bytes sat = good;
  for (int k = 0; k < 4; ++k) sat[sat.size() - 6 + static_cast<size_t>(k)] = 0xff;  // saturated, no ZIP64 locator
  expect_error(sat, {"no ZIP64 locator"});
  Bytes z64 = pth_zip(pkl, {{"0", f32_bytes({1, 2, 3, 4})}}, true);
  Bytes cut = z64;
  cut.erase(cut.end() - 22 - 20 - 56, cut.end() - 22 - 20);  // the ZIP64 end record goes, its locator stays
  expect_error(cut, {"ZIP64"});
}

TEST(PthHostile, InconsistentStoragesAndViews) {
  Bytes four = f32_bytes({1, 2, 3, 4});
  // unknown storage key: the pickle says '0', the archive has data/1
  expect_error(pth_zip(one_tensor_pickle(4, 0, {4}, {1}), {{"1", four}}), {"unknown storage key '0'", "no entry 'archive/data/0'"});
  // record smaller than the storage's numel
  expect_error(pth_zip(one_tensor_pickle(8, 0, {4}, {1}), {{"0", four}}), {"storage 'archive/data/0' holds 16 bytes, its tensors need 32"});
  // views reaching past the storage: size, offset, stride
  expect_error(pth_zip(one_tensor_pickle(4, 0, {5}, {1}), {{"0", four}}), {"reaches element 4 of storage '0' which holds 4 elements"});
  expect_error(pth_zip(one_tensor_pickle(4, 3, {2}, {1}), {{"0", four}}), {"offset 3 reaches element 4"});
  expect_error(pth_zip(one_tensor_pickle(4, 0, {2, 2}, {3, 1}), {{"0", four}}), {"reaches element 4"});
  expect_error(pth_zip(one_tensor_pickle(4, 0, {int64_t{1} << 62, 4}, {1, 1}), {{"0", four}}), {"too large"});
  expect_error(pth_zip(one_tensor_pickle(4, 0, {1 << 13, 1 << 12}, {0, 0}), {{"0", four}}), {"stride-0 views larger than 2^24"});
  expect_error(pth_zip(one_tensor_pickle(4, 0, {2}, {1, 1}), {{"0", four}}), {"size has 1 dims but stride 2"});
  expect_error(pth_zip(one_tensor_pickle(4, 0, {-1}, {1}), {{"0", four}}), {"not a non-negative int"});
  // storage classes: an unsupported dtype, and one key used with two types
  expect_error(pth_zip(one_tensor_pickle(4, 0, {4}, {1}, false, "ShortStorage"), {{"0", four}}), {"int16 (torch.ShortStorage)"});
  Pkl two;
  two.proto().odict().mark().str("a").tensor("FloatStorage", "0", 4, 0, {4}, {1}).str("b").tensor("LongStorage", "0", 4, 0, {4}, {1});
  two.op('u').stop();
  expect_error(pth_zip(two.b, {{"0", four}}), {"storage '0' is used with two different types or sizes"});
  // _rebuild_tensor_v2 with the wrong arity, a persistent id of another kind, legacy views
  Pkl arity;
  arity.proto().global("torch._utils", "_rebuild_tensor_v2").mark().integer(1).tuple().reduce().stop();
  expect_error(pth_zip(arity.b, {}), {"_rebuild_tensor_v2 called with 1 arguments"});
  Pkl module;
  module.proto().mark().str("module").str("Net").str("src").tuple().op('Q').stop();
  expect_error(pth_zip(module.b, {}), {"persistent id of type 'module'", "state_dict()"});
  Pkl view;
  view.proto().mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4);
  view.mark().str("1").integer(0).integer(2).tuple().tuple().op('Q').stop();
  expect_error(pth_legacy(view.b, {{"0", four}}), {"storage view metadata"});
  // OrderedDict with arguments, BUILD on a list, REDUCE with a list of arguments
  Pkl od;
  od.proto().global("collections", "OrderedDict").mark().integer(1).tuple().reduce().stop();
  expect_error(pth_zip(od.b, {}), {"OrderedDict called with arguments"});
  Pkl build;
  build.proto().op(']').op('}').op('b').stop();
  expect_error(pth_zip(build.b, {}), {"BUILD on a list"});
  Pkl red;
  red.proto().global("collections", "OrderedDict").op(']').reduce().stop();
  expect_error(pth_zip(red.b, {}), {"REDUCE arguments are a list"});
}

TEST(PthHostile, BrokenPickles) {
  auto zipped = [](const Pkl& p) { return pth_zip(p.b, {}); };
  Pkl memo;
  memo.proto().op('h').op(7).stop();
  expect_error(zipped(memo), {"memo key 7 is not defined (0 entries)"});
  Pkl bad;
  bad.proto().op(0xff);
  expect_error(zipped(bad), {"unknown opcode 0xff"});
  for (int text_op : {int{'I'}, int{'S'}, int{'g'}, int{'p'}, int{'i'}, int{'o'}, int{'P'}, 0x82, 0x8f, 0x97}) {
    Pkl t;
    t.proto().op(static_cast<uint8_t>(text_op)).op('0').op('\n').stop();
    expect_error(zipped(t), {"is not supported"});
  }
  Pkl proto1;
  proto1.op('N').stop();
  expect_error(zipped(proto1), {"does not start with PROTO"});
  Pkl proto9;
  proto9.proto(9).none().stop();
  expect_error(zipped(proto9), {"protocol 9"});
  Pkl nostop;
  nostop.proto().none();
  expect_error(zipped(nostop), {"ends before STOP"});
  Pkl underflow;
  underflow.proto().op('a').stop();
  expect_error(zipped(underflow), {"stack underflow"});
  Pkl below_mark;  // APPEND may not reach below the innermost MARK
  below_mark.proto().op(']').mark().none().op('a').stop();
  expect_error(zipped(below_mark), {"stack underflow"});
  Pkl nomark;
  nomark.proto().tuple().stop();
  expect_error(zipped(nomark), {"no MARK"});
  Pkl utf8;
  utf8.proto().op('X');
  put32(utf8.b, 2);
  utf8.op(0xc3).op(0x28).stop();
  expect_error(zipped(utf8), {"not valid UTF-8"});
  Pkl longstr;
  longstr.proto().op('X');
  put32(longstr.b, 0xfffffff0u);
  expect_error(zipped(longstr), {"truncated: needs 4294967280 more bytes"});
  Pkl frame;
  frame.proto(4).op(0x95);
  put64(frame.b, 1u << 30);
  expect_error(zipped(frame), {"frame of 1073741824 bytes runs past the end"});
  Pkl setitem;
  setitem.proto().op(']').str("k").none().op('s').stop();
  expect_error(zipped(setitem), {"SETITEM(S) on a list"});
  Pkl odd;
  odd.proto().op('}').mark().str("k").op('u').stop();
  expect_error(zipped(odd), {"odd number of items"});
  // deep nesting: lists in lists, and a list appended to itself
  Pkl deep;
  deep.proto();
  for (int i = 0; i < 200; ++i) deep.op(']');
  for (int i = 0; i < 199; ++i) deep.op('a');
  deep.stop();
  expect_error(zipped(deep), {"nest deeper than 100 levels"});
  Pkl cycle;
  cycle.proto().op(']').op('q').op(0);
  for (int i = 0; i < 150; ++i) cycle.op('h').op(0).op('a');
  cycle.stop();
  expect_error(zipped(cycle), {"nest deeper than 100 levels"});
  Pkl marks;
  marks.proto();
  for (int i = 0; i < 20000; ++i) marks.mark();
  expect_error(zipped(marks), {"more than 10000 open MARKs"});
  // what the pickle holds instead of a state dict
  Pkl list;
  list.proto().op(']').stop();
  expect_error(zipped(list), {"the file holds a list of 0, not a state dict"});
  Pkl other;
  other.proto().op('}').str("epoch").integer(3).op('s').stop();
  expect_error(zipped(other), {"no state dict", "top-level keys: 'epoch' (int)", "PthOptions::key"});
}

TEST(PthHostile, LegacyStreams) {
  Bytes four = f32_bytes({1, 2, 3, 4});
  Bytes pkl = one_tensor_pickle(4, 0, {4}, {1}, true);
  Bytes good = pth_legacy(pkl, {{"0", four}});
  EXPECT_NO_THROW(parse_pytorch_checkpoint(good.data(), good.size(), kOrigin));
  Bytes magic = good;
  magic[4] ^= 1;
  expect_error(magic, {"not torch's magic number"});
  expect_error(pth_legacy(pkl, {{"0", four}}, 4, false), {"big-endian"});
  Bytes count = good;
  count[count.size() - 16 - 8] = 5;  // the element count before the storage bytes
  expect_error(count, {"storage '0' at byte ", "records 5 elements, its tensors say 4"});
  expect_error(pth_legacy(pkl, {{"0", four}, {"1", four}}), {"storage '1' is listed but no tensor uses it"});
  expect_error(pth_legacy(pkl, {}), {"unknown storage key '0'"});
  expect_error(pth_legacy(one_tensor_pickle(4, 0, {4}, {1}, false), {{"0", four}}), {"persistent id with 5 fields"});
  Bytes cut = good;
  cut.resize(cut.size() - 3);
  expect_error(cut, {"storage '0' needs 16 bytes", "truncated"});
  expect_error(Bytes{'h', 'e', 'l', 'l', 'o'}, {"neither a zip archive nor a pickle stream"});
  expect_error(Bytes{}, {"the file is empty"});
  Bytes tar(1024, 0);
  std::memcpy(tar.data() + 257, "ustar", 5);
  expect_error(tar, {"tar archive"});
}

TEST(PthHostile, FileErrors) {
  TempDir dir;
  for (const std::string& p : {(dir.path / "missing.pth").string(), dir.path.string()}) {
    try {
      load_pytorch_checkpoint(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(p + ": ", 0), 0u) << e.what();
    }
  }
  const std::string empty = (dir.path / "empty.pth").string();
  write_bytes(empty, {});
  EXPECT_THROW(load_pytorch_checkpoint(empty), Error);
}

// --- truncation and mutation ----------------------------------------------------------------------------

// Every prefix of a valid file must be refused with Error (the formats have no optional tail). Cuts:
// every byte of the first and last `edge`, and n_cuts spread over the rest.
static void expect_cuts_fail(const Bytes& img, size_t n_cuts, size_t edge, const std::string& name) {
  std::vector<size_t> cuts;
  for (size_t c = 0; c < img.size(); ++c)
    if (c < edge || img.size() - c <= edge || c % std::max<size_t>(1, img.size() / n_cuts) == 0) cuts.push_back(c);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t cut : cuts) {
    try {
      parse_pytorch_checkpoint(img.data(), cut, name);
      ADD_FAILURE() << name << " cut at " << cut << " of " << img.size() << " parsed";
      return;
    } catch (const Error&) {
    }
  }
  std::printf("%s: %zu cut points, all refused (%.0f ms)\n", name.c_str(), cuts.size(),
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

TEST(PthTruncated, GoldenAndFixtureFilesAtManyCutPoints) {
  // (a legacy cut past the object pickle parses all of it: fewer of those)
  expect_cuts_fail(read_bytes(golden_file("models/groupmamba_small.pth")), 400, 256, "groupmamba_small.pth");
  expect_cuts_fail(read_bytes(golden_file("models/groupmamba_small_legacy.pth")), 200, 32, "groupmamba_small_legacy.pth");
  for (const char* name : {"nested.pth", "nested_legacy.pth", "nested_proto4.pth", "timm_style_legacy_proto5.pth"})
    expect_cuts_fail(read_bytes(fixture(name)), 10000, 0, name);  // every cut point
}

namespace {

struct Rng {  // splitmix64
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

struct Seed {
  Bytes img;
  size_t hot_begin, hot_end;  // the pickle bytes, where most decisions are made
};

Seed make_seed(Bytes img) {
  Seed s{std::move(img), 0, 0};
  static const std::string pkl = "data.pkl";
  auto it = std::search(s.img.begin(), s.img.end(), pkl.begin(), pkl.end());
  if (it == s.img.end()) {  // legacy: the pickles are everything before the storages
    s.hot_end = s.img.size();
    return s;
  }
  s.hot_begin = static_cast<size_t>(it - s.img.begin()) + pkl.size();
  static const uint8_t local[4] = {'P', 'K', 3, 4};
  auto next = std::search(it, s.img.end(), local, local + 4);
  s.hot_end = static_cast<size_t>(next - s.img.begin());
  return s;
}

void mutate(Rng& r, Bytes& b, const Seed& seed, const std::vector<Seed>& seeds) {
  static const uint8_t interesting[] = {0,    0xff, 0x7f, 0x80, '(', ')', '.', 'N', 'R', 'Q', 'X', 'K', 'M', 'J', 'h', 'q',
                                        'u',  's',  'a',  'e',  't', 'c', ']', '}', 'b', 0x85, 0x86, 0x89, 0x8a, 0x93, 0x94, 0x95};
  auto pos = [&]() -> size_t {
    if (b.empty()) return 0;
    if (r.below(4) && seed.hot_end > seed.hot_begin && seed.hot_end <= b.size())
      return seed.hot_begin + r.below(seed.hot_end - seed.hot_begin);
    return r.below(b.size());
  };
  switch (r.below(8)) {
    case 0:
      if (!b.empty()) b[pos()] ^= static_cast<uint8_t>(1u << r.below(8));
      break;
    case 1:
    case 2:
      if (!b.empty()) b[pos()] = interesting[r.below(sizeof interesting)];
      break;
    case 3:  // a small integer argument changes (sizes, strides, offsets, numels, memo keys)
      if (!b.empty()) b[pos()] = static_cast<uint8_t>(r.below(2) ? r.below(8) : r.next());
      break;
    case 4:
      b.resize(r.below(b.size() + 1));
      break;
    case 5: {  // splice a chunk of another seed in
      const Bytes& o = seeds[r.below(seeds.size())].img;
      size_t from = r.below(o.size()), len = 1 + r.below(std::min<size_t>(32, o.size() - from));
      size_t at = std::min(pos(), b.size());
      if (r.below(2)) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), o.begin() + static_cast<std::ptrdiff_t>(from),
                 o.begin() + static_cast<std::ptrdiff_t>(from + len));
      } else {
        for (size_t k = 0; k < len && at + k < b.size(); ++k) b[at + k] = o[from + k];
      }
      break;
    }
    case 6: {  // delete a range
      if (b.empty()) break;
      size_t at = pos(), len = 1 + r.below(std::min<size_t>(16, b.size() - at));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + len));
      break;
    }
    default: {  // insert an opcode
      size_t at = std::min(pos(), b.size());
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), interesting[r.below(sizeof interesting)]);
      break;
    }
  }
}

}  // namespace

TEST(PthFuzz, MutatedCheckpointsParseOrThrowError) {
  std::vector<Seed> seeds;
  for (const char* name : {"nested.pth", "nested_legacy.pth", "nested_proto4.pth", "timm_style_legacy_proto5.pth", "with_objects.pth"})
    seeds.push_back(make_seed(read_bytes(fixture(name))));
  Bytes data = f32_bytes({1, 2, 3, 4, 5, 6});
  seeds.push_back(make_seed(pth_zip(one_tensor_pickle(6, 1, {2, 2}, {1, 2}), {{"0", data}}, true)));
  seeds.push_back(make_seed(pth_legacy(one_tensor_pickle(6, 1, {2, 2}, {1, 2}, true), {{"0", data}})));

  Rng r{20250611};
  int clean = 0, errors = 0;
  const int kIters = 20000;
  for (int it = 0; it < kIters; ++it) {
    const Seed& seed = seeds[r.below(seeds.size())];
    Bytes img = seed.img;
    for (size_t m = 0, nm = 1 + r.below(3); m < nm; ++m) mutate(r, img, seed, seeds);
    PthOptions o;
    o.verify_crc = r.below(4) == 0;  // mostly off, so that pickle mutations reach the unpickler
    o.opaque_objects = r.below(2);
    o.prefer_ema = r.below(2);
    if (r.below(4) == 0) o.strip_prefixes = {"module."};
    try {
      PthFile f = parse_pytorch_checkpoint(img.data(), img.size(), "fuzz", o);
      ++clean;
      for (const auto& [key, t] : f.tensors) {
        ASSERT_TRUE(t.defined()) << key;
        ASSERT_TRUE(t.is_contiguous()) << key;
        ASSERT_EQ(t.to_double_vector().size(), static_cast<size_t>(t.numel())) << "iteration " << it << ": " << key;
      }
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << it << ": exception other than Error: " << e.what();
      return;
    }
  }
  std::printf("fuzz: %d clean parses, %d rejected\n", clean, errors);
  EXPECT_EQ(clean + errors, kIters);
  EXPECT_GT(clean, kIters / 50);  // mutations in storage bytes and unused fields stay valid
  EXPECT_GT(errors, kIters / 2);
}
