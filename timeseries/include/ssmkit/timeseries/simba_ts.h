// SiMBA-TS (reconstructed): the time-series variant of SiMBA (Patro & Agneeswaran, "SiMBA: Simplified
// Mamba-Based Architecture for Vision and Multivariate Time series", arXiv 2403.15360), whose forecasting
// code is not public (../shared/specs/vision.md §3.7: tokenization, depths and widths unverified). Built as
// that spec recommends, on the Time-Series-Library protocol: instance norm over time (RevIN, not learned);
// tokens = one per variate, Linear(L -> D) of its series (the iTransformer / S-Mamba inverted tokens; the time
// marks may join as extra tokens, as S-Mamba does) or, with tokens "patch", PatchTST patches of each variate
// (channel independent); e_layers x [x + Mamba(LN(x)), x + EinFFT(LN(x))] along the token axis (Mamba optionally
// bidirectional, the reverse one run on the flipped tokens as S-Mamba does); final LayerNorm; Linear D -> H
// (patch tokens: flatten P'·D -> H); de-normalize. Mamba keeps its own init (S-Mamba's), not vision SiMBA's
// trunc-normal re-init. Shapes: B batch, L seq_len, H pred_len, C channels, F marks, T tokens, D d_model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/nn/einfft.h"
#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries {

// Defaults: S-Mamba's ETTh1 sizes (D 256, d_conv 2, expand 1, bidirectional, marks as tokens) with Mamba's
// d_state 16. ETTh1 (L 96, H 96, Adam lr 1e-4, 5 epochs type1, one seed): test MSE 0.3879 at D 256 vs 0.3942 at
// D 128, with or without the mark tokens (0.3916 at lr 5e-4, best at epoch 1).
struct SimbaTSConfig {
  int64_t d_model = 256;  // D (a multiple of 4: EinFFT's 4 blocks)
  int64_t e_layers = 2;
  int64_t d_state = 16;   // Mamba N
  int64_t d_conv = 2;     // Mamba conv width (S-Mamba's 2 over variate tokens)
  int64_t expand = 1;     // Mamba E = expand·D
  std::string tokens = "variate";  // "variate" (Linear(L -> D) per variate) or "patch" (per-variate patches)
  int64_t patch_len = 16, patch_stride = 8;  // tokens "patch": PatchTST patches, end-padded by patch_stride
  bool bidirectional = true;  // + flip(Mamba_r(flip(x))) over the tokens
  bool use_marks = true;      // time marks as extra tokens (tokens "variate" only)
  bool revin = true;
  double dropout = 0.1;       // after the embedding and on both residual branches

  nlohmann::json to_json() const;  // every field above by name
  static SimbaTSConfig from_json(const nlohmann::json& config);  // unknown keys / bad values throw Error
};

// One block: x + dropout(Mamba(norm1(x)) [+ flip(mamba_r(flip(norm1(x))))]); x + dropout(einfft(norm2(x))).
// Keys: norm1.*, mamba.* (official Mamba keys), mamba_r.* (bidirectional), norm2.*, einfft.complex_*.
class SimbaTSLayer : public core::Module {
 public:
  SimbaTSLayer(const SimbaTSConfig& cfg, core::Rng& rng);
  core::Var forward(const core::Var& x) const;  // (B,T,D) -> (B,T,D)

  std::shared_ptr<core::LayerNorm> norm1, norm2;
  std::shared_ptr<core::Mamba> mamba, mamba_r;  // mamba_r: bidirectional only
  std::shared_ptr<core::EinFFT> einfft;
  double dropout;
};

class SimbaTS : public ForecastModel {
 public:
  using Config = SimbaTSConfig;
  SimbaTS(const ForecastDims& dims, const SimbaTSConfig& cfg = {}, core::Rng& rng = core::global_rng());

  // x (B,L,C), x_mark (B,L,F) (used when uses_marks() and F > 0) -> (B,H,C). Dropout draws from
  // core::global_rng().
  core::Var forward(const core::Var& x, const core::Var& x_mark = {}) const override;
  std::string model_name() const override { return "simba"; }
  nlohmann::json config() const override;  // dims + every SimbaTSConfig field
  bool uses_marks() const override { return cfg.use_marks; }

  int64_t n_tokens() const { return n_tokens_; }  // T per sequence: C (+ F) variate tokens, or P' patches

  SimbaTSConfig cfg;
  std::shared_ptr<core::Linear> embed;               // L -> D (variate tokens) or P -> D (patch tokens)
  std::vector<std::shared_ptr<SimbaTSLayer>> layers;  // "layers.{i}"
  std::shared_ptr<core::LayerNorm> norm;             // final norm (D)
  std::shared_ptr<core::Linear> head;                // D -> H, or P'·D -> H (patch tokens)

 private:
  int64_t n_tokens_ = 0;
  core::Tensor patch_index_;  // I64 (P'·P), patch tokens only
};

}  // namespace ssmkit::timeseries
