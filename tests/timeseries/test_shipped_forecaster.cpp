// The shipped forecaster (models/chimera_etth1_96.safetensors, card in models/README.md) reproduces its stated
// ETTh1 test MSE / MAE (M, 96 -> 96, the TSLib protocol: 2785 test windows, scaler fitted on the train rows)
// when loaded the way `ssm-forecast eval` loads it. Reads ETTh1 from $SSMKIT_DATA_DIR/timeseries/ett or
// ../shared/data; fails naming the path when it is absent.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "ssmkit/timeseries/forecast_checkpoint.h"
#include "ssmkit/timeseries/forecast_training.h"

using namespace ssmkit;
using namespace ssmkit::timeseries;

TEST(ShippedModels, ChimeraEtth1TestMseAsStated) {
  const char* env = std::getenv("SSMKIT_DATA_DIR");
  const std::string root = env != nullptr && *env != '\0' ? env : std::string(SSMKIT_SOURCE_DIR) + "/../shared/data";
  const std::string csv = root + "/timeseries/ett/ETTh1.csv";
  const std::string weights = std::string(SSMKIT_SOURCE_DIR) + "/models/chimera_etth1_96.safetensors";
  ASSERT_TRUE(std::filesystem::exists(weights)) << "missing " << weights;
  ASSERT_TRUE(std::filesystem::exists(csv)) << "missing ETTh1: " << csv << " (set SSMKIT_DATA_DIR)";
  LoadedForecaster f = load_forecaster(weights);
  ASSERT_EQ(f.model_name, "chimera");
  const ForecastData data = forecaster_data(f, csv, /*with_splits=*/true, f.csv);
  const ForecastMetrics m = evaluate(*f.model, data.split(Split::Test));
  EXPECT_EQ(m.windows, 2785);
  // The card's figures (float32 sums in another order or thread count move the 5th digit at most).
  EXPECT_NEAR(m.mse, 0.38469, 2e-4);
  EXPECT_NEAR(m.mae, 0.39933, 2e-4);
}
