// ssm-convert: converts a PyTorch checkpoint (.pth/.pt from torch.save, zip or legacy format) into a
// safetensors file, natively (no Python). The state dict is chosen and cleaned by load_pytorch_checkpoint
// (core/io/pytorch_checkpoint.h: nested 'model'/'state_dict', EMA copies, prefix stripping); the output is
// written atomically with its source recorded in the metadata. Not here: any change of values or dtypes
// (bool tensors arrive as U8), model-specific key renaming.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ssmkit/core/error.h"
#include "ssmkit/core/io/pytorch_checkpoint.h"
#include "ssmkit/core/io/safetensors.h"

int main(int argc, char** argv) {
  using namespace ssmkit::core;
  CLI::App app{"Convert a PyTorch checkpoint (torch.save, zip or legacy format) to safetensors, without Python.\n"
               "Nothing named in the file is imported or run; anything but state-dict contents is refused.\n"
               "example: ssm-convert groupmamba_tiny_ema.pth groupmamba_tiny.safetensors --prefix-strip module."};
  std::string in_path, out_path;
  PthOptions o;
  bool json = false, quiet = false;
  app.add_option("input", in_path, "PyTorch checkpoint (.pth / .pt)")->required();
  app.add_option("output", out_path, "safetensors file to write (replaced atomically)")->required();
  app.add_flag("--ema", o.prefer_ema, "prefer the EMA copy ('model_ema', 'state_dict_ema') when the file has one");
  app.add_option("--prefix-strip", o.strip_prefixes, "remove this prefix from the keys that have it (repeatable), e.g. module.");
  app.add_option("--key", o.key, "take the state dict at this key path ('/' between levels), e.g. model or state_dict_ema");
  app.add_flag("--ignore-objects", o.opaque_objects,
               "trusted files only: treat other objects next to the weights (training args, numpy scalars) as inert "
               "placeholders instead of refusing the file (they are still never imported or run)");
  app.add_flag("--json", json, "print the summary as JSON on stdout");
  app.add_flag("--quiet", quiet, "no summary on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  try {
    PthFile f = load_pytorch_checkpoint(in_path, o);
    std::string source_format = f.format == "zip" ? "pytorch zip (torch.save, archive version " + std::to_string(f.format_version) + ")"
                                                  : "pytorch legacy (torch.save, _use_new_zipfile_serialization=False)";
    std::string stripped;
    for (const std::string& p : o.strip_prefixes) stripped += (stripped.empty() ? "" : ",") + p;
    Metadata meta = {{"format", "pt"},  // the marker Hugging Face's converters write for PyTorch weights
                     {"source_file", in_path},
                     {"source_format", source_format},
                     {"source_key", f.selected},
                     {"stripped_prefixes", stripped},
                     {"converter", "ssm-convert"}};
    save_safetensors(out_path, f.tensors, meta);

    std::map<std::string, int> by_dtype;
    for (const auto& kv : f.tensors) ++by_dtype[dtype_name(kv.second.dtype())];
    std::string dtypes;
    for (const auto& [name, count] : by_dtype) dtypes += (dtypes.empty() ? "" : ", ") + name + " x" + std::to_string(count);
    if (!quiet)
      std::fprintf(stderr, "%s (%s, state dict %s): %zu tensors, %lld parameters (%s) -> %s\n", in_path.c_str(), f.format.c_str(),
                   f.selected.empty() ? "at the top level" : ("'" + f.selected + "'").c_str(), f.tensors.size(),
                   static_cast<long long>(f.numel()), dtypes.c_str(), out_path.c_str());
    if (json) {
      nlohmann::json j = {{"command", command},
                          {"model", nullptr},
                          {"metrics", {{"tensors", f.tensors.size()}, {"parameters", f.numel()}}},
                          {"results",
                           {{{"input", in_path},
                             {"output", out_path},
                             {"format", f.format},
                             {"source_key", f.selected},
                             {"dtypes", by_dtype}}}}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
}
