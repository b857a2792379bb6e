// Loads a selective-scan case from a safetensors file and runs the scan: scan_example FILE.safetensors
#include <cstdio>

#include <ssmkit/core/io/safetensors.h>
#include <ssmkit/core/ssm/selective_scan.h>

int main(int argc, char** argv) {
  using namespace ssmkit::core;
  if (argc != 2) return std::fprintf(stderr, "usage: %s FILE.safetensors\n", argv[0]), 1;
  SafetensorsFile f = load_safetensors(argv[1]);  // tensors in.u, in.delta, in.A, in.B, in.C
  ScanInputs in{.u = f.get("in.u"), .delta = f.get("in.delta"), .A = f.get("in.A"), .B = f.get("in.B"),
                .C = f.get("in.C"), .delta_softplus = true};
  Tensor y, last;
  selective_scan_forward(y, &last, nullptr, in);  // y (B,D,L), last (B,D,N)
  std::printf("y %s, last state %s, max |y| = %.4f\n", shape_str(y.shape()).c_str(),
              shape_str(last.shape()).c_str(), max_abs(y));
  if (f.has("out.y")) std::printf("max |y - out.y| = %.2e\n", max_abs_diff(y, f.get("out.y")));
  return 0;
}
