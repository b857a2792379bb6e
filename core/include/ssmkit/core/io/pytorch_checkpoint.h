// PyTorch checkpoints (.pth/.pt files written by torch.save) read natively, without Python: the zip
// format (torch >= 1.6) and the legacy one (_use_new_zipfile_serialization=False), through a minimal
// unpickler that accepts only what state dicts contain and never imports or runs anything named in
// the file. Out come the tensors of one state dict, in file order, as contiguous copies.
// Not here: TorchScript archives (torch.jit.save), whole pickled nn.Modules, sparse/quantized tensors,
// compressed zip entries, big-endian files, writing .pth. Follows torch/serialization.py (torch 1.13/2.x).
//
// What the unpickler accepts (pickle protocols 2-5): None, bools, ints, floats, str, bytes, tuples,
// lists, dicts; the globals collections.OrderedDict (called with no arguments; BUILD state such as
// `_metadata` is ignored), _codecs.encode(str, 'latin1') (protocol 2's bytes),
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter / _rebuild_parameter_with_state, and the
// storage classes torch.{Float,Double,Half,BFloat16,Long,Int,Byte,Bool}Storage inside persistent ids
// ('storage', type, key, location, numel[, None]). Any other
// global is refused with an Error naming module.attribute and the file, unless opaque_objects is set
// (then it becomes an inert placeholder; still nothing is imported or called). Memo, MARK and FRAME
// opcodes are supported; protocol 0/1 text opcodes, sets, extension codes and buffers are refused.
//
// Tensors: F32, F64, F16, BF16, I64, I32, U8 keep their dtype; BoolStorage becomes U8 (0/1). Views
// (offset, strides, shared storages, stride 0) are materialised as contiguous tensors, each owning its
// memory. Every storage must hold what its tensors address; materialising more than
// max(storage numel, 2^24) elements from one storage (stride-0 expansion) is refused.
//
// Choosing the state dict (a "state dict" is a non-empty dict whose keys are all strings and whose
// values are all tensors):
//   1. options.key set: the value reached from the top-level dict by that key path ('/' separates
//      levels, e.g. "model" or "checkpoint/model_ema") must be a state dict.
//   2. Otherwise, if the top-level object is a state dict, it is the one.
//   3. Otherwise the top-level object must be a dict, and these keys are tried in order, the first
//      whose value is a state dict winning (a value that is a dict but not a state dict is searched
//      the same way, at most 3 levels down):
//        default:            "model", "state_dict", "model_ema", "state_dict_ema"
//        prefer_ema = true:  "model_ema", "state_dict_ema", "model", "state_dict"
//      PthFile::selected tells which path won, so a caller can see that an EMA copy was (not) used.
//   4. Nothing found: Error listing the top-level keys with their kinds.
// Then options.strip_prefixes apply in order: each key that starts with the prefix loses it once
// (keys without it stay as they are); two keys becoming equal is an Error naming both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

struct PthOptions {
  bool prefer_ema = false;                  // rule 3: try the EMA copies first
  std::string key;                          // rule 1: explicit key path, e.g. "model_ema"
  std::vector<std::string> strip_prefixes;  // e.g. {"module."} for DataParallel / timm EMA files
  bool opaque_objects = false;  // unknown classes (argparse.Namespace, numpy scalars, config objects of
                                // training checkpoints) become inert placeholders instead of an Error
  bool verify_crc = true;       // check the CRC-32 of every zip entry read
};

struct PthFile {
  std::string path;      // as given; errors name it
  std::string format;    // "zip" (torch >= 1.6) or "legacy"
  int format_version = 0;  // zip: the archive's `version` record (3 for torch >= 1.6); legacy: 1001
  std::string selected;  // key path of the chosen state dict ("" = the top-level object)
  std::vector<std::string> top_keys;  // the top-level dict's string keys (empty if it is not a dict)
  std::vector<std::pair<std::string, Tensor>> tensors;  // the state dict, in file order

  bool has(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws Error naming the file and the key
  int64_t numel() const;                             // sum of numel over tensors
};

// Reads `path` (memory-mapped) and returns the state dict chosen by the rules above.
// Throws Error "<path>: <what is wrong> (<hint>)" for anything it cannot read or refuses.
PthFile load_pytorch_checkpoint(const std::string& path, const PthOptions& options = {});

// The same from an in-memory image of a file; `origin` names it in errors.
PthFile parse_pytorch_checkpoint(const void* bytes, size_t size, const std::string& origin, const PthOptions& options = {});

// Removes `prefix` from every key that starts with it; Error (naming `origin`) when two keys collide.
std::vector<std::pair<std::string, Tensor>> strip_key_prefix(std::vector<std::pair<std::string, Tensor>> tensors,
                                                             const std::string& prefix, const std::string& origin);

}  // namespace ssmkit::core
