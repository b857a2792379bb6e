// The shipped image classifier (models/groupmamba_micro_fashion.safetensors, card in models/README.md) scores
// exactly its stated Fashion-MNIST test accuracy (93.05 %, 9305 of 10000) when loaded the way ssm-classify
// loads it. Reads the test set from $SSMKIT_DATA_DIR/vision/fashion_mnist or ../shared/data; fails naming the
// path when it is absent.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "ssmkit/vision/classifier.h"
#include "ssmkit/vision/image_dataset.h"

using namespace ssmkit;

namespace {
std::string data_root() {
  const char* env = std::getenv("SSMKIT_DATA_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(SSMKIT_SOURCE_DIR) + "/../shared/data";
}
}  // namespace

TEST(ShippedModels, GroupMambaMicroFashionMnistAccuracyAsStated) {
  const std::string weights = std::string(SSMKIT_SOURCE_DIR) + "/models/groupmamba_micro_fashion.safetensors";
  const std::string data = data_root() + "/vision/fashion_mnist";
  ASSERT_TRUE(std::filesystem::exists(weights)) << "missing " << weights;
  ASSERT_TRUE(std::filesystem::exists(data)) << "missing the Fashion-MNIST test set: " << data
                                             << " (set SSMKIT_DATA_DIR)";
  vision::Classifier c = vision::load_classifier("", weights);
  ASSERT_EQ(c.model_name, "groupmamba-micro");
  const vision::ImageDataset test = vision::open_image_dataset(data, "test", c.preprocess);
  ASSERT_EQ(test.size(), 10000);
  const vision::EvalResult r = vision::evaluate_classifier(*c.model, test, c.preprocess);
  // The card's figure; a different thread count may move a borderline logit, hence +-2 images.
  EXPECT_NEAR(static_cast<double>(r.correct), 9305.0, 2.0) << "accuracy " << r.accuracy();
  EXPECT_GE(r.accuracy(), 0.93);
}
