// The golden handlers of the vision models (case_vision.cpp): ops "groupmamba", "simba_einfft" and
// "simba_mlp" of ../shared/golden/models, all whole networks (model tolerance). Built only when the runner
// links ssmkit::vision and defines SSMKIT_GOLDEN_WITH_VISION; known_ops() appends these entries then.
#pragma once

#include <vector>

#include "golden_case.h"

namespace ssmkit::golden {

#ifdef SSMKIT_GOLDEN_WITH_VISION
const std::vector<OpEntry>& vision_ops();
// One model case: the network rebuilt from the `config` metadata, every param.* loaded strictly, eval-mode
// forward of in.image; returns out.logits and the hooks out.stem, out.stage1, out.stage4_tokens, out.features.
Results run_vision_model(const core::SafetensorsFile& f);
#endif

}  // namespace ssmkit::golden
