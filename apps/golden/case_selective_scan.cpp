// Golden handler for op "selective_scan": Mamba's S6 scan with optional D, z, delta_bias and the last state.
#include "golden_case.h"
#include "ssmkit/core/ssm/selective_scan.h"

namespace ssmkit::golden {

Results run_selective_scan(const core::SafetensorsFile& f) {
  core::ScanInputs in;
  in.u = f.get("in.u");
  in.delta = f.get("in.delta");
  in.A = f.get("in.A");
  in.B = f.get("in.B");
  in.C = f.get("in.C");
  in.D = optional_tensor(f, "in.D");
  in.z = optional_tensor(f, "in.z");
  in.delta_bias = optional_tensor(f, "in.delta_bias");
  in.h0 = optional_tensor(f, "in.h0");
  in.delta_softplus = meta_flag(f, "delta_softplus", false);

  core::Tensor y, last;
  core::ScanSaved saved;
  core::selective_scan_forward(y, &last, &saved, in);
  Results r{{"out.y", y}, {"out.last_state", last}};
  if (!f.has("gout.y")) return r;

  core::ScanGrads g;
  core::selective_scan_backward(g, f.get("gout.y"), optional_tensor(f, "gout.last_state"), in, saved);
  r["grad.u"] = g.du;
  r["grad.delta"] = g.ddelta;
  r["grad.A"] = g.dA;
  r["grad.B"] = g.dB;
  r["grad.C"] = g.dC;
  if (g.dD.defined()) r["grad.D"] = g.dD;
  if (g.dz.defined()) r["grad.z"] = g.dz;
  if (g.ddelta_bias.defined()) r["grad.delta_bias"] = g.ddelta_bias;
  if (g.dh0.defined()) r["grad.h0"] = g.dh0;
  return r;
}

}  // namespace ssmkit::golden
