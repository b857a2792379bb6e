// ssmkit-golden DIR...: checks every *.safetensors case in each DIR against ssmkit's implementation
// (../shared/golden/README.md). One line per case with the max error of every output and gradient
// against its tolerance, then "N passed, N failed". Exit 1 on any failure; an unknown op is a failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "golden_case.h"
#include "ssmkit/core/ops/vec_math.h"

namespace fs = std::filesystem;
using namespace ssmkit;

namespace {

// The case's sequence length: the last axis of in.u (README "Tolerance"); 0 when there is no in.u.
int64_t case_length(const core::SafetensorsFile& f) { return f.has("in.u") ? f.get("in.u").size(-1) : 0; }

struct CaseReport {
  bool ok = true;
  std::string line;
};

CaseReport check_case(const fs::path& path) {
  CaseReport rep;
  const std::string name = path.filename().string();
  char buf[512];
  try {
    core::SafetensorsFile f = core::load_safetensors(path.string());
    const std::string op = f.meta_or("op", "");
    const auto& ops = golden::known_ops();
    auto it = std::find_if(ops.begin(), ops.end(), [&](const golden::OpEntry& e) { return op == e.op; });
    if (it == ops.end()) {
      rep.ok = false;
      rep.line = "FAIL " + name + ": unknown op \"" + op + "\" (ssmkit has no implementation for it)";
      return rep;
    }
    const int64_t L = case_length(f);
    const double rel = it->is_model || L >= 1000 ? 1e-3 : 1e-4;
    golden::Results got = it->run(f);
    std::string detail;
    for (const auto& [tname, ref] : f.tensors) {
      if (tname.rfind("out.", 0) != 0 && tname.rfind("grad.", 0) != 0) continue;
      const double tol = rel * std::max(1.0, core::max_abs(ref));
      auto g = got.find(tname);
      if (g == got.end() || !g->second.defined()) {
        rep.ok = false;
        detail += " " + tname + "=MISSING";
        continue;
      }
      double err;
      if (g->second.shape() != ref.shape()) {
        rep.ok = false;
        detail += " " + tname + "=SHAPE" + core::shape_str(g->second.shape()) + "!=" + core::shape_str(ref.shape());
        continue;
      }
      err = core::max_abs_diff(g->second, ref);
      const bool pass = err <= tol;  // NaN fails
      rep.ok = rep.ok && pass;
      std::snprintf(buf, sizeof buf, " %s=%.2e/%.1e%s", tname.c_str(), err, tol, pass ? "" : "!");
      detail += buf;
    }
    std::snprintf(buf, sizeof buf, "%s %s [%s, L=%lld]:", rep.ok ? "ok  " : "FAIL", name.c_str(), op.c_str(),
                  static_cast<long long>(L));
    rep.line = buf + detail;
  } catch (const std::exception& e) {
    rep.ok = false;
    rep.line = "FAIL " + name + ": " + e.what();
  }
  return rep;
}

}  // namespace

int main(int argc, char** argv) {
  auto usage = [](FILE* to) {
    std::fprintf(to,
                 "usage: ssmkit-golden [--simd all|AVX3|AVX2|SCALAR] DIR...\n"
                 "Checks every *.safetensors golden case in each DIR (see ../shared/golden/README.md).\n"
                 "--simd all runs every case once on each SIMD path this CPU supports (default: the best one).\n"
                 "example: ssmkit-golden --simd all ../shared/golden/core\n");
  };
  std::vector<std::string> dirs;
  std::string simd;  // "" = the best path only; "all" = every path this CPU runs; or one path's name
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--simd" && a + 1 < argc) simd = argv[++a];
    else dirs.push_back(arg);
  }
  if (dirs.empty()) {
    usage(stderr);
    return 1;
  }
  std::vector<std::string> targets{""};
  try {
    if (simd == "all") targets = ssmkit::core::simd_targets_available();
    else if (!simd.empty()) targets = {simd};
  } catch (const std::exception& e) {
    std::printf("FAIL %s\n", e.what());
    return 1;
  }
  int passed = 0, failed = 0;
  for (const std::string& target : targets) {
    try {
      ssmkit::core::simd_force_target(target);
    } catch (const std::exception& e) {
      std::printf("FAIL %s\n", e.what());
      ++failed;
      continue;
    }
    const std::string prefix = target.empty() ? "" : "[" + target + "] ";
    for (const fs::path dir : dirs) {
      if (!fs::is_directory(dir)) {
        std::printf("FAIL %s: not a directory\n", dir.c_str());
        ++failed;
        continue;
      }
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") files.push_back(e.path());
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        std::printf("FAIL %s: no *.safetensors cases\n", dir.c_str());
        ++failed;
      }
      for (const auto& p : files) {
        CaseReport r = check_case(p);
        std::printf("%s%s\n", prefix.c_str(), r.line.c_str());
        std::fflush(stdout);
        (r.ok ? passed : failed)++;
      }
    }
  }
  ssmkit::core::simd_force_target("");
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
