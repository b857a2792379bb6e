// The eval transform: channel conversion, Pillow-exact antialiased bicubic resize, torchvision's center crop,
// a zero border and normalisation. The resize reproduces Pillow's algorithm (Resample.c, Pillow 9): per output
// pixel, weights of the bicubic kernel k(x) (a = -0.5) at (i + 0.5 - center) / s over the input pixels within
// 2 s of center = (o + 0.5) * in / out, s = max(1, in / out) (so downscaling averages over the footprint),
// normalised to sum 1, then converted to 22-bit fixed point; horizontal pass, then vertical, each rounded and
// clipped to 8 bits. It gives Pillow 9.4's bytes exactly (tests/data/vision fixtures; also a 400x300 picture
// resized to 341x256), while OpenCV's INTER_CUBIC (a = -0.75, no antialiasing) is off by 0.46 grey levels on
// average and 22 at most on that picture (INTER_AREA: 0.65 and 23), which is why OpenCV is not used here.
#include "ssmkit/vision/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "ssmkit/vision/model.h"

namespace ssmkit::vision {

using core::Tensor;

// ---------------------------------------------------------------------------------------------------------
// Configuration

int64_t Preprocess::resize_to() const {
  return static_cast<int64_t>(std::floor(static_cast<double>(inner()) / crop_pct));
}

void Preprocess::validate() const {
  SSMKIT_CHECK(size > 0, "preprocessing: size must be positive, got ", size);
  SSMKIT_CHECK(pad >= 0 && inner() > 0, "preprocessing: pad ", pad, " leaves no image inside size ", size);
  SSMKIT_CHECK(crop_pct > 0 && crop_pct <= 4 && resize_to() > 0, "preprocessing: crop_pct must be in (0, 4], got ",
               crop_pct);
  SSMKIT_CHECK(channels == 1 || channels == 3, "preprocessing: channels must be 1 or 3, got ", channels);
  SSMKIT_CHECK(static_cast<int64_t>(mean.size()) == channels && static_cast<int64_t>(std.size()) == channels,
               "preprocessing: mean and std need one value per channel (", channels, "), got ", mean.size(), " and ",
               std.size());
  for (double s : std) SSMKIT_CHECK(s > 0, "preprocessing: std values must be positive, got ", s);
}

std::string Preprocess::to_json() const {
  nlohmann::json j = {{"size", size}, {"crop_pct", crop_pct},      {"pad", pad}, {"channels", channels}, {"mean", mean},
                      {"std", std},   {"interpolation", "bicubic"}};
  return j.dump();
}

Preprocess Preprocess::from_json(const std::string& text) {
  Preprocess p;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    p.size = j.at("size").get<int64_t>();
    p.crop_pct = j.value("crop_pct", 1.0);
    p.pad = j.value("pad", int64_t{0});
    p.channels = j.at("channels").get<int64_t>();
    p.mean = j.at("mean").get<std::vector<double>>();
    p.std = j.at("std").get<std::vector<double>>();
    const std::string interp = j.value("interpolation", std::string("bicubic"));
    SSMKIT_CHECK(interp == "bicubic", "preprocessing: interpolation \"", interp,
                 "\" is not supported (expected bicubic)");
  } catch (const nlohmann::json::exception& e) {
    throw core::Error(std::string("preprocessing: bad JSON (") + e.what() +
                      "; expected {size, crop_pct, pad, channels, mean, std})");
  }
  p.validate();
  return p;
}

Preprocess Preprocess::imagenet(int64_t size, double crop_pct) {
  Preprocess p;
  p.size = size;
  p.crop_pct = crop_pct;
  return p;
}

Preprocess Preprocess::fashion_mnist() {
  Preprocess p;
  p.size = 32;
  p.pad = 2;
  p.crop_pct = 1.0;
  p.channels = 1;
  p.mean = {0.2860};
  p.std = {0.3530};
  return p;
}

Preprocess default_preprocess(const VisionModel& m) {
  if (m.image_size == 32 && m.in_chans() == 1) return Preprocess::fashion_mnist();
  Preprocess p = Preprocess::imagenet(m.image_size, m.crop_pct);
  if (m.in_chans() == 1) {
    p.channels = 1;
    p.mean = {0.449};  // the mean of the ImageNet channel statistics, as timm does for in_chans = 1
    p.std = {0.226};
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Channels

Tensor convert_channels(const Tensor& image, int64_t channels) {
  SSMKIT_CHECK(image.dtype() == core::DType::U8 && image.ndim() == 3 &&
                   (image.size(2) == 1 || image.size(2) == 3 || image.size(2) == 4),
               "convert_channels: expected an (H,W,C) U8 image with C 1, 3 or 4, got ", core::dtype_name(image.dtype()),
               " ", core::shape_str(image.shape()));
  SSMKIT_CHECK(channels == 1 || channels == 3, "convert_channels: channels must be 1 or 3, got ", channels);
  const Tensor img = image.contiguous();
  const int64_t H = img.size(0), W = img.size(1), C = img.size(2), n = H * W;
  if (C == channels) return img;
  Tensor out = Tensor::uninitialized({H, W, channels}, core::DType::U8);
  const uint8_t* s = img.data<uint8_t>();
  uint8_t* d = out.data<uint8_t>();
  if (channels == 3) {
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* px = s + i * C;
      d[3 * i + 0] = px[0];
      d[3 * i + 1] = C == 1 ? px[0] : px[1];
      d[3 * i + 2] = C == 1 ? px[0] : px[2];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* px = s + i * C;
      d[i] = static_cast<uint8_t>((19595u * px[0] + 38470u * px[1] + 7471u * px[2] + 0x8000u) >> 16);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Resize (Pillow's antialiased bicubic)

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images

double bicubic_kernel(double x) {  // Keys' cubic with a = -0.5
  const double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// For each output index: the first input index, the tap count, and ksize fixed-point weights.
struct Taps {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> w;  // (out, ksize)
};

Taps bicubic_taps(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  Taps t;
  t.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out_size));
  t.count.resize(static_cast<size_t>(out_size));
  t.w.assign(static_cast<size_t>(out_size * t.ksize), 0);
  std::vector<double> k(static_cast<size_t>(t.ksize));
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // C casts truncate toward zero; the clamp to 0 makes that equal to floor here.
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(center + support + 0.5));
    const int64_t n = hi - lo;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      k[static_cast<size_t>(i)] = bicubic_kernel((static_cast<double>(i + lo) - center + 0.5) / filterscale);
      sum += k[static_cast<size_t>(i)];
    }
    for (int64_t i = 0; i < n; ++i) {
      const double v = sum != 0.0 ? k[static_cast<size_t>(i)] / sum : k[static_cast<size_t>(i)];
      const double f = v * static_cast<double>(1 << kPrecisionBits);
      t.w[static_cast<size_t>(o * t.ksize + i)] = static_cast<int32_t>(v < 0 ? f - 0.5 : f + 0.5);
    }
    t.first[static_cast<size_t>(o)] = lo;
    t.count[static_cast<size_t>(o)] = n;
  }
  return t;
}

uint8_t clip8(int64_t acc) {
  if (acc >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (acc <= 0) return 0;
  return static_cast<uint8_t>(acc >> kPrecisionBits);
}

// src (H,W,C) -> dst (H,out_w,C)
void resample_rows(const uint8_t* src, int64_t H, int64_t W, int64_t C, int64_t out_w, uint8_t* dst) {
  const Taps t = bicubic_taps(W, out_w);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < out_w; ++x) {
      const int32_t* w = t.w.data() + x * t.ksize;
      const uint8_t* row = src + (y * W + t.first[static_cast<size_t>(x)]) * C;
      for (int64_t c = 0; c < C; ++c) {
        int64_t acc = int64_t{1} << (kPrecisionBits - 1);
        for (int64_t i = 0; i < t.count[static_cast<size_t>(x)]; ++i) acc += int64_t{row[i * C + c]} * w[i];
        dst[(y * out_w + x) * C + c] = clip8(acc);
      }
    }
}

// src (H,W,C) -> dst (out_h,W,C)
void resample_cols(const uint8_t* src, int64_t H, int64_t W, int64_t C, int64_t out_h, uint8_t* dst) {
  const Taps t = bicubic_taps(H, out_h);
  const int64_t row = W * C;
  for (int64_t y = 0; y < out_h; ++y) {
    const int32_t* w = t.w.data() + y * t.ksize;
    const uint8_t* top = src + t.first[static_cast<size_t>(y)] * row;
    for (int64_t j = 0; j < row; ++j) {
      int64_t acc = int64_t{1} << (kPrecisionBits - 1);
      for (int64_t i = 0; i < t.count[static_cast<size_t>(y)]; ++i) acc += int64_t{top[i * row + j]} * w[i];
      dst[y * row + j] = clip8(acc);
    }
  }
}

}  // namespace

Tensor resize_bicubic(const Tensor& image, int64_t out_h, int64_t out_w) {
  SSMKIT_CHECK(image.dtype() == core::DType::U8 && image.ndim() == 3,
               "resize_bicubic: expected an (H,W,C) U8 image, got ", core::dtype_name(image.dtype()), " ",
               core::shape_str(image.shape()));
  SSMKIT_CHECK(out_h > 0 && out_w > 0, "resize_bicubic: output size must be positive, got ", out_h, "x", out_w);
  const Tensor img = image.contiguous();
  const int64_t H = img.size(0), W = img.size(1), C = img.size(2);
  SSMKIT_CHECK(H > 0 && W > 0, "resize_bicubic: empty image ", core::shape_str(image.shape()));
  Tensor cur = img;
  if (out_w != W) {
    Tensor tmp = Tensor::uninitialized({H, out_w, C}, core::DType::U8);
    resample_rows(cur.data<uint8_t>(), H, W, C, out_w, tmp.data<uint8_t>());
    cur = tmp;
  }
  if (out_h != H) {
    Tensor tmp = Tensor::uninitialized({out_h, out_w, C}, core::DType::U8);
    resample_cols(cur.data<uint8_t>(), H, out_w, C, out_h, tmp.data<uint8_t>());
    cur = tmp;
  }
  return cur.same_storage(img) ? img.clone() : cur;
}

Tensor resize_shorter(const Tensor& image, int64_t shorter) {
  SSMKIT_CHECK(image.ndim() == 3 && image.size(0) > 0 && image.size(1) > 0,
               "resize_shorter: expected a non-empty (H,W,C) image, got ", core::shape_str(image.shape()));
  SSMKIT_CHECK(shorter > 0, "resize_shorter: size must be positive, got ", shorter);
  const int64_t H = image.size(0), W = image.size(1);
  const int64_t s = std::min(H, W), l = std::max(H, W);
  // torchvision: new_long = int(requested * long / short), computed in Python floats
  const int64_t nl =
      static_cast<int64_t>(static_cast<double>(shorter) * static_cast<double>(l) / static_cast<double>(s));
  const int64_t oh = H <= W ? shorter : nl, ow = H <= W ? nl : shorter;
  if (oh == H && ow == W) return image.contiguous();
  return resize_bicubic(image, oh, ow);
}

Tensor center_crop(const Tensor& image, int64_t h, int64_t w) {
  SSMKIT_CHECK(image.dtype() == core::DType::U8 && image.ndim() == 3, "center_crop: expected an (H,W,C) U8 image, got ",
               core::shape_str(image.shape()));
  SSMKIT_CHECK(h > 0 && w > 0, "center_crop: crop size must be positive, got ", h, "x", w);
  const Tensor img = image.contiguous();
  const int64_t H = img.size(0), W = img.size(1), C = img.size(2);
  // torchvision pads a too-small image with zeros first: left/top (crop - size) // 2, right/bottom the rest.
  const int64_t ph = h > H ? h : H, pw = w > W ? w : W;
  const int64_t oy = h > H ? (h - H) / 2 : 0, ox = w > W ? (w - W) / 2 : 0;
  // crop offsets in the padded image: int(round((size - crop) / 2.0)), Python rounding (half to even)
  const int64_t top = static_cast<int64_t>(std::nearbyint(static_cast<double>(ph - h) / 2.0));
  const int64_t left = static_cast<int64_t>(std::nearbyint(static_cast<double>(pw - w) / 2.0));
  Tensor out = Tensor::zeros({h, w, C}, core::DType::U8);
  const uint8_t* s = img.data<uint8_t>();
  uint8_t* d = out.data<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    const int64_t sy = y + top - oy;
    if (sy < 0 || sy >= H) continue;
    for (int64_t x = 0; x < w; ++x) {
      const int64_t sx = x + left - ox;
      if (sx < 0 || sx >= W) continue;
      std::memcpy(d + (y * w + x) * C, s + (sy * W + sx) * C, static_cast<size_t>(C));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The whole transform

Tensor prepare_image(const Tensor& image, const Preprocess& p) {
  p.validate();
  const Tensor rgb = convert_channels(image, p.channels);
  const Tensor crop = center_crop(resize_shorter(rgb, p.resize_to()), p.inner(), p.inner());
  const int64_t S = p.size, C = p.channels, I = p.inner();
  Tensor out = Tensor::zeros({C, S, S}, core::DType::U8);  // the border stays 0
  const uint8_t* s = crop.data<uint8_t>();
  uint8_t* d = out.data<uint8_t>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < I; ++y)
      for (int64_t x = 0; x < I; ++x) d[(c * S + y + p.pad) * S + x + p.pad] = s[(y * I + x) * C + c];
  return out;
}

void normalize_planar(const uint8_t* src, int64_t C, int64_t S, const Preprocess& p, float* out) {
  SSMKIT_CHECK(C == p.channels, "normalize_planar: ", C, " channels, the preprocessing has ", p.channels);
  for (int64_t c = 0; c < C; ++c) {
    // torchvision: ToTensor divides in float32, Normalize subtracts and divides by float32 mean/std
    float lut[256];
    const float m = static_cast<float>(p.mean[static_cast<size_t>(c)]),
                sd = static_cast<float>(p.std[static_cast<size_t>(c)]);
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) / 255.0f - m) / sd;
    const uint8_t* sc = src + c * S * S;
    float* oc = out + c * S * S;
    for (int64_t i = 0; i < S * S; ++i) oc[i] = lut[sc[i]];
  }
}

Tensor eval_transform(const Tensor& image, const Preprocess& p) {
  const Tensor u8 = prepare_image(image, p);
  Tensor out = Tensor::uninitialized({p.channels, p.size, p.size}, core::DType::F32);
  normalize_planar(u8.data<uint8_t>(), p.channels, p.size, p, out.data<float>());
  return out;
}

}  // namespace ssmkit::vision
