// Golden handler for op "cross_scan_merge": VMamba's 4-direction cross-scan of in.x and cross-merge of in.ys.
#include "golden_case.h"
#include "ssmkit/core/ssm/cross_scan.h"

namespace ssmkit::golden {

Results run_cross_scan_merge(const core::SafetensorsFile& f) {
  const core::Tensor& x = f.get("in.x");
  SSMKIT_CHECK(x.ndim() == 4, f.path, ": in.x must be (B,C,H,W), got ", core::shape_str(x.shape()));
  const int64_t H = x.size(2), W = x.size(3);
  if (f.has_meta("H"))
    SSMKIT_CHECK(std::stoll(f.meta("H")) == H && std::stoll(f.meta("W")) == W, f.path,
                 ": metadata H/W disagree with in.x ", core::shape_str(x.shape()));
  core::Tensor xs, y;
  core::cross_scan_forward(xs, x);
  core::cross_merge_forward(y, f.get("in.ys"), H, W);
  Results r{{"out.xs", xs}, {"out.y", y}};
  if (f.has("gout.xs")) {
    core::Tensor dx;
    core::cross_scan_backward(dx, f.get("gout.xs"), H, W);
    r["grad.x"] = dx;
  }
  if (f.has("gout.y")) {
    core::Tensor dys;
    core::cross_merge_backward(dys, f.get("gout.y"), H, W);
    r["grad.ys"] = dys;
  }
  return r;
}

}  // namespace ssmkit::golden
