// Random crop with zero padding, horizontal flip and timm's RandomErasing, drawing from one core::Rng in a
// documented order (augment.h). torchvision RandomCrop draws top then left with randint(0, 2 pad + 1); timm's
// RandomErasing draws with Python's random module: uniform(a, b), randint(a, b) inclusive, round() half to even.
// Not here: other augmentations.
#include "ssmkit/vision/augment.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace ssmkit::vision {

void AugmentOptions::validate() const {
  SSMKIT_CHECK(pad >= 0, "augmentation: pad must be >= 0, got ", pad);
  SSMKIT_CHECK(erase_prob >= 0 && erase_prob <= 1, "augmentation: erase probability must be in [0, 1], got ",
               erase_prob);
  SSMKIT_CHECK(erase_mode == "const" || erase_mode == "rand" || erase_mode == "pixel", "augmentation: erase mode \"",
               erase_mode, "\" is not known; expected const, rand or pixel");
  SSMKIT_CHECK(erase_min_area > 0 && erase_min_area <= erase_max_area && erase_max_area <= 1,
               "augmentation: erase areas must satisfy 0 < min <= max <= 1, got ", erase_min_area, " and ",
               erase_max_area);
  SSMKIT_CHECK(erase_min_aspect > 0 && erase_min_aspect <= 1, "augmentation: erase min aspect must be in (0, 1], got ",
               erase_min_aspect);
  SSMKIT_CHECK(erase_min_count >= 1 && erase_min_count <= erase_max_count,
               "augmentation: erase counts must satisfy 1 <= min <= max, got ", erase_min_count, " and ",
               erase_max_count);
}

void random_crop_flip(const uint8_t* src, int64_t C, int64_t S, const AugmentOptions& o, core::Rng& rng, uint8_t* dst) {
  int64_t dy = 0, dx = 0;  // the output pixel (y, x) comes from (y + dy, x + dx)
  if (o.pad > 0) {
    dy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * o.pad + 1))) - o.pad;
    dx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * o.pad + 1))) - o.pad;
  }
  const bool mirror = o.flip && rng.uniform() < 0.5;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < S; ++y) {
      uint8_t* out = dst + (c * S + y) * S;
      const int64_t sy = y + dy;
      if (sy < 0 || sy >= S) {
        std::memset(out, 0, static_cast<size_t>(S));
        continue;
      }
      const uint8_t* in = src + (c * S + sy) * S;
      for (int64_t x = 0; x < S; ++x) {
        const int64_t sx = (mirror ? S - 1 - x : x) + dx;  // crop, then flip the crop
        out[x] = sx >= 0 && sx < S ? in[sx] : 0;
      }
    }
}

void random_erasing(float* img, int64_t C, int64_t H, int64_t W, const AugmentOptions& o, core::Rng& rng) {
  if (o.erase_prob <= 0) return;
  if (rng.uniform() > o.erase_prob) return;
  const double area = static_cast<double>(H * W);
  const int64_t count =
      o.erase_min_count == o.erase_max_count
          ? o.erase_min_count
          : o.erase_min_count +
                static_cast<int64_t>(rng.below(static_cast<uint64_t>(o.erase_max_count - o.erase_min_count + 1)));
  const double log_lo = std::log(o.erase_min_aspect), log_hi = std::log(1.0 / o.erase_min_aspect);
  for (int64_t n = 0; n < count; ++n) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = rng.uniform(o.erase_min_area, o.erase_max_area) * area / static_cast<double>(count);
      const double aspect = std::exp(rng.uniform(log_lo, log_hi));
      const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
      const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
      if (!(w < W && h < H)) continue;
      const int64_t top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(H - h + 1)));
      const int64_t left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(W - w + 1)));
      std::vector<float> colour(static_cast<size_t>(C), 0.0f);
      if (o.erase_mode == "rand")
        for (auto& v : colour) v = static_cast<float>(rng.normal());
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = top; y < top + h; ++y)
          for (int64_t x = left; x < left + w; ++x)
            img[(c * H + y) * W + x] =
                o.erase_mode == "pixel" ? static_cast<float>(rng.normal()) : colour[static_cast<size_t>(c)];
      break;
    }
  }
}

core::Tensor augment_batch(const ImageDataset& d, const int64_t* idx, int64_t B, const Preprocess& p,
                           const AugmentOptions& o, core::Rng& rng) {
  o.validate();
  SSMKIT_CHECK(d.images.ndim() == 4 && d.images.size(1) == p.channels && d.images.size(2) == p.size &&
                   d.images.size(3) == p.size,
               "augment_batch: samples ", core::shape_str(d.images.shape()), " do not match the preprocessing (",
               p.channels, " channels, ", p.size, "x", p.size, ")");
  const int64_t C = p.channels, S = p.size;
  core::Tensor out = core::Tensor::uninitialized({B, C, S, S}, core::DType::F32);
  std::vector<uint8_t> tmp(static_cast<size_t>(C * S * S));
  for (int64_t b = 0; b < B; ++b) {
    SSMKIT_CHECK(idx[b] >= 0 && idx[b] < d.size(), "augment_batch: index ", idx[b], " outside the ", d.size(),
                 " samples");
    random_crop_flip(d.images.data<uint8_t>() + idx[b] * C * S * S, C, S, o, rng, tmp.data());
    float* img = out.data<float>() + b * C * S * S;
    normalize_planar(tmp.data(), C, S, p, img);
    random_erasing(img, C, S, S, o, rng);
  }
  return out;
}

}  // namespace ssmkit::vision
