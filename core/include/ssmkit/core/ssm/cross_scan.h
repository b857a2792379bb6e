// VMamba's multi-direction 2-D scan orders (../shared/specs/core-ssm.md §3.1): cross-scan unfolds an
// image into K = 4 sequences (row-major, column-major, both reversed) and cross-merge folds K scanned
// sequences back into row-major order by summing. They are adjoint gather/scatter maps, so each one's
// backward is the other. GroupMamba's one-direction-per-group split uses the single-direction pair.
// Shapes: B batch, C channels, H x W image, L = H*W; p = h*W + w row-major, q = w*H + h column-major.
//   x (B,C,H,W) -> xs (B,4,C,L);  ys (B,4,C,L) -> y (B,C,L)
// Dtypes F32 or F64. Gradient outputs defined on entry are accumulated into (+=).
#pragma once

#include <cstdint>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

enum class ScanDirection : int { RowMajor = 0, ColMajor = 1, RowMajorReversed = 2, ColMajorReversed = 3 };

// Row-major position p read at step l of direction k, for an H x W grid.
int64_t scan_direction_index(ScanDirection k, int64_t l, int64_t H, int64_t W);

// x (B,C,H,W) -> xs (B,4,C,H*W)
void cross_scan_forward(Tensor& xs, const Tensor& x);
// dxs (B,4,C,H*W) -> dx (B,C,H,W) (+= when dx is defined)
void cross_scan_backward(Tensor& dx, const Tensor& dxs, int64_t H, int64_t W);

// ys (B,4,C,H*W) -> y (B,C,H*W): y[p] = ys0[p] + ys1[q(p)] + ys2[L-1-p] + ys3[L-1-q(p)]
void cross_merge_forward(Tensor& y, const Tensor& ys, int64_t H, int64_t W);
// dy (B,C,H*W) -> dys (B,4,C,H*W) (+= when dys is defined)
void cross_merge_backward(Tensor& dys, const Tensor& dy, int64_t H, int64_t W);

// One direction (GroupMamba's CrossScan_i / CrossMerge_i): x (B,C,H,W) -> xs (B,C,H*W) in direction k,
// and back: ys (B,C,H*W) in direction k -> y (B,C,H*W) row-major. Pure permutations.
void direction_scan_forward(Tensor& xs, const Tensor& x, ScanDirection k);
void direction_scan_backward(Tensor& dx, const Tensor& dxs, ScanDirection k, int64_t H, int64_t W);
void direction_merge_forward(Tensor& y, const Tensor& ys, ScanDirection k, int64_t H, int64_t W);
void direction_merge_backward(Tensor& dys, const Tensor& dy, ScanDirection k, int64_t H, int64_t W);

}  // namespace ssmkit::core
