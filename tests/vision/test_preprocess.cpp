// Image decoding, the eval transform, datasets and augmentation: bicubic resizes computed by hand (Pillow's
// kernel a = -0.5, antialiased) and compared byte for byte with Pillow's own output (tests/data/vision, made by
// make_fixtures.py), PIL's luma, torchvision's center crop rounding, normalisation, every format decoding to the
// same pixels, gray/alpha/palette handling, bad files naming their path, idx files (round trip, bad magic, bad
// size, broken gzip), ImageFolder order, seeded augmentation (determinism, resumability, crop/flip/erase by hand).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "gradcheck.h"
#include "ssmkit/vision/augment.h"
#include "ssmkit/vision/image_dataset.h"
#include "ssmkit/vision/image_io.h"
#include "ssmkit/vision/preprocess.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using test::expect_error;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(SSMKIT_TEST_DATA_DIR) + "/vision/" + name; }

// (H,W,C) U8 image from row-major values.
Tensor u8_image(int64_t H, int64_t W, int64_t C, const std::vector<int>& v) {
  Tensor t = Tensor::empty({H, W, C}, DType::U8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(v[static_cast<size_t>(i)]);
  return t;
}

std::vector<int> values_of(const Tensor& t) {
  std::vector<int> v;
  for (double x : t.to_double_vector()) v.push_back(static_cast<int>(x));
  return v;
}

int max_diff(const Tensor& a, const Tensor& b) { return static_cast<int>(core::max_abs_diff(a, b)); }

// A fresh empty folder under the system temp dir.
fs::path temp_dir(const std::string& name) {
  // the process id keeps concurrent runs of the suite (two build folders, say) apart
  fs::path p = fs::temp_directory_path() / ("ssmkit_test_preprocess_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Resize, channels, crop, normalisation by hand

// Downscale 4 -> 2: scale 2, so the kernel is stretched to support 4. Output 0 has center 1.0 and taps on
// pixels 0..3 at distances (i + 0.5 - 1) / 2 = -0.25, 0.25, 0.75, 1.25, where k (a = -0.5) is 0.8671875,
// 0.8671875, 0.2265625, -0.0703125 (sum 1.890625): (100 * 0.8671875 + 200 * 0.2265625 - 255 * 0.0703125) /
// 1.890625 = 60.35 -> 60. Output 1 mirrors it: (100 * 0.2265625 + 200 * 0.8671875 + 255 * 0.8671875 - 0) /
// 1.890625 = 220.68 -> 221. Pillow 9.4 gives [60, 221].
TEST(Preprocess, BicubicDownscaleByHand) {
  const Tensor row = u8_image(1, 4, 1, {0, 100, 200, 255});
  EXPECT_EQ(values_of(vision::resize_bicubic(row, 1, 2)), (std::vector<int>{60, 221}));
  // the same along the other axis (vertical pass)
  const Tensor col = u8_image(4, 1, 1, {0, 100, 200, 255});
  EXPECT_EQ(values_of(vision::resize_bicubic(col, 2, 1)), (std::vector<int>{60, 221}));
}

// Upscale 2 -> 4: scale 0.5, support 2. Output 0 (center 0.25): taps at 0.25 and 1.25 -> weights 0.8671875 and
// -0.0703125 over their sum 0.796875: 50 * 1.08824 - 150 * 0.08824 = 41.18 -> 41. Output 1 (center 0.75): taps
// -0.25 and 0.75 -> 0.8671875 and 0.2265625 over 1.09375: 50 * 0.79286 + 150 * 0.20714 = 70.71 -> 71; outputs 2
// and 3 by symmetry 129.29 -> 129 and 158.82 -> 159. Pillow 9.4 gives [41, 71, 129, 159].
TEST(Preprocess, BicubicUpscaleByHand) {
  EXPECT_EQ(values_of(vision::resize_bicubic(u8_image(1, 2, 1, {50, 150}), 1, 4)),
            (std::vector<int>{41, 71, 129, 159}));
  // overshoot is clipped to 0..255: a hard edge 0 | 255 upscaled rings below 0 and above 255
  const std::vector<int> edge = values_of(vision::resize_bicubic(u8_image(1, 4, 1, {0, 0, 255, 255}), 1, 8));
  EXPECT_EQ(edge.front(), 0);
  EXPECT_EQ(edge.back(), 255);
  for (int v : edge) EXPECT_TRUE(v >= 0 && v <= 255);
  // the same size is a copy
  const Tensor img = u8_image(2, 3, 1, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(values_of(vision::resize_bicubic(img, 2, 3)), values_of(img));
}

// PIL's convert('L'): (19595 R + 38470 G + 7471 B + 2^15) >> 16: red 76, green 150, blue 29 (Pillow's values).
TEST(Preprocess, ChannelConversions) {
  const Tensor rgb = u8_image(1, 3, 3, {255, 0, 0, 0, 255, 0, 0, 0, 255});
  EXPECT_EQ(values_of(vision::convert_channels(rgb, 1)), (std::vector<int>{76, 150, 29}));
  const Tensor gray = u8_image(1, 2, 1, {7, 200});
  EXPECT_EQ(values_of(vision::convert_channels(gray, 3)), (std::vector<int>{7, 7, 7, 200, 200, 200}));
  const Tensor rgba = u8_image(1, 2, 4, {10, 20, 30, 0, 40, 50, 60, 255});  // alpha dropped, not composited
  EXPECT_EQ(values_of(vision::convert_channels(rgba, 3)), (std::vector<int>{10, 20, 30, 40, 50, 60}));
  expect_error([&] { vision::convert_channels(rgb, 2); }, "channels must be 1 or 3");
  expect_error([&] { vision::convert_channels(Tensor::zeros({2, 2, 2}, DType::U8), 3); }, "C 1, 3 or 4");
}

// torchvision CenterCrop: top = round((H - h) / 2), left = round((W - w) / 2) with Python's round (half to even).
TEST(Preprocess, CenterCropRounding) {
  std::vector<int> v(20);
  std::iota(v.begin(), v.end(), 0);
  const Tensor img = u8_image(4, 5, 1, v);  // value = 5 y + x
  // H 4 -> 2: top = round(1.0) = 1; W 5 -> 2: left = round(1.5) = 2
  EXPECT_EQ(values_of(vision::center_crop(img, 2, 2)), (std::vector<int>{7, 8, 12, 13}));
  // W 5 -> 4: left = round(0.5) = 0 (half to even); H 4 -> 1: top = round(1.5) = 2
  EXPECT_EQ(values_of(vision::center_crop(img, 1, 4)), (std::vector<int>{10, 11, 12, 13}));
  // a crop larger than the image pads with zeros first: W 2 -> 4 adds 1 left and 1 right
  EXPECT_EQ(values_of(vision::center_crop(u8_image(1, 2, 1, {5, 6}), 1, 4)), (std::vector<int>{0, 5, 6, 0}));
}

TEST(Preprocess, ResizeShorterSide) {
  const Tensor land = Tensor::zeros({30, 40, 3}, DType::U8), port = Tensor::zeros({40, 30, 3}, DType::U8);
  EXPECT_EQ(vision::resize_shorter(land, 18).shape(), (core::Shape{18, 24, 3}));  // int(18 * 40 / 30) = 24
  EXPECT_EQ(vision::resize_shorter(port, 18).shape(), (core::Shape{24, 18, 3}));
  EXPECT_EQ(vision::resize_shorter(Tensor::zeros({7, 10, 1}, DType::U8), 4).shape(),
            (core::Shape{4, 5, 1}));  // 5.71 -> 5
  vision::Preprocess p = vision::Preprocess::imagenet(224, 0.875);
  EXPECT_EQ(p.resize_to(), 256);
  p.crop_pct = 0.96;
  EXPECT_EQ(p.resize_to(), 233);  // SiMBA: int(224 / 0.96)
}

// The whole transform on a 2x2 RGB image with crop_pct 1 (no resize): (v / 255 - mean) / std per channel.
TEST(Preprocess, EvalTransformNormalisesByHand) {
  vision::Preprocess p = vision::Preprocess::imagenet(2, 1.0);
  const Tensor img = u8_image(2, 2, 3, {255, 0, 51, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const Tensor x = vision::eval_transform(img, p);
  ASSERT_EQ(x.shape(), (core::Shape{3, 2, 2}));
  EXPECT_NEAR(x.at<float>({0, 0, 0}), (1.0 - 0.485) / 0.229, 1e-6);  // 2.24891
  EXPECT_NEAR(x.at<float>({1, 0, 0}), (0.0 - 0.456) / 0.224, 1e-6);  // -2.03571
  EXPECT_NEAR(x.at<float>({2, 0, 0}), (0.2 - 0.406) / 0.225, 1e-6);  // -0.91556
  EXPECT_NEAR(x.at<float>({0, 1, 1}), (0.0 - 0.485) / 0.229, 1e-6);
}

// Fashion-MNIST for the micro models: 28x28 placed in a 2-pixel zero border; border pixels normalise to
// -0.2860 / 0.3530 = -0.81020, an interior pixel of value 255 to (1 - 0.2860) / 0.3530 = 2.02266.
TEST(Preprocess, FashionMnistBorder) {
  const vision::Preprocess p = vision::Preprocess::fashion_mnist();
  EXPECT_EQ(p.size, 32);
  EXPECT_EQ(p.inner(), 28);
  EXPECT_EQ(p.resize_to(), 28);
  Tensor img = Tensor::zeros({28, 28, 1}, DType::U8);
  img.at<uint8_t>({0, 0, 0}) = 255;
  const Tensor x = vision::eval_transform(img, p);
  ASSERT_EQ(x.shape(), (core::Shape{1, 32, 32}));
  EXPECT_NEAR(x.at<float>({0, 0, 0}), -0.2860 / 0.3530, 1e-6);
  EXPECT_NEAR(x.at<float>({0, 2, 2}), (1.0 - 0.2860) / 0.3530, 1e-6);
  EXPECT_NEAR(x.at<float>({0, 31, 31}), -0.2860 / 0.3530, 1e-6);
  // an RGB photo for a 1-channel model: luma, shorter side to 28, centre crop, border
  EXPECT_EQ(vision::prepare_image(Tensor::zeros({60, 90, 3}, DType::U8), p).shape(), (core::Shape{1, 32, 32}));
}

TEST(Preprocess, ConfigJsonAndValidation) {
  const vision::Preprocess p = vision::Preprocess::fashion_mnist();
  const vision::Preprocess q = vision::Preprocess::from_json(p.to_json());
  EXPECT_EQ(q.size, 32);
  EXPECT_EQ(q.pad, 2);
  EXPECT_EQ(q.channels, 1);
  EXPECT_EQ(q.mean, p.mean);
  EXPECT_EQ(q.std, p.std);
  expect_error([] { vision::Preprocess::from_json("{\"size\": 8}"); }, "bad JSON");
  vision::Preprocess bad = p;
  bad.mean = {0.5, 0.5, 0.5};
  expect_error([&] { bad.validate(); }, "one value per channel");
  bad = p;
  bad.pad = 16;
  expect_error([&] { bad.validate(); }, "leaves no image");
}

// ---------------------------------------------------------------------------------------------------------
// Pillow parity on the fixture: every step of the transform gives Pillow's bytes.

TEST(Preprocess, MatchesPillowBicubicExactly) {
  const Tensor rgb = vision::read_image(fixture("rgb_40x30.png"));
  ASSERT_EQ(rgb.shape(), (core::Shape{30, 40, 3}));
  struct Case {
    const char* file;
    int64_t h, w;
  };
  for (const Case& c : {Case{"pil_bicubic_24x18.png", 18, 24}, Case{"pil_bicubic_57x43.png", 43, 57},
                        Case{"pil_bicubic_13x30.png", 30, 13}}) {
    const Tensor want = vision::read_image(fixture(c.file));
    const Tensor got = vision::resize_bicubic(rgb, c.h, c.w);
    ASSERT_EQ(got.shape(), want.shape()) << c.file;
    const int d = max_diff(got, want);
    std::printf("resize to %lldx%lld: max |ours - Pillow| = %d\n", static_cast<long long>(c.w),
                static_cast<long long>(c.h), d);
    EXPECT_EQ(d, 0) << c.file;
  }
  const Tensor gray = vision::read_image(fixture("gray_40x30.png"));
  EXPECT_EQ(max_diff(vision::convert_channels(rgb, 1), gray), 0);  // Pillow's convert('L')
  EXPECT_EQ(max_diff(vision::resize_bicubic(gray, 5, 7), vision::read_image(fixture("pil_gray_bicubic_7x5.png"))), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

TEST(ImageIo, EveryFormatDecodesToTheSamePixels) {
  const Tensor png = vision::read_image(fixture("rgb_40x30.png"));
  for (const char* f : {"rgb_40x30.bmp", "rgb_40x30.tif", "rgb_40x30.webp"}) {
    const Tensor img = vision::read_image(fixture(f));
    ASSERT_EQ(img.shape(), png.shape()) << f;
    EXPECT_EQ(max_diff(img, png), 0) << f;  // lossless formats
  }
  // JPEG: the same pixels as Pillow's decoder (both libjpeg-turbo, 4:2:0 chroma upsampled the same way); the
  // compression itself moves them by a few levels from the PNG
  const Tensor jpg = vision::read_image(fixture("rgb_40x30.jpg"));
  ASSERT_EQ(jpg.shape(), png.shape());
  const int vs_pillow = max_diff(jpg, vision::read_image(fixture("pil_decoded_jpg.png")));
  const std::vector<double> a = jpg.to_double_vector(), b = png.to_double_vector();
  double mad = 0;
  for (size_t i = 0; i < a.size(); ++i) mad += std::abs(a[i] - b[i]) / static_cast<double>(a.size());
  std::printf("JPEG q95: max |ours - Pillow's decoding| %d; vs the PNG: mean |diff| %.2f\n", vs_pillow, mad);
  EXPECT_LE(vs_pillow, 1);
  EXPECT_LT(mad, 6.0);
  // RGB order, not OpenCV's BGR: the top-left pixel is (0, 0, 120), the top-right (255, 0, 40)
  EXPECT_EQ(values_of(png.slice(1, 0, 1).slice(0, 0, 1)), (std::vector<int>{0, 0, 120}));
  EXPECT_EQ(values_of(png.slice(1, 39, 40).slice(0, 0, 1)), (std::vector<int>{255, 0, 40}));
  EXPECT_EQ(vision::sniff_image_format("\x89PNG\r\n\x1a\n", 8), "png");
  EXPECT_EQ(vision::sniff_image_format("hello", 5), "");
}

TEST(ImageIo, GrayAlphaAndPalette) {
  const Tensor rgb = vision::read_image(fixture("rgb_40x30.png"));
  const Tensor gray = vision::read_image(fixture("gray_40x30.png"));
  ASSERT_EQ(gray.shape(), (core::Shape{30, 40, 1}));
  // gray -> RGB replicates; -> 1 channel passes through
  EXPECT_EQ(max_diff(vision::convert_channels(gray, 3).slice(2, 1, 2), gray), 0);
  // gray + alpha and RGBA keep their alpha on decoding; conversion drops it
  const Tensor la = vision::read_image(fixture("gray_alpha_40x30.png"));
  ASSERT_EQ(la.size(2), 4);
  EXPECT_EQ(la.at<uint8_t>({3, 5, 3}), 128);
  EXPECT_EQ(max_diff(vision::convert_channels(la, 1), gray), 0);
  const Tensor rgba = vision::read_image(fixture("rgba_40x30.png"));
  ASSERT_EQ(rgba.shape(), (core::Shape{30, 40, 4}));
  EXPECT_EQ(rgba.at<uint8_t>({7, 9, 3}), 77);
  EXPECT_EQ(max_diff(vision::convert_channels(rgba, 3), rgb), 0);
  // a 16-colour palette PNG decodes to RGB close to the original
  const Tensor pal = vision::read_image(fixture("palette_40x30.png"));
  ASSERT_EQ(pal.shape(), (core::Shape{30, 40, 3}));
  EXPECT_LT(max_diff(pal, rgb), 128);
  // every variant goes through the whole transform
  for (const Tensor* t : {&gray, &la, &rgba, &pal})
    EXPECT_EQ(vision::eval_transform(*t, vision::Preprocess::imagenet(16, 0.875)).shape(), (core::Shape{3, 16, 16}));
}

TEST(ImageIo, BadFilesNameThePath) {
  const std::string trunc = fixture("truncated.png"), text = fixture("not_an_image.jpg"), empty = fixture("empty.png");
  const std::string tjpg = fixture("truncated.jpg"), missing = fixture("no_such_file.png");
  const std::string e1 = test::error_of([&] { vision::read_image(trunc); });
  EXPECT_NE(e1.find(trunc + ": truncated PNG"), std::string::npos) << e1;
  const std::string e2 = test::error_of([&] { vision::read_image(text); });
  EXPECT_NE(e2.find(text + ": not an image (the file starts with text)"), std::string::npos) << e2;
  const std::string e3 = test::error_of([&] { vision::read_image(empty); });
  EXPECT_NE(e3.find(empty + ": empty file"), std::string::npos) << e3;
  const std::string e4 = test::error_of([&] { vision::read_image(tjpg); });
  EXPECT_NE(e4.find(tjpg + ": truncated JPEG"), std::string::npos) << e4;
  const std::string e5 = test::error_of([&] { vision::read_image(missing); });
  EXPECT_NE(e5.find(missing + ": cannot open"), std::string::npos) << e5;
  const std::string e6 = test::error_of([&] { vision::read_image(std::string(SSMKIT_TEST_DATA_DIR) + "/vision"); });
  EXPECT_NE(e6.find("is a directory"), std::string::npos) << e6;
  // a PNG whose body is garbage after a valid signature and IEND-looking tail
  std::vector<uint8_t> junk = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3, 4, 'I', 'E', 'N', 'D', 0, 0, 0, 0};
  expect_error([&] { vision::decode_image(junk.data(), junk.size(), "junk.png"); }, "junk.png: corrupt");
}

TEST(ImageIo, EncodeRoundTrip) {
  const fs::path dir = temp_dir("encode");
  const Tensor rgb = vision::read_image(fixture("rgb_40x30.png"));
  for (const char* ext : {".png", ".bmp", ".tif", ".webp"}) {
    const std::string p = (dir / (std::string("x") + ext)).string();
    vision::write_image(p, rgb, 101);  // WebP quality > 100 is lossless
    EXPECT_EQ(max_diff(vision::read_image(p), rgb), 0) << ext;
  }
  expect_error([&] { vision::write_image((dir / "x").string(), rgb); }, "no file extension");
  expect_error([&] { vision::encode_image(Tensor::zeros({2, 2, 2}, DType::U8), ".png"); }, "C 1, 3 or 4");
  EXPECT_TRUE(vision::has_image_extension("a/B.JPEG"));
  EXPECT_FALSE(vision::has_image_extension("a/b.txt"));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------------------
// idx files

TEST(ImageDataset, IdxRoundTripAndErrors) {
  const fs::path dir = temp_dir("idx");
  Tensor images = Tensor::empty({3, 2, 2}, DType::U8), labels = Tensor::empty({3}, DType::U8);
  for (int64_t i = 0; i < 12; ++i) images.data<uint8_t>()[i] = static_cast<uint8_t>(20 * i);
  for (int64_t i = 0; i < 3; ++i) labels.data<uint8_t>()[i] = static_cast<uint8_t>(2 - i);
  vision::write_idx((dir / "train-images-idx3-ubyte.gz").string(), images, true);
  vision::write_idx((dir / "train-labels-idx1-ubyte").string(), labels, false);
  const Tensor back = vision::read_idx((dir / "train-images-idx3-ubyte.gz").string());
  EXPECT_EQ(back.shape(), (core::Shape{3, 2, 2}));
  EXPECT_EQ(max_diff(back, images), 0);
  // the raw file is exactly the magic 0x00000801, the size 3 and the bytes
  const std::vector<uint8_t> raw = [&] {
    std::ifstream in(dir / "train-labels-idx1-ubyte", std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }();
  EXPECT_EQ(raw, (std::vector<uint8_t>{0, 0, 8, 1, 0, 0, 0, 3, 2, 1, 0}));

  // the pair, the dataset and its class names
  EXPECT_TRUE(vision::is_idx_source(dir.string(), "train"));
  const vision::IdxPair pair = vision::find_idx_pair(dir.string(), "train");
  EXPECT_EQ(fs::path(pair.labels).filename(), "train-labels-idx1-ubyte");
  vision::Preprocess p = vision::Preprocess::fashion_mnist();
  p.pad = 0;
  p.size = 2;
  p.crop_pct = 1;
  const vision::ImageDataset d = vision::load_idx_dataset(pair, p);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.classes, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(d.labels.at<int64_t>({0}), 2);
  EXPECT_EQ(d.images.shape(), (core::Shape{3, 1, 2, 2}));
  EXPECT_EQ(d.images.at<uint8_t>({1, 0, 1, 1}), 140);  // image 1, pixel 3: 20 * 7
  expect_error([&] { vision::find_idx_pair(dir.string(), "test"); }, "no t10k-images-idx3-ubyte[.gz]");

  // bad magic, bad type, short data, broken gzip, images where labels belong
  write_bytes(dir / "bad_magic", {0x12, 0x34, 8, 1, 0, 0, 0, 1, 5});
  expect_error([&] { vision::read_idx((dir / "bad_magic").string()); }, "bad_magic: bad magic number 0x12340801");
  write_bytes(dir / "float_idx", {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  expect_error([&] { vision::read_idx((dir / "float_idx").string()); }, "element type 0x0d is not supported");
  write_bytes(dir / "short", {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3});
  expect_error([&] { vision::read_idx((dir / "short").string()); }, "short: 3 bytes of data, but the header");
  {
    std::ifstream in(dir / "train-images-idx3-ubyte.gz", std::ios::binary);
    std::vector<uint8_t> gz(std::istreambuf_iterator<char>(in), {});
    gz.resize(gz.size() / 2);
    write_bytes(dir / "cut.gz", gz);
  }
  expect_error([&] { vision::read_idx((dir / "cut.gz").string()); }, "cut.gz: ");
  expect_error([&] { vision::read_idx((dir / "nothing").string()); }, "nothing: no such file");
  vision::write_idx((dir / "t10k-images-idx3-ubyte").string(), images, false);
  vision::write_idx((dir / "t10k-labels-idx1-ubyte").string(), images, false);  // images as labels
  expect_error([&] { vision::load_idx_dataset(vision::find_idx_pair(dir.string(), "test"), p); },
               "t10k-labels-idx1-ubyte: holds (3,2,2)");
  vision::write_idx((dir / "t10k-labels-idx1-ubyte").string(), labels.slice(0, 0, 2), false);
  expect_error([&] { vision::load_idx_dataset(vision::find_idx_pair(dir.string(), "test"), p); },
               "2 labels for 3 images");
  fs::remove_all(dir);
}

TEST(ImageDataset, FashionMnistFilesAreValid) {
  const std::string dir = std::string(SSMKIT_SOURCE_DIR) + "/../shared/data/vision/fashion_mnist";
  ASSERT_TRUE(fs::exists(dir)) << "dataset missing: " << dir;
  const Tensor labels = vision::read_idx(dir + "/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(labels.shape(), (core::Shape{10000}));
  std::vector<int> count(10, 0);
  for (int64_t i = 0; i < labels.numel(); ++i) ++count[labels.data<uint8_t>()[i]];
  for (int c : count) EXPECT_EQ(c, 1000);  // balanced test set (SOURCE.md)
  EXPECT_EQ(vision::fashion_mnist_classes().size(), 10u);
  // the bundled sample PNGs (fashion_samples/<class>_<name>_t10k_<index>.png) reach a micro model exactly as
  // the idx samples do: a PNG of a Fashion-MNIST image is classified from the same input as in training
  const Tensor images = vision::read_idx(dir + "/t10k-images-idx3-ubyte.gz");
  const vision::Preprocess p = vision::Preprocess::fashion_mnist();
  int n = 0;
  for (const auto& e : fs::directory_iterator(fixture("fashion_samples"))) {
    const std::string name = e.path().stem().string();
    const int64_t i = std::stoll(name.substr(name.rfind('_') + 1)), k = std::stoll(name.substr(0, name.find('_')));
    EXPECT_EQ(labels.data<uint8_t>()[i], k) << name;
    Tensor raw = Tensor::empty({28, 28, 1}, DType::U8);
    std::copy(images.data<uint8_t>() + i * 784, images.data<uint8_t>() + (i + 1) * 784, raw.data<uint8_t>());
    EXPECT_EQ(max_diff(vision::prepare_image(vision::read_image(e.path().string()), p), vision::prepare_image(raw, p)),
              0)
        << name;
    ++n;
  }
  EXPECT_EQ(n, 10);
}

// ---------------------------------------------------------------------------------------------------------
// ImageFolder

TEST(ImageDataset, ImageFolderOrder) {
  const fs::path root = temp_dir("folder");
  const Tensor rgb = vision::read_image(fixture("rgb_40x30.png"));
  // classes: b_cats, a_dogs (nested folders), .hidden (skipped); files of other extensions ignored
  for (const char* f :
       {"b_cats/2.png", "b_cats/10.png", "a_dogs/z.png", "a_dogs/sub/a.jpg", "a_dogs/sub-x.png", ".hidden/x.png"}) {
    fs::create_directories((root / f).parent_path());
    vision::write_image((root / f).string(), rgb);
  }
  std::ofstream(root / "a_dogs" / "notes.txt") << "not an image";
  const vision::ImageFolderIndex idx = vision::scan_image_folder(root.string());
  EXPECT_EQ(idx.classes, (std::vector<std::string>{"a_dogs", "b_cats"}));
  std::vector<std::string> rel;
  for (const auto& p : idx.paths) rel.push_back(fs::path(p).lexically_relative(root).string());
  // torchvision: sorted(os.walk) visits a_dogs before a_dogs/sub; names sort as strings ("10" < "2")
  EXPECT_EQ(rel, (std::vector<std::string>{"a_dogs/sub-x.png", "a_dogs/z.png", "a_dogs/sub/a.jpg", "b_cats/10.png",
                                           "b_cats/2.png"}));
  EXPECT_EQ(idx.labels, (std::vector<int64_t>{0, 0, 0, 1, 1}));
  const vision::ImageDataset d = vision::load_image_folder(root.string(), vision::Preprocess::imagenet(16, 0.875));
  EXPECT_EQ(d.images.shape(), (core::Shape{5, 3, 16, 16}));
  EXPECT_EQ(vision::dataset_sha256(d).size(), 64u);
  // an empty class folder, then a broken image: both name what is wrong
  fs::create_directories(root / "c_empty");
  expect_error([&] { vision::scan_image_folder(root.string()); }, "no image in the class folder(s) c_empty");
  fs::remove_all(root / "c_empty");
  std::ofstream(root / "b_cats" / "broken.png") << "garbage";
  expect_error([&] { vision::load_image_folder(root.string(), vision::Preprocess::imagenet(16, 0.875)); },
               "broken.png: not an image");
  expect_error([&] { vision::scan_image_folder((root / "nope").string()); }, "no such folder");
  fs::remove_all(root);
}

TEST(ImageDataset, HashSubsetSplitAndBatches) {
  vision::ImageDataset d;
  d.files = {fixture("rgb_40x30.png")};
  // sha256sum tests/data/vision/rgb_40x30.png
  EXPECT_EQ(vision::dataset_sha256(d), "161e2c55cc33bca44ab4121c99f1c3f7f3bcf45f9f17479f76105189acac2391");
  d.classes = {"a", "b"};
  d.images = Tensor::empty({10, 1, 2, 2}, DType::U8);
  d.labels = Tensor::empty({10}, DType::I64);
  for (int64_t i = 0; i < 10; ++i) {
    d.labels.data<int64_t>()[i] = i % 2;
    for (int64_t j = 0; j < 4; ++j) d.images.data<uint8_t>()[i * 4 + j] = static_cast<uint8_t>(i);
  }
  const vision::ImageDataset s = vision::subset(d, {3, 7});
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.images.at<uint8_t>({1, 0, 1, 1}), 7);
  auto [a, b] = vision::split_dataset(d, 0.3, 5);
  EXPECT_EQ(a.size(), 7);
  EXPECT_EQ(b.size(), 3);
  auto [a2, b2] = vision::split_dataset(d, 0.3, 5);
  EXPECT_EQ(values_of(b.images), values_of(b2.images));  // seeded
  vision::Preprocess p = vision::Preprocess::fashion_mnist();
  p.size = 2, p.pad = 0;
  const int64_t idx[2] = {9, 0};
  const Tensor x = vision::gather_batch(d, idx, 2, p);
  EXPECT_NEAR(x.at<float>({0, 0, 0, 0}), (9.0f / 255.0f - 0.2860f) / 0.3530f, 1e-6);
  EXPECT_NEAR(x.at<float>({1, 0, 1, 1}), -0.2860 / 0.3530, 1e-6);
}

// ---------------------------------------------------------------------------------------------------------
// Augmentation

namespace {

vision::ImageDataset ramp_dataset(int64_t n, int64_t S) {
  vision::ImageDataset d;
  d.classes = {"x"};
  d.images = Tensor::empty({n, 1, S, S}, DType::U8);
  d.labels = Tensor::zeros({n}, DType::I64);
  for (int64_t i = 0; i < n * S * S; ++i) d.images.data<uint8_t>()[i] = static_cast<uint8_t>(1 + i % 200);
  return d;
}

}  // namespace

// Crop and flip against the documented draws: top and left offsets below(2 pad + 1) - pad, then flip when
// uniform() < 0.5, replayed on a copy of the generator.
TEST(Augment, CropAndFlipFollowTheDraws) {
  const int64_t S = 6;
  const vision::ImageDataset d = ramp_dataset(1, S);
  const uint8_t* src = d.images.data<uint8_t>();
  vision::AugmentOptions o;
  o.pad = 2;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    core::Rng rng(seed), replay(seed);
    std::vector<uint8_t> out(S * S);
    vision::random_crop_flip(src, 1, S, o, rng, out.data());
    const int64_t dy = static_cast<int64_t>(replay.below(5)) - 2, dx = static_cast<int64_t>(replay.below(5)) - 2;
    const bool flip = replay.uniform() < 0.5;
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        const int64_t sy = y + dy, sx = (flip ? S - 1 - x : x) + dx;
        const int want = sy >= 0 && sy < S && sx >= 0 && sx < S ? src[sy * S + sx] : 0;
        ASSERT_EQ(out[static_cast<size_t>(y * S + x)], want) << "seed " << seed << " at " << y << "," << x;
      }
    EXPECT_EQ(rng.next_u64(), replay.next_u64());  // exactly three draws
  }
  // no crop, no flip: the identity, and no draws
  o.pad = 0;
  o.flip = false;
  core::Rng rng(3), untouched(3);
  std::vector<uint8_t> out(S * S);
  vision::random_crop_flip(src, 1, S, o, rng, out.data());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), src));
  EXPECT_EQ(rng.next_u64(), untouched.next_u64());
}

// Random erasing with probability 1 and mode const: one zero box of area 2%..33% of the image and aspect within
// [0.3, 1/0.3] (allowing the rounding of h and w); probability 0 draws nothing.
TEST(Augment, RandomErasingBoxes) {
  const int64_t H = 32, W = 32;
  vision::AugmentOptions o;
  o.erase_prob = 1.0;
  o.erase_mode = "const";
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::vector<float> img(H * W, 7.0f);
    core::Rng rng(seed);
    vision::random_erasing(img.data(), 1, H, W, o, rng);
    int64_t y0 = H, y1 = -1, x0 = W, x1 = -1, zeros = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        if (img[static_cast<size_t>(y * W + x)] == 0.0f) {
          ++zeros;
          y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
        }
    if (zeros == 0) continue;  // all ten attempts can fail (box wider than the image)
    const int64_t h = y1 - y0 + 1, w = x1 - x0 + 1;
    EXPECT_EQ(zeros, h * w) << "one solid box, seed " << seed;
    EXPECT_GE(static_cast<double>(h * w), 0.02 * H * W - 2 * (h + w)) << seed;
    EXPECT_LE(static_cast<double>(h * w), H * W / 3.0 + 2 * (h + w)) << seed;
  }
  // pixel mode: normal values, not constant
  o.erase_mode = "pixel";
  std::vector<float> img(H * W, 7.0f);
  core::Rng rng(1);
  vision::random_erasing(img.data(), 1, H, W, o, rng);
  int64_t changed = 0;
  for (float v : img) changed += v != 7.0f;
  EXPECT_GT(changed, 0);
  o.erase_prob = 0;
  core::Rng r0(9), r1(9);
  vision::random_erasing(img.data(), 1, H, W, o, r0);
  EXPECT_EQ(r0.next_u64(), r1.next_u64());
  o.erase_mode = "blur";
  expect_error([&] { o.validate(); }, "erase mode \"blur\"");
}

// A batch is a function of the generator state: same seed, same batch; a generator restored mid-way (as on
// --resume) continues with the same batches; another seed differs.
TEST(Augment, BatchesAreReproducibleAndResumable) {
  const vision::ImageDataset d = ramp_dataset(8, 32);
  vision::Preprocess p = vision::Preprocess::fashion_mnist();
  vision::AugmentOptions o;
  o.erase_prob = 0.5;
  const int64_t idx[4] = {3, 1, 4, 1};
  core::Rng a(42), b(42), c(43);
  const Tensor x1 = vision::augment_batch(d, idx, 4, p, o, a);
  EXPECT_EQ(x1.shape(), (core::Shape{4, 1, 32, 32}));
  EXPECT_EQ(x1.dtype(), DType::F32);
  EXPECT_EQ(core::max_abs_diff(x1, vision::augment_batch(d, idx, 4, p, o, b)), 0.0);
  EXPECT_GT(core::max_abs_diff(x1, vision::augment_batch(d, idx, 4, p, o, c)), 0.0);
  const std::vector<uint64_t> saved = a.state();
  const Tensor x2 = vision::augment_batch(d, idx, 4, p, o, a);
  core::Rng resumed;
  resumed.set_state(saved);
  EXPECT_EQ(core::max_abs_diff(x2, vision::augment_batch(d, idx, 4, p, o, resumed)), 0.0);
  const int64_t bad[1] = {8};
  expect_error([&] { vision::augment_batch(d, bad, 1, p, o, a); }, "index 8 outside the 8 samples");
}
