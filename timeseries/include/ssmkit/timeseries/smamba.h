// S-Mamba (Wang et al., "Is Mamba Effective for Time Series Forecasting?", Neurocomputing 2024) as the
// official wzhwzhwzh0921/S-D-Mamba model/S_Mamba.py with layers/Mamba_EncDec.py and layers/Embed.py
// (DataEmbedding_inverted): instance norm over time, every variate (and every time-mark feature) becomes a
// token Linear(L -> D), e_layers encoder layers [forward Mamba + flipped backward Mamba over the token axis,
// residual, LayerNorm, 1x1-conv FFN, residual, LayerNorm], encoder LayerNorm, projector D -> H, first C
// tokens kept, de-normalized. State-dict keys are the official ones, minus the layer's unused `man`, `man2`
// and `a` modules (smamba_drop_unused_keys strips them from an official state dict).
// Shapes: B batch, L seq_len, H pred_len, C channels, F time-mark features, T = C + F tokens, D d_model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries {

// Defaults: the official ETTh1 H=96 script on run.py's defaults.
struct SMambaConfig {
  int64_t d_model = 256;            // D
  int64_t d_ff = 256;               // FFN width
  int64_t e_layers = 2;
  int64_t d_state = 2;              // Mamba N (d_conv 2, expand 1 as the official model fixes them)
  double dropout = 0.1;
  std::string activation = "gelu";  // "gelu" (exact erf) or "relu"
  bool use_norm = true;             // instance norm and de-norm (run.py --use_norm)

  nlohmann::json to_json() const;  // every field above by name
  static SMambaConfig from_json(const nlohmann::json& config);  // unknown keys / bad values throw
};

// One official EncoderLayer. x (B,T,D) -> (B,T,D).
class SMambaEncoderLayer : public core::Module {
 public:
  SMambaEncoderLayer(const SMambaConfig& cfg, core::Rng& rng);
  core::Var forward(const core::Var& x) const;

  std::shared_ptr<core::Mamba> attention, attention_r;  // forward and flipped-backward Mamba over tokens
  std::shared_ptr<core::Conv1d> conv1, conv2;           // (d_ff,D,1), (D,d_ff,1)
  std::shared_ptr<core::LayerNorm> norm1, norm2;
  double dropout;
  bool gelu;
};

class SMamba : public ForecastModel {
 public:
  using Config = SMambaConfig;
  SMamba(const ForecastDims& dims, const SMambaConfig& cfg = {}, core::Rng& rng = core::global_rng());

  // x (B,L,C), x_mark (B,L,F) (undefined when F = 0) -> (B,H,C). Dropout draws from core::global_rng().
  core::Var forward(const core::Var& x, const core::Var& x_mark) const override;
  std::string model_name() const override { return "smamba"; }
  nlohmann::json config() const override;
  bool uses_marks() const override { return true; }

  SMambaConfig cfg;
  std::shared_ptr<core::Linear> value_embedding;            // "enc_embedding.value_embedding": L -> D
  std::vector<std::shared_ptr<SMambaEncoderLayer>> layers;  // "encoder.attn_layers.{i}"
  std::shared_ptr<core::LayerNorm> encoder_norm;            // "encoder.norm"
  std::shared_ptr<core::Linear> projector;                  // D -> H
};

// The official EncoderLayer also registers `man`, `man2` (Mamba, d_model 11) and `a` (an AttentionLayer) that
// forward never uses; their keys (encoder.attn_layers.{i}.man.*, .man2.*, .a.*) are in every official
// state_dict. Returns `official` without them, ready for SMamba::load_state_dict (strict).
core::NamedTensors smamba_drop_unused_keys(const core::NamedTensors& official);

}  // namespace ssmkit::timeseries
