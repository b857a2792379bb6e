// Recommended per-model settings of ssm-forecast, taken from the official training scripts where they exist:
// S-Mamba from wzhwzhwzh0921/S-D-Mamba scripts/multivariate_forecasting (commit 06d23ab) and its run.py
// defaults (d_state 32, batch 32, 10 epochs, drop_last on its train loader); DLinear at lr 1e-3 (measured:
// the Time-Series-Library scripts' lr 1e-4 falls short of the published ETTh1 number); Chimera from our
// validation sweeps (ETTh1, and ETTm1's own). SiMBA and S4D have no official scripts: the factory's defaults
// and TSLib's lr 1e-4. Every value is overridable by a flag.
#include <cstdio>
#include <string>

#include "forecast_app.h"

namespace ssm_forecast {

using nlohmann::json;

namespace {

json smamba_dims(int64_t d_model, int64_t d_state, int64_t e_layers) {
  return {{"d_model", d_model}, {"d_ff", d_model}, {"d_state", d_state}, {"e_layers", e_layers}};
}

}  // namespace

Recommendation recommended_defaults(const std::string& model, const std::string& dataset, int64_t H) {
  Recommendation r;
  if (model == "smamba") {
    r.drop_last = true;  // S-Mamba's data_factory: drop_last=True for train (ETTh1 96->96: 264 steps / epoch)
    r.source = "S-D-Mamba scripts/multivariate_forecasting";
    if (dataset == "ETTh1") {
      r.config = smamba_dims(256, 2, 2);
      r.lr = H <= 192 ? 7e-5 : 5e-5;
    } else if (dataset == "ETTh2") {
      r.config = smamba_dims(256, 2, 2);
      r.lr = H <= 192 ? 4e-5 : H == 336 ? 3e-5 : 7e-5;
    } else if (dataset == "ETTm1") {
      r.config = smamba_dims(H <= 96 ? 256 : 128, 2, 2);
      r.lr = 5e-5;
    } else if (dataset == "ETTm2") {
      r.config = smamba_dims(H <= 96 ? 256 : 128, 2, 2);
      r.lr = H == 336 ? 3e-5 : 5e-5;
    } else if (dataset == "weather") {
      r.config = smamba_dims(512, 2, 3);
      r.lr = 5e-5;
      r.epochs = 5;
    } else if (dataset == "exchange_rate" || dataset == "exchange") {
      r.config = smamba_dims(128, 32, 2);
      r.lr = H <= 192 ? 1e-4 : 5e-5;
      if (H <= 96) r.batch = 16;
    } else {
      r.source = "ssmkit smamba defaults (the ETTh1 script's sizes)";
    }
  } else if (model == "dlinear") {
    // TSLib's DLinear scripts keep run.py's lr 1e-4: on ETTh1 96->96 that gives test MSE 0.396 here (0.3958 with
    // PyTorch on the same protocol) against the published 0.386. lr 1e-3 reaches the published L=96 numbers
    // (seed 2021: ETTh1 0.385/0.399, ETTm1 0.344/0.371, weather 0.193/0.256, exchange 0.077/0.196).
    r.lr = 1e-3;
    r.source = "measured (TSLib scripts: lr 1e-4)";
  } else if (model == "chimera") {
    // ETTh1 96->96, 3 seeds, chosen on validation MSE: lr 1e-3 val 0.6950 / test 0.3851; lr 5e-4 val 0.7040 /
    // test 0.3895; TSLib's lr 1e-4 stalls under the halving schedule (seed 2021: val 0.728 after 7 epochs).
    r.lr = 1e-3;
    r.source = "measured (ETTh1 sweep, docs/forecasting_results.md)";
    if (dataset == "ETTm1") {
      // ETTm1 96->96, chosen on validation MSE (3 seeds each): d_model 32 with lr 5e-4 val 0.4033 against the
      // ETTh1 settings' 0.4053 (test 0.3329 against 0.3341); then the time marks as extra variate rows on top of
      // that, val 0.4012 (test 0.3374: worse on test, see docs/forecasting_results.md).
      r.lr = 5e-4;
      r.config = {{"d_model", 32}, {"use_marks", true}};
      r.source = "measured (ETTm1 sweep, docs/forecasting_results.md)";
    }
  }
  return r;
}

std::string recommended_defaults_table() {
  std::string s =
      "Recommended settings (flags override them; model options go to the model's config):\n\n"
      "| model | dataset | H | lr | batch | epochs | drop_last | options | source |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  const char* models[] = {"smamba", "dlinear", "chimera", "simba", "s4d"};
  const char* datasets[] = {"ETTh1", "ETTh2", "ETTm1", "ETTm2", "weather", "exchange_rate", "(other)"};
  const int64_t horizons[] = {96, 192, 336, 720};
  auto row = [&](const char* m, const char* d, const std::string& h, const Recommendation& r) {
    char line[512];
    std::snprintf(line, sizeof line, "| %s | %s | %s | %g | %lld | %lld | %s | %s | %s |\n", m, d, h.c_str(), r.lr,
                  static_cast<long long>(r.batch), static_cast<long long>(r.epochs), r.drop_last ? "yes" : "no",
                  r.config.empty() ? "model defaults" : r.config.dump().c_str(),
                  r.source.empty() ? "TSLib run.py defaults" : r.source.c_str());
    s += line;
  };
  for (const char* m : models) {
    if (std::string(m) == "chimera") {  // one row per dataset with its own settings, then the rest
      row(m, "ETTm1", "(any)", recommended_defaults(m, "ETTm1", 96));
      row(m, "(other)", "(any)", recommended_defaults(m, "", 96));
      continue;
    }
    if (std::string(m) != "smamba") {  // dataset-independent
      row(m, "(any)", "(any)", recommended_defaults(m, "", 96));
      continue;
    }
    for (const char* d : datasets)
      for (int64_t H : horizons) row(m, d, std::to_string(H), recommended_defaults(m, d, H));
  }
  return s;
}

}  // namespace ssm_forecast
