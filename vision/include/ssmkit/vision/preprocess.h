// The eval transform of the classifiers, as timm builds it for the official models (transforms_factory.py,
// crop_pct path) and Pillow computes it: channels (gray/alpha -> RGB by PIL's convert('RGB'), or to one luma
// channel by convert('L') for 1-channel models), Resize(floor(inner / crop_pct)) of the shorter side with
// Pillow's antialiased bicubic (a = -0.5, support scaled by the downscale factor, 22-bit fixed point with
// 8-bit rounding after each pass: the same bytes as Pillow), CenterCrop(inner), an optional zero border
// (the micro models see 28x28 Fashion-MNIST padded to 32x32), ToTensor (/255) and mean/std normalisation.
// OpenCV's INTER_CUBIC is not used: it has a = -0.75 and no antialiasing (see docs in preprocess.cpp).
// Not here: decoding (image_io.h), training augmentation (augment.h).
// Shapes: H x W pixels, C channels; images are (H,W,C) U8 interleaved, model inputs (C,S,S) planar.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::vision {

class VisionModel;

// What a model expects: stored in our checkpoints' `preprocessing` metadata.
struct Preprocess {
  int64_t size = 224;       // side of the model input (after the border)
  double crop_pct = 0.875;  // resize the shorter side to floor(inner() / crop_pct), then center-crop inner()
  int64_t pad = 0;          // zero border (pixel value 0, before normalisation) on each side
  int64_t channels = 3;     // 3 RGB, 1 gray (luma)
  std::vector<double> mean = {0.485, 0.456, 0.406};  // per channel, on [0,1] values
  std::vector<double> std = {0.229, 0.224, 0.225};

  int64_t inner() const { return size - 2 * pad; }  // the crop size
  int64_t resize_to() const;                        // floor(inner / crop_pct), as timm's scale_size
  void validate() const;                            // throws Error naming the bad field
  // {"size", "crop_pct", "pad", "channels", "mean", "std", "interpolation": "bicubic"}
  std::string to_json() const;
  static Preprocess from_json(const std::string& json);  // Error names the missing/bad key

  // ImageNet: timm's IMAGENET_DEFAULT_MEAN / _STD, 3 channels.
  static Preprocess imagenet(int64_t size = 224, double crop_pct = 0.875);
  // Fashion-MNIST for the micro models: 1 channel, 28x28 in a 2-pixel border (32x32), crop_pct 1 (an image
  // of another size is resized so its shorter side is 28, then center-cropped), mean 0.2860 and std 0.3530:
  // the statistics of the 60k training images at 28x28 (border not counted), as torchvision recipes use.
  static Preprocess fashion_mnist();
};

// The defaults for a model: fashion_mnist() for 1-channel 32x32 models (the micro configurations, with
// `channels` = in_chans), else imagenet(image_size, crop_pct) with the model's channels.
Preprocess default_preprocess(const VisionModel& model);

// image (H,W,Cin) U8, Cin in {1,3,4} -> (H,W,channels) U8. To 3: gray replicated, alpha dropped (PIL's
// convert('RGB') does not composite). To 1: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (PIL's
// convert('L'), ITU-R 601-2 luma; gray passes through, alpha is dropped).
core::Tensor convert_channels(const core::Tensor& image, int64_t channels);

// image (H,W,C) U8 -> (out_h,out_w,C) U8 with Pillow's Image.resize(..., BICUBIC): separable, horizontal pass
// first (skipped when the width is unchanged), each pass rounded and clipped to 8 bits.
core::Tensor resize_bicubic(const core::Tensor& image, int64_t out_h, int64_t out_w);
// torchvision Resize(shorter): the shorter side becomes `shorter`, the longer int(shorter * long / short).
core::Tensor resize_shorter(const core::Tensor& image, int64_t shorter);
// torchvision CenterCrop: top = round((H - h) / 2), left = round((W - w) / 2) (Python's round, half to even);
// a side smaller than the crop is first zero-padded symmetrically as torchvision does.
core::Tensor center_crop(const core::Tensor& image, int64_t h, int64_t w);

// Everything of the transform except normalisation: image (H,W,Cin) U8 -> (channels, size, size) U8, planar.
// This is what datasets keep in memory.
core::Tensor prepare_image(const core::Tensor& image, const Preprocess& p);
// (C,S,S) U8 planar -> out (C,S,S) floats: (v / 255 - mean[c]) / std[c].
void normalize_planar(const uint8_t* src, int64_t C, int64_t S, const Preprocess& p, float* out);
// The whole eval transform of one decoded image -> (channels, size, size) F32.
core::Tensor eval_transform(const core::Tensor& image, const Preprocess& p);

}  // namespace ssmkit::vision
