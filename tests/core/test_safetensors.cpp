// safetensors I/O: round trips of every dtype, byte-identical re-serialization of the golden files,
// one test per validation defect (hand-made byte images), atomic writes, and a seeded mutation fuzz loop
// over valid images that must only ever parse cleanly or throw Error.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"

namespace fs = std::filesystem;
using namespace ssmkit::core;
using ssmkit::test::golden_dir;
using ssmkit::test::golden_file;
using ssmkit::test::random_tensor;

using Bytes = std::vector<uint8_t>;
using TensorList = std::vector<std::pair<std::string, Tensor>>;

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

// A file image: header length (little-endian u64), the header as given (no padding), the data bytes.
static Bytes make_image(const std::string& header, const Bytes& data = {}, uint64_t n = UINT64_MAX) {
  if (n == UINT64_MAX) n = header.size();
  Bytes b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

static std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                         uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

static const char* kOrigin = "bad.safetensors";

// parse_safetensors(img) must throw Error whose message names the origin and contains every part.
static void expect_defect(const Bytes& img, std::initializer_list<std::string> parts) {
  try {
    parse_safetensors(img.data(), img.size(), kOrigin);
    ADD_FAILURE() << "no error; expected one mentioning \"" << *parts.begin() << "\"";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind(std::string(kOrigin) + ": ", 0), 0u) << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing \"" << p << "\" in: " << msg;
    EXPECT_EQ(msg.back(), ')') << "no (hint) at the end of: " << msg;
  }
}

static bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == 0 || std::memcmp(ca.raw(), cb.raw(), ca.nbytes()) == 0;
}

// A scratch folder for file tests, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ssmkit_test_safetensors_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::vector<std::string> entries() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(path)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
};

static TensorList every_dtype_list() {
  TensorList t;
  t.emplace_back("f32", random_tensor({2, 3, 4}, 1, -2, 2, DType::F32));
  t.emplace_back("f64", random_tensor({5}, 2, -2, 2, DType::F64));
  t.emplace_back("f16", random_tensor({3, 5}, 3, -4, 4, DType::F16));
  t.emplace_back("bf16", random_tensor({7}, 4, -4, 4, DType::BF16));
  t.emplace_back("i64", random_tensor({2, 2}, 5, -1e12, 1e12, DType::I64));
  t.emplace_back("i32", random_tensor({3}, 6, -1e6, 1e6, DType::I32));
  t.emplace_back("u8", random_tensor({9}, 7, 0, 255, DType::U8));
  t.emplace_back("scalar", Tensor::full({}, 3.5, DType::F64));
  t.emplace_back("scalar_i64", Tensor::full({}, 42, DType::I64));
  t.emplace_back("empty", Tensor::empty({0}, DType::F32));
  t.emplace_back("empty_3d", Tensor::empty({3, 0, 2}, DType::I32));
  t.emplace_back("a_first_by_name", random_tensor({1, 1}, 8, 0, 1, DType::F32));
  return t;
}

static void expect_same_list(const TensorList& want, const SafetensorsFile& got) {
  ASSERT_EQ(got.tensors.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.has(name)) << name;
    const Tensor& g = got.get(name);
    EXPECT_EQ(g.dtype(), t.dtype()) << name;
    EXPECT_EQ(g.shape(), t.shape()) << name;
    EXPECT_TRUE(same_bytes(g, t)) << name;
    EXPECT_EQ(g.to_double_vector(), t.to_double_vector()) << name;
  }
}

// --- round trips ------------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, EveryDtypeScalarAndZeroSizeWithMetadata) {
  TensorList list = every_dtype_list();
  Metadata meta = {{"op", "test"}, {"version", "1"}, {"a_key", "comes after 'version' (insertion order)"}};
  Bytes img = serialize_safetensors(list, meta);
  ASSERT_GE(img.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, img.data(), 8);
  EXPECT_EQ(n % 8, 0u);

  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  expect_same_list(list, f);
  EXPECT_EQ(f.metadata, meta);
  // Header order is name order (byte order).
  for (size_t i = 1; i < f.tensors.size(); ++i) EXPECT_LT(f.tensors[i - 1].first, f.tensors[i].first);

  TempDir dir;
  std::string path = (dir.path / "all.safetensors").string();
  save_safetensors(path, list, meta);
  EXPECT_EQ(read_bytes(path), img);
  SafetensorsFile g = load_safetensors(path);
  EXPECT_EQ(g.path, path);
  expect_same_list(list, g);
  EXPECT_EQ(g.metadata, meta);
  EXPECT_EQ(g.get("scalar").to_double_vector(), std::vector<double>{3.5});
  EXPECT_EQ(g.get("empty_3d").numel(), 0);
}

TEST(SafetensorsRoundTrip, NonContiguousInputsAreWrittenContiguous) {
  Tensor base = random_tensor({4, 5, 6}, 11, -1, 1, DType::F32);
  TensorList list = {{"permuted", base.permute({2, 0, 1})},
                     {"sliced", base.slice(1, 1, 5, 2)},
                     {"selected", base.select(2, 3)},
                     {"transposed_f64", random_tensor({3, 7}, 12).transpose(0, 1)}};
  for (const auto& kv : list) ASSERT_FALSE(kv.second.is_contiguous()) << kv.first;
  Bytes img = serialize_safetensors(list);
  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  for (const auto& [name, t] : list) {
    const Tensor& g = f.get(name);
    EXPECT_TRUE(g.is_contiguous()) << name;
    EXPECT_EQ(g.shape(), t.shape()) << name;
    EXPECT_EQ(g.to_double_vector(), t.to_double_vector()) << name;
  }
  EXPECT_TRUE(f.metadata.empty());
}

TEST(SafetensorsRoundTrip, EmptyListAndMetadataOnly) {
  Bytes img = serialize_safetensors({});
  EXPECT_EQ(img, make_image("{}      "));
  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());

  Bytes m = serialize_safetensors({}, {{"k", "v"}});
  EXPECT_EQ(m, make_image("{\"__metadata__\":{\"k\":\"v\"}}      "));
  EXPECT_EQ(parse_safetensors(m.data(), m.size(), "mem").meta("k"), "v");
}

TEST(SafetensorsRoundTrip, MetadataAndNamesWithEscapesAndUtf8) {
  Metadata meta = {{"quote\"back\\slash", "line\nfeed\ttab\r\b\f"},
                   {"control", std::string("nul\x01\x1f", 5)},
                   {"utf8", "\xce\xa3 \xe2\x86\x92 \xf0\x9f\x98\x80"},  // Σ → 😀
                   {"json", "{\"a\": [1, 2]}"}};
  TensorList list = {{"w\xc3\xa9ight\"q", Tensor::full({2}, 1.5)}};
  Bytes img = serialize_safetensors(list, meta);
  std::string header(img.begin() + 8, img.end() - 8);
  EXPECT_NE(header.find("\\u0001\\u001f"), std::string::npos) << header;
  EXPECT_NE(header.find("line\\nfeed\\ttab\\r\\b\\f"), std::string::npos) << header;
  EXPECT_NE(header.find("\xce\xa3"), std::string::npos) << "UTF-8 is written raw: " << header;
  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  EXPECT_EQ(f.metadata, meta);
  EXPECT_EQ(f.tensors.at(0).first, list[0].first);
  EXPECT_EQ(serialize_safetensors(f.tensors, f.metadata), img);
}

TEST(SafetensorsRoundTrip, MisalignedDataIsCopiedAligned) {
  // Header of 9 bytes: data starts at file offset 17, misaligned for every dtype wider than a byte.
  std::string h = "{" + entry("x", "F32", "[2]", 0, 8) + "," + entry("y", "F64", "[1]", 8, 16) + "," +
                  entry("z", "U8", "[3]", 16, 19) + "}";
  while ((8 + h.size()) % 8 != 1) h += ' ';
  Bytes data(19);
  float xv[2] = {1.25f, -3.5f};
  double yv = 6.0625;
  std::memcpy(data.data(), xv, 8);
  std::memcpy(data.data() + 8, &yv, 8);
  data[16] = 7, data[17] = 8, data[18] = 9;
  Bytes img = make_image(h, data);
  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get("x").data<float>()) % alignof(float), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get("y").data<double>()) % alignof(double), 0u);
  EXPECT_EQ(f.get("x").to_double_vector(), (std::vector<double>{1.25, -3.5}));
  EXPECT_EQ(f.get("y").to_double_vector(), std::vector<double>{6.0625});
  EXPECT_EQ(f.get("z").to_double_vector(), (std::vector<double>{7, 8, 9}));

  TempDir dir;
  std::string path = (dir.path / "odd.safetensors").string();
  write_bytes(path, img);
  SafetensorsFile g = load_safetensors(path);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(g.get("y").data<double>()) % alignof(double), 0u);
  EXPECT_EQ(g.get("y").to_double_vector(), std::vector<double>{6.0625});
}

TEST(SafetensorsRoundTrip, TensorsOutliveTheFileObject) {
  TempDir dir;
  std::string path = (dir.path / "t.safetensors").string();
  save_safetensors(path, {{"a", Tensor::full({3}, 2.0)}});
  Tensor a;
  {
    SafetensorsFile f = load_safetensors(path);
    a = f.get("a");
  }
  fs::remove(path);  // the mapping keeps the data
  EXPECT_EQ(a.to_double_vector(), (std::vector<double>{2, 2, 2}));
}

// --- golden files -----------------------------------------------------------------------------------

static const char* kGoldenCore[] = {"cross_scan_merge", "fftconv", "fftconv_long", "mamba_block", "s4d_kernel",
                                    "selective_scan_full", "selective_scan_grouped", "selective_scan_long",
                                    "selective_scan_plain"};

static void expect_reserialized_identical(const std::string& path) {
  SCOPED_TRACE(path);
  Bytes file = read_bytes(path);
  SafetensorsFile f = load_safetensors(path);
  Bytes again = serialize_safetensors(f.tensors, f.metadata);
  ASSERT_EQ(again.size(), file.size());
  size_t first = std::mismatch(again.begin(), again.end(), file.begin()).first - again.begin();
  EXPECT_EQ(first, again.size()) << "first differing byte at " << first;
  // The in-memory parser agrees with the mmap loader.
  SafetensorsFile p = parse_safetensors(file.data(), file.size(), path);
  ASSERT_EQ(p.tensors.size(), f.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    EXPECT_EQ(p.tensors[i].first, f.tensors[i].first);
    EXPECT_TRUE(same_bytes(p.tensors[i].second, f.tensors[i].second)) << p.tensors[i].first;
  }
}

TEST(SafetensorsGolden, CoreFilesReserializeByteIdentical) {
  for (const char* name : kGoldenCore) expect_reserialized_identical(golden_file(std::string("core/") + name + ".safetensors"));
  // Any further file in golden/core too.
  for (const auto& e : fs::directory_iterator(golden_dir() + "/core"))
    if (e.path().extension() == ".safetensors" &&
        std::find(std::begin(kGoldenCore), std::end(kGoldenCore), e.path().stem().string()) == std::end(kGoldenCore))
      expect_reserialized_identical(e.path().string());
}

TEST(SafetensorsGolden, ModelFilesReserializeByteIdentical) {
  expect_reserialized_identical(golden_file("models/dass_fbank.safetensors"));  // I32 + F32 + F64
  for (const auto& e : fs::directory_iterator(golden_dir() + "/models"))
    if (e.path().extension() == ".safetensors" && e.path().filename() != "dass_fbank.safetensors")
      expect_reserialized_identical(e.path().string());
}

TEST(SafetensorsGolden, SelectiveScanPlainKnownValues) {
  std::string path = golden_file("core/selective_scan_plain.safetensors");
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.tensors.size(), 14u);
  EXPECT_EQ(f.meta("op"), "selective_scan");
  EXPECT_EQ(f.meta("delta_softplus"), "true");
  EXPECT_EQ(f.meta_or("nope", "fallback"), "fallback");
  EXPECT_TRUE(f.has_meta("layout"));
  EXPECT_FALSE(f.has_meta("nope"));

  const Tensor& u = f.get("in.u");
  EXPECT_EQ(u.dtype(), DType::F32);
  EXPECT_EQ(u.shape(), (Shape{1, 4, 17}));
  EXPECT_EQ(u.at<float>({0, 0, 0}), 2.559812545776367f);
  EXPECT_EQ(u.at<float>({0, 0, 1}), -1.6134765148162842f);
  EXPECT_EQ(u.at<float>({0, 3, 16}), 0.6438220143318176f);
  const Tensor& y = f.get("out.y");
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_EQ(y.at<double>({0, 0, 0}), 1.7698880673559745);
  EXPECT_EQ(y.at<double>({0, 3, 16}), -0.8661866141513965);
  EXPECT_EQ(f.get("in.A").shape(), (Shape{4, 8}));
}

TEST(SafetensorsGolden, DassFbankIntegerTensor) {
  SafetensorsFile f = load_safetensors(golden_file("models/dass_fbank.safetensors"));
  const Tensor& pcm = f.get("in.pcm16");
  EXPECT_EQ(pcm.dtype(), DType::I32);
  EXPECT_EQ(pcm.shape(), (Shape{1, 24000}));
  const Tensor& w = f.get("in.waveform");
  std::vector<double> a = pcm.to_double_vector(), b = w.to_double_vector();
  for (size_t i = 0; i < a.size(); i += 997) EXPECT_EQ(static_cast<float>(a[i] / 32768.0), b[i]) << i;
}

TEST(SafetensorsFileAccess, MissingKeysNameFileAndKey) {
  std::string path = golden_file("core/selective_scan_plain.safetensors");
  SafetensorsFile f = load_safetensors(path);
  try {
    f.get("in.nope");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("no tensor \"in.nope\""), std::string::npos) << m;
    EXPECT_NE(m.find("in.A"), std::string::npos) << "lists what is there: " << m;
  }
  try {
    f.meta("nope");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("no metadata key \"nope\""), std::string::npos) << m;
  }
}

// --- load errors ------------------------------------------------------------------------------------

static void expect_load_error(const std::string& path, const std::string& part) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

TEST(SafetensorsLoad, FileErrors) {
  TempDir dir;
  std::string p = (dir.path / "f.safetensors").string();
  expect_load_error(p, "cannot open");
  write_bytes(p, {});
  expect_load_error(p, "file is 0 bytes");
  write_bytes(p, {1, 0, 0, 0, 0, 0, 0});
  expect_load_error(p, "file is 7 bytes");
  expect_load_error(dir.path.string(), "not a regular file");
  write_bytes(p, make_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Bytes(4)));
  expect_load_error(p, "run past the end of the data section");
}

TEST(SafetensorsLoad, HeaderOnlyFileWithZeroSizeTensors) {
  TempDir dir;
  std::string p = (dir.path / "h.safetensors").string();
  write_bytes(p, make_image("{" + entry("a", "F32", "[0]", 0, 0) + "," + entry("b", "I64", "[2,0]", 0, 0) + "}"));
  SafetensorsFile f = load_safetensors(p);
  EXPECT_EQ(f.get("a").numel(), 0);
  EXPECT_EQ(f.get("b").shape(), (Shape{2, 0}));
  EXPECT_TRUE(f.get("b").to_double_vector().empty());
}

// --- validation: one test per defect ----------------------------------------------------------------

static const std::string kF32x2 = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

TEST(SafetensorsValidation, FileShorterThan8Bytes) {
  expect_defect({}, {"file is 0 bytes", "shorter than the 8-byte header length"});
  expect_defect({5, 0, 0}, {"file is 3 bytes"});
}

TEST(SafetensorsValidation, HeaderLengthZero) { expect_defect(make_image("", Bytes(4)), {"header length is 0"}); }

TEST(SafetensorsValidation, HeaderLengthOver100MB) {
  expect_defect(make_image("{}", {}, 100'000'001), {"header length 100000001 exceeds the limit"});
  expect_defect(make_image("{}", {}, UINT64_MAX - 1), {"exceeds the limit"});
}

TEST(SafetensorsValidation, HeaderLengthBeyondFileEnd) {
  expect_defect(make_image("{}", {}, 3), {"header length 3 runs past the end of the file (10 bytes)"});
}

TEST(SafetensorsValidation, HeaderNotUtf8) {
  expect_defect(make_image("{\"a\xff\":1}"), {"header is not valid UTF-8 at header byte 3"});
  expect_defect(make_image("{\"\xc0\xaf\":1}"), {"not valid UTF-8"});        // overlong '/'
  expect_defect(make_image("{\"\xed\xa0\x80\":1}"), {"not valid UTF-8"});    // surrogate
  expect_defect(make_image("{\"\xe2\x82\":1}"), {"not valid UTF-8"});        // truncated sequence
}

TEST(SafetensorsValidation, HeaderNotJson) {
  expect_defect(make_image("{\"a\":"), {"header is not valid JSON at header byte", "file offset"});
  expect_defect(make_image("{\"a\":{}} x"), {"not valid JSON"});
  expect_defect(make_image("{\"a\":\"\x01\"}"), {"not valid JSON"});
}

TEST(SafetensorsValidation, HeaderNotAnObject) {
  expect_defect(make_image("[1,2]   "), {"header does not start with '{'"});
  expect_defect(make_image(" {}"), {"header does not start with '{'"});
}

TEST(SafetensorsValidation, HeaderNestsTooDeep) {
  expect_defect(make_image("{\"a\":" + std::string(10000, '[') + std::string(10000, ']') + "}"), {"nests deeper than"});
}

TEST(SafetensorsValidation, EntryNotAnObject) {
  expect_defect(make_image("{\"a\":5}"), {"tensor \"a\" is a number, not an object"});
  expect_defect(make_image("{\"a\":[0,8]}"), {"tensor \"a\" is a array, not an object"});
}

TEST(SafetensorsValidation, MissingField) {
  expect_defect(make_image("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", Bytes(8)), {"tensor \"a\" has no field \"dtype\""});
  expect_defect(make_image("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", Bytes(8)), {"has no field \"shape\""});
  expect_defect(make_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", Bytes(8)), {"has no field \"data_offsets\""});
}

TEST(SafetensorsValidation, ExtraField) {
  expect_defect(make_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", Bytes(8)),
                {"tensor \"a\" has an unexpected field \"x\""});
}

TEST(SafetensorsValidation, UnknownDtype) {
  expect_defect(make_image("{" + entry("a", "Q4", "[2]", 0, 8) + "}", Bytes(8)), {"tensor \"a\": unknown dtype \"Q4\""});
  expect_defect(make_image("{" + entry("a", "f32", "[2]", 0, 8) + "}", Bytes(8)), {"unknown dtype \"f32\""});
  expect_defect(make_image("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", Bytes(8)), {"dtype is a number"});
}

TEST(SafetensorsValidation, ShapeNotArrayOfNonNegativeIntegers) {
  expect_defect(make_image("{" + entry("a", "F32", "2", 0, 8) + "}", Bytes(8)), {"tensor \"a\": shape is a number, not an array"});
  expect_defect(make_image("{" + entry("a", "F32", "[-2]", 0, 8) + "}", Bytes(8)), {"shape element 0 is not a non-negative integer"});
  expect_defect(make_image("{" + entry("a", "F32", "[1,2.0]", 0, 8) + "}", Bytes(8)), {"shape element 1 is not"});
  expect_defect(make_image("{" + entry("a", "F32", "[\"2\"]", 0, 8) + "}", Bytes(8)), {"shape element 0 is not"});
  expect_defect(make_image("{" + entry("a", "F32", "[1e30]", 0, 8) + "}", Bytes(8)), {"shape element 0 is not"});
}

TEST(SafetensorsValidation, ShapeProductOverflows) {
  expect_defect(make_image("{" + entry("a", "F32", "[4294967296,4294967296]", 0, 8) + "}", Bytes(8)),
                {"tensor \"a\": shape is too large"});
  expect_defect(make_image("{" + entry("a", "U8", "[18446744073709551615]", 0, 8) + "}", Bytes(8)), {"shape is too large"});
  // A zero dim makes numel 0, but the other dims' strides would still overflow.
  expect_defect(make_image("{" + entry("a", "U8", "[0,4611686018427387904,4]", 0, 0) + "}"), {"shape is too large"});
  expect_defect(make_image("{" + entry("a", "F64", "[2305843009213693952]", 0, 8) + "}", Bytes(8)), {"shape is too large"});
}

TEST(SafetensorsValidation, DataOffsetsMalformed) {
  const std::string hint = "data_offsets is not two non-negative integers";
  for (const char* bad : {"[0]", "[0,8,8]", "[-1,8]", "[0,8.5]", "\"0,8\"", "[null,8]", "{}"})
    expect_defect(make_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + std::string(bad) + "}}", Bytes(8)),
                  {"tensor \"a\": " + hint});
  expect_defect(make_image("{" + entry("a", "F32", "[2]", 8, 0) + "}", Bytes(8)), {"data_offsets [8,0] has begin > end"});
}

TEST(SafetensorsValidation, DataSizeDisagreesWithShape) {
  expect_defect(make_image("{" + entry("a", "F32", "[3]", 0, 8) + "}", Bytes(8)),
                {"tensor \"a\": data_offsets [0,8] span 8 bytes but F32 (3) needs 12"});
  expect_defect(make_image("{" + entry("a", "F32", "[]", 0, 0) + "}"), {"span 0 bytes but F32 () needs 4"});
}

TEST(SafetensorsValidation, OffsetsBeyondDataSection) {
  expect_defect(make_image("{" + entry("a", "F32", "[2]", 0, 8) + "}", Bytes(6)),
                {"tensor \"a\": data_offsets [0,8] run past the end of the data section (6 bytes)"});
  expect_defect(make_image("{" + entry("a", "U8", "[1]", 18446744073709551614ull, 18446744073709551615ull) + "}", Bytes(1)),
                {"run past the end of the data section"});
}

TEST(SafetensorsValidation, OverlappingTensors) {
  expect_defect(make_image("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", Bytes(12)),
                {"tensors \"a\" [0,8] and \"b\" [4,12] overlap"});
  expect_defect(make_image("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}", Bytes(8)),
                {"overlap"});
  // A zero-size tensor inside another one's range overlaps it, as in the reference crate.
  expect_defect(make_image("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("z", "F32", "[0]", 4, 4) + "}", Bytes(8)),
                {"overlap"});
}

TEST(SafetensorsValidation, GapInDataSection) {
  expect_defect(make_image("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}", Bytes(12)),
                {"gap of 4 bytes in the data section before tensor \"b\" at offset 8"});
  expect_defect(make_image("{" + entry("a", "F32", "[1]", 4, 8) + "}", Bytes(8)), {"gap of 4 bytes", "\"a\""});
}

TEST(SafetensorsValidation, TrailingBytesAfterLastTensor) {
  expect_defect(make_image("{" + entry("a", "F32", "[1]", 0, 4) + "}", Bytes(8)),
                {"4 bytes in the data section after the last tensor"});
  expect_defect(make_image("{}", Bytes(3)), {"3 bytes in the data section after the last tensor"});
}

TEST(SafetensorsValidation, DuplicateTensorName) {
  expect_defect(make_image("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("a", "F32", "[1]", 4, 8) + "}", Bytes(8)),
                {"duplicate tensor name \"a\""});
  expect_defect(make_image("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", Bytes(4)),
                {"duplicate field \"dtype\" in \"a\""});
}

TEST(SafetensorsValidation, MetadataNotStringToString) {
  expect_defect(make_image("{\"__metadata__\":[\"a\"]}"), {"__metadata__ is a array, not an object"});
  expect_defect(make_image("{\"__metadata__\":null}"), {"__metadata__ is a null, not an object"});
  expect_defect(make_image("{\"__metadata__\":{\"k\":1}}"), {"metadata value of \"k\" is a number, not a string"});
  expect_defect(make_image("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}"), {"metadata value of \"k\" is a object"});
  expect_defect(make_image("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), {"duplicate metadata key \"k\""});
  expect_defect(make_image("{\"__metadata__\":{},\"__metadata__\":{}}"), {"duplicate tensor name \"__metadata__\""});
}

TEST(SafetensorsValidation, ValidEdgeCasesAccepted) {
  // Zero-size tensors anywhere on a boundary, a scalar, metadata first, "-0" and trailing spaces.
  std::string h = "{\"__metadata__\":{\"b\":\"1\",\"a\":\"2\"}," + entry("z0", "F64", "[0]", 0, 0) + "," +
                  entry("s", "F32", "[]", 0, 4) + "," + entry("z1", "U8", "[4,0]", 4, 4) + "," +
                  "\"n\":{\"shape\":[-0,3],\"data_offsets\":[4,4],\"dtype\":\"BF16\"}}   ";
  Bytes data(4);
  float one = 1.0f;
  std::memcpy(data.data(), &one, 4);
  Bytes img = make_image(h, data);
  SafetensorsFile f = parse_safetensors(img.data(), img.size(), "mem");
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensors[0].first, "z0");  // header order
  EXPECT_EQ(f.tensors[3].first, "n");
  EXPECT_EQ(f.get("s").to_double_vector(), std::vector<double>{1.0});
  EXPECT_EQ(f.get("n").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.metadata, (Metadata{{"b", "1"}, {"a", "2"}}));  // file order
}

// --- writer checks and atomic writes ----------------------------------------------------------------

static void expect_serialize_error(const TensorList& list, const Metadata& meta, const std::string& part) {
  try {
    serialize_safetensors(list, meta);
    ADD_FAILURE() << "no error; expected \"" << part << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(SafetensorsWrite, RejectsBadNames) {
  Tensor t = Tensor::full({1}, 1.0);
  expect_serialize_error({{"", t}}, {}, "empty name");
  expect_serialize_error({{"a", t}, {"b", t}, {"a", t}}, {}, "duplicate tensor name \"a\"");
  expect_serialize_error({{"__metadata__", t}}, {}, "\"__metadata__\" is reserved");
  expect_serialize_error({{"a", Tensor()}}, {}, "\"a\" is undefined");
  expect_serialize_error({{"a\xff", t}}, {}, "not valid UTF-8");
  expect_serialize_error({{"a", t}}, {{"k", "1"}, {"k", "2"}}, "duplicate metadata key \"k\"");
  expect_serialize_error({{"a", t}}, {{"k", "\xc3"}}, "not valid UTF-8");
}

TEST(SafetensorsAtomicWrite, ReplacesExistingFile) {
  TempDir dir;
  std::string p = (dir.path / "w.safetensors").string();
  write_bytes(p, Bytes(1000, 0xab));
  TensorList list = {{"x", Tensor::full({2, 2}, 7.0)}};
  save_safetensors(p, list, {{"op", "x"}});
  EXPECT_EQ(read_bytes(p), serialize_safetensors(list, {{"op", "x"}}));
  EXPECT_EQ(load_safetensors(p).get("x").to_double_vector(), (std::vector<double>{7, 7, 7, 7}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"}) << "temp file left behind";
  write_file_atomic(p, "abc", 3);
  EXPECT_EQ(read_bytes(p), (Bytes{'a', 'b', 'c'}));
  write_file_atomic(p, nullptr, 0);
  EXPECT_TRUE(read_bytes(p).empty());
}

TEST(SafetensorsAtomicWrite, MissingFolderThrowsAndLeavesNothing) {
  TempDir dir;
  std::string p = (dir.path / "no_such_dir" / "w.safetensors").string();
  try {
    save_safetensors(p, {{"x", Tensor::full({1}, 1.0)}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(p + ": ", 0), 0u) << m;
    EXPECT_NE(m.find(std::strerror(ENOENT)), std::string::npos) << m;
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsAtomicWrite, FailedRenameRemovesTempFile) {
  TempDir dir;
  fs::create_directories(dir.path / "target" / "sub");  // a non-empty folder cannot be renamed over
  std::string p = (dir.path / "target").string();
  EXPECT_THROW(write_file_atomic(p, "abc", 3), Error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(dir.path / "target" / "sub"));
}

TEST(SafetensorsAtomicWrite, ExistingFileUntouchedWhenSerializationFails) {
  TempDir dir;
  std::string p = (dir.path / "keep.safetensors").string();
  Bytes original = serialize_safetensors({{"x", Tensor::full({3}, 1.0)}});
  write_bytes(p, original);
  Tensor t = Tensor::full({1}, 2.0);
  try {
    save_safetensors(p, {{"a", t}, {"a", t}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(p + ": ", 0), 0u) << e.what();
  }
  EXPECT_EQ(read_bytes(p), original);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"keep.safetensors"});
}

// --- fuzz -------------------------------------------------------------------------------------------

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

uint64_t header_len(const Bytes& b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0 && b.size() >= 8; --i) n = (n << 8) | b[static_cast<size_t>(i)];
  return n;
}

void set_header_len(Bytes& b, uint64_t n) {
  if (b.size() < 8) return;
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
}

// A position, mostly inside the header where the parser's decisions are made.
size_t pick_pos(Rng& r, const Bytes& b) {
  if (b.empty()) return 0;
  size_t hdr_end = static_cast<size_t>(std::min<uint64_t>(b.size(), 8 + std::min<uint64_t>(header_len(b), b.size()) + 16));
  return r.below(4) ? r.below(hdr_end) : r.below(b.size());
}

// Replaces header bytes [at, end) with `with` and keeps the length field consistent.
void replace_in_header(Bytes& b, size_t at, size_t end, const std::string& with) {
  uint64_t n = header_len(b);
  b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(end));
  b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), with.begin(), with.end());
  set_header_len(b, n - (end - at) + with.size());
}

// A whole number of the header (an offset or a dim) becomes another one: overlaps, gaps, huge shapes.
void replace_number(Rng& r, Bytes& b) {
  uint64_t n = header_len(b);
  if (b.size() < 9 || n == 0 || n > b.size() - 8) return;
  size_t p = 8 + r.below(static_cast<size_t>(n)), hend = 8 + static_cast<size_t>(n);
  while (p < hend && !(b[p] >= '0' && b[p] <= '9')) ++p;
  if (p == hend) return;
  while (p > 8 && b[p - 1] >= '0' && b[p - 1] <= '9') --p;
  size_t e = p;
  uint64_t v = 0;
  while (e < hend && b[e] >= '0' && b[e] <= '9') v = v * 10 + (b[e++] - '0');
  static const char* fixed[] = {"0", "1", "2", "4", "8", "-1", "4294967296", "4611686018427387904",
                                "18446744073709551615", "18446744073709551616", "1e3", "2.0"};
  std::string with;
  switch (r.below(3)) {
    case 0: with = fixed[r.below(std::size(fixed))]; break;
    case 1: with = std::to_string(v + 4 * (1 + r.below(4))); break;
    default: with = std::to_string(v >= 16 ? v - 4 * (1 + r.below(4)) : 0); break;
  }
  replace_in_header(b, p, e, with);
}

// A tensor's data_offsets [b,e] move together by a few bytes: overlaps and gaps, sizes intact.
void shift_offsets(Rng& r, Bytes& b) {
  uint64_t n = header_len(b);
  if (b.size() < 9 || n == 0 || n > b.size() - 8) return;
  static const std::string key = "\"data_offsets\":[";
  auto first = b.begin() + 8 + static_cast<std::ptrdiff_t>(r.below(static_cast<size_t>(n)));
  auto it = std::search(first, b.begin() + 8 + static_cast<std::ptrdiff_t>(n), key.begin(), key.end());
  size_t p = static_cast<size_t>(it - b.begin()) + key.size(), e = p, hend = 8 + static_cast<size_t>(n);
  uint64_t v[2] = {0, 0};
  for (int k = 0; k < 2; ++k, ++e) {
    if (e >= hend || b[e] < '0' || b[e] > '9') return;
    while (e < hend && b[e] >= '0' && b[e] <= '9') v[k] = v[k] * 10 + (b[e++] - '0');
    if (e >= hend || b[e] != (k ? ']' : ',')) return;
  }
  int64_t d = static_cast<int64_t>(4 * (1 + r.below(4))) * (r.below(2) ? 1 : -1);
  if (d < 0 && v[0] < static_cast<uint64_t>(-d)) d = -d;
  replace_in_header(b, p, e - 1, std::to_string(v[0] + d) + "," + std::to_string(v[1] + d));
}

// An entry object {...} (or __metadata__'s) becomes another JSON value.
void replace_object(Rng& r, Bytes& b) {
  uint64_t n = header_len(b);
  if (b.size() < 9 || n == 0 || n > b.size() - 8) return;
  size_t p = 8 + r.below(static_cast<size_t>(n)), hend = 8 + static_cast<size_t>(n);
  while (p < hend && !(b[p] == '{' && b[p - 1] == ':')) ++p;
  size_t e = p;
  while (e < hend && b[e] != '}') ++e;
  if (e >= hend) return;
  static const char* with[] = {"5", "[]", "null", "\"x\"", "{}", "{\"k\":1}", "[0,8]", "{\"dtype\":\"F32\"}"};
  replace_in_header(b, p, e + 1, with[r.below(std::size(with))]);
}

void mutate(Rng& r, Bytes& b, const std::vector<Bytes>& seeds) {
  static const uint8_t interesting[] = {0,   0xff, '{', '}', '[', ']', '"', ':', ',', '-', '.', 'e', ' ', '\\',
                                        '0', '1',  '2', '4', '7', '8', '9', 0x80, 0xc3, 0xf0, 'F', 'U', 'I'};
  switch (r.below(11)) {
    case 0:
      if (!b.empty()) b[pick_pos(r, b)] ^= static_cast<uint8_t>(1u << r.below(8));
      break;
    case 1:
    case 2:
      if (!b.empty()) b[pick_pos(r, b)] = interesting[r.below(sizeof interesting)];
      break;
    case 3: {  // a digit in the header changes (offsets, shapes)
      size_t p = pick_pos(r, b);
      for (size_t k = 0; k < 64 && p < b.size(); ++k, ++p)
        if (b[p] >= '0' && b[p] <= '9') {
          b[p] = static_cast<uint8_t>('0' + r.below(10));
          break;
        }
      break;
    }
    case 4:
      b.resize(r.below(b.size() + 1));
      break;
    case 5:
      for (size_t k = 0, m = 1 + r.below(16); k < m; ++k) b.push_back(static_cast<uint8_t>(r.next()));
      break;
    case 6: {  // header length field rewrites
      uint64_t n = header_len(b), choices[] = {0, 1, n - 1, n + 1, n + 8, n - 8, b.size() - 8, b.size(),
                                               100'000'001, UINT64_MAX, 1ull << 63, r.next()};
      set_header_len(b, choices[r.below(std::size(choices))]);
      break;
    }
    case 7: {  // splice a chunk of another seed over or into this one
      const Bytes& o = seeds[r.below(seeds.size())];
      if (o.empty()) break;
      size_t from = r.below(o.size()), len = 1 + r.below(std::min<size_t>(64, o.size() - from));
      size_t at = pick_pos(r, b);
      if (r.below(2)) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(std::min(at, b.size())), o.begin() + static_cast<std::ptrdiff_t>(from),
                 o.begin() + static_cast<std::ptrdiff_t>(from + len));
      } else {
        for (size_t k = 0; k < len && at + k < b.size(); ++k) b[at + k] = o[from + k];
      }
      break;
    }
    case 8: {  // insert or delete inside the header and keep the length field consistent
      uint64_t n = header_len(b);
      if (b.size() < 9 || n == 0 || n > b.size() - 8) break;
      size_t at = 8 + r.below(static_cast<size_t>(n));
      if (r.below(2)) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), interesting[r.below(sizeof interesting)]);
        set_header_len(b, n + 1);
      } else {
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at));
        set_header_len(b, n - 1);
      }
      break;
    }
    case 9:
      switch (r.below(3)) {
        case 0: replace_number(r, b); break;
        case 1: replace_object(r, b); break;
        default: shift_offsets(r, b); break;
      }
      break;
    case 10: {  // delete a range anywhere
      if (b.empty()) break;
      size_t at = r.below(b.size()), len = 1 + r.below(std::min<size_t>(32, b.size() - at));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + len));
      break;
    }
  }
}

// A clean parse must describe tensors that lie inside the image, with the image's bytes.
void check_clean_parse(const Bytes& img, const SafetensorsFile& f) {
  ASSERT_GE(img.size(), 8u);
  uint64_t n = header_len(img);
  ASSERT_LE(n, img.size() - 8);
  nlohmann::json h = nlohmann::json::parse(img.begin() + 8, img.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  uint64_t data_size = img.size() - 8 - n;
  for (const auto& [name, t] : f.tensors) {
    ASSERT_TRUE(h.contains(name));
    uint64_t b = h[name]["data_offsets"][0].get<uint64_t>(), e = h[name]["data_offsets"][1].get<uint64_t>();
    ASSERT_LE(b, e);
    ASSERT_LE(e, data_size);
    ASSERT_EQ(e - b, t.nbytes());
    if (t.nbytes()) {
      ASSERT_EQ(std::memcmp(t.raw(), img.data() + 8 + n + b, t.nbytes()), 0) << name;
    }
    ASSERT_EQ(t.to_double_vector().size(), static_cast<size_t>(t.numel()));
  }
}

}  // namespace

TEST(SafetensorsFuzz, MutatedGoldenFilesNeverCrash) {
  std::vector<Bytes> seeds;
  for (const char* name : {"core/selective_scan_plain.safetensors", "core/s4d_kernel.safetensors", "core/fftconv.safetensors"})
    seeds.push_back(read_bytes(golden_file(name)));
  seeds.push_back(serialize_safetensors(every_dtype_list(), {{"op", "fuzz"}, {"k", "v\"w"}}));
  seeds.push_back(serialize_safetensors({{"s", Tensor::full({}, 1.0, DType::F16)}, {"z", Tensor::empty({0, 3})}}));
  seeds.push_back(serialize_safetensors({}, {{"only", "metadata"}}));
  seeds.push_back(make_image("{" + entry("x", "F64", "[1]", 0, 8) + "," + entry("y", "I32", "[1]", 8, 12) + "}", Bytes(12, 0x41)));

  Rng r{20240601};
  int clean = 0, errors = 0;
  const int kIters = 20000;
  for (int it = 0; it < kIters; ++it) {
    Bytes img = seeds[r.below(seeds.size())];
    for (size_t m = 0, nm = 1 + r.below(4); m < nm; ++m) mutate(r, img, seeds);
    try {
      SafetensorsFile f = parse_safetensors(img.data(), img.size(), "fuzz");
      ++clean;
      check_clean_parse(img, f);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "iteration " << it;
        return;
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
  EXPECT_GT(clean, kIters / 100);   // mutations in the data section and padding stay valid
  EXPECT_GT(errors, kIters / 2);    // most header mutations are defects
}
