// Golden handler for op "mamba_block": the Mamba-1 block with its parameters under official keys.
#include <string>

#include "golden_case.h"
#include "ssmkit/core/ssm/mamba_block.h"

namespace ssmkit::golden {

Results run_mamba_block(const core::SafetensorsFile& f) {
  core::MambaConfig cfg;
  cfg.d_model = std::stoll(f.meta("d_model"));
  cfg.d_state = std::stoll(f.meta_or("d_state", "16"));
  cfg.d_conv = std::stoll(f.meta_or("d_conv", "4"));
  cfg.expand = std::stoll(f.meta_or("expand", "2"));
  cfg.dt_rank = std::stoll(f.meta_or("dt_rank", "0"));
  cfg.bias = meta_flag(f, "bias", false);
  cfg.conv_bias = meta_flag(f, "conv_bias", true);
  core::MambaParams p;
  p.load(f, "param.", cfg);

  core::Tensor out;
  core::MambaCache cache;
  core::mamba_block_forward(out, &cache, f.get("in.hidden_states"), p, cfg);
  Results r{{"out.out", out}};
  if (!f.has("gout.out")) return r;
  core::MambaParams g = core::MambaParams::zeros(cfg);
  core::Tensor dhidden;
  core::mamba_block_backward(dhidden, g, f.get("gout.out"), cache, p, cfg);
  r["grad.hidden_states"] = dhidden;
  for (auto& [key, t] : g.names()) r["grad." + key] = *t;
  return r;
}

}  // namespace ssmkit::golden
