// Training augmentation for the classifiers, every draw taken from a core::Rng in a fixed order so that a run
// is reproducible from its seed and resumable from a checkpoint of the Rng state: torchvision's
// RandomCrop(size, padding=pad) with zero fill, RandomHorizontalFlip(0.5), and timm's RandomErasing (probability,
// area 0.02..1/3 of the image, log-uniform aspect 0.3..1/0.3, up to 10 attempts per box, box filled with zeros,
// one normal colour per channel, or per-pixel normals, on the normalised image).
// Not here: RandAugment, mixup/cutmix, random-resized crops (the micro recipe does not use them).
// Shapes: B batch, C channels, S x S sample (square), H x W image.
#pragma once

#include <cstdint>
#include <string>

#include "ssmkit/core/random.h"
#include "ssmkit/core/tensor.h"
#include "ssmkit/vision/image_dataset.h"
#include "ssmkit/vision/preprocess.h"

namespace ssmkit::vision {

struct AugmentOptions {
  int64_t pad = 2;                   // crop offset drawn in [-pad, pad] per axis (0: no crop)
  bool flip = true;                  // horizontal flip with probability 0.5
  double erase_prob = 0.0;           // RandomErasing probability (0: off, no draws)
  std::string erase_mode = "pixel";  // "const", "rand" or "pixel", as timm's re_mode
  double erase_min_area = 0.02;      // box area as a fraction of the image, drawn uniformly in [min, max]
  double erase_max_area = 1.0 / 3.0;
  double erase_min_aspect = 0.3;  // aspect drawn log-uniformly in [min, 1/min]
  int64_t erase_min_count = 1;    // boxes per erased image, uniform in [min, max]
  int64_t erase_max_count = 1;
  void validate() const;  // throws Error naming the bad field
};

// src (C,S,S) U8 -> dst (C,S,S) U8 (src != dst): the sample shifted by a random offset with zero fill (draws:
// top then left, each below(2 pad + 1), when pad > 0), then mirrored left-right when uniform() < 0.5 (one draw,
// when flip).
void random_crop_flip(const uint8_t* src, int64_t C, int64_t S, const AugmentOptions& o, core::Rng& rng, uint8_t* dst);

// img (C,H,W) F32, normalised, in place: timm's RandomErasing._erase. Draws: uniform() (erase when <= prob),
// the box count when min != max, then per box and attempt: area fraction, log-aspect, and on success top,
// left and the fill values.
void random_erasing(float* img, int64_t C, int64_t H, int64_t W, const AugmentOptions& o, core::Rng& rng);

// Samples idx[0..B) of d, each cropped/flipped, normalised with p and erased, in order -> (B,C,S,S) F32.
core::Tensor augment_batch(const ImageDataset& d, const int64_t* idx, int64_t B, const Preprocess& p,
                           const AugmentOptions& o, core::Rng& rng);

}  // namespace ssmkit::vision
