// The Mamba-1 block (state-spaces/mamba `mamba_simple.Mamba`, slow path; ../shared/specs/core-ssm.md §2.4)
// as one layer with an explicit forward and backward, llm.c style: in_proj -> causal depthwise conv1d + SiLU
// -> x_proj -> (dt, B, C) -> dt_proj (its bias is the scan's delta_bias) -> selective scan with z gating
// -> out_proj. Parameters live under their official state_dict keys, so official weights load 1:1.
// Shapes: B batch, L length, M d_model, E d_inner = expand*M, R dt_rank, N d_state, K d_conv.
// F32 for real use, F64 for gradient checks. Also the recurrent (decode) step and chunked inference with
// carried state, both equal to the full forward over the same sequence. The Module with registration,
// initialization and autograd lives in nn/mamba.h.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ssm/selective_scan.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

struct MambaConfig {
  int64_t d_model = 0;
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t expand = 2;
  int64_t dt_rank = 0;  // 0 = "auto" = ceil(d_model / 16)
  bool conv_bias = true;
  bool bias = false;  // biases of in_proj / out_proj
  int64_t d_inner() const { return expand * d_model; }
  int64_t rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
};

// The block's parameters, under their official keys (see names()).
struct MambaParams {
  Tensor in_proj_weight;   // (2E, M)      in_proj.weight
  Tensor in_proj_bias;     // (2E)         in_proj.bias      (bias = true only)
  Tensor conv1d_weight;    // (E, 1, K)    conv1d.weight
  Tensor conv1d_bias;      // (E)          conv1d.bias       (conv_bias = true only)
  Tensor x_proj_weight;    // (R + 2N, E)  x_proj.weight     rows: dt_in, B, C
  Tensor dt_proj_weight;   // (E, R)       dt_proj.weight
  Tensor dt_proj_bias;     // (E)          dt_proj.bias      (the scan's delta_bias)
  Tensor A_log;            // (E, N)       A_log             A = -exp(A_log)
  Tensor D;                // (E)          D
  Tensor out_proj_weight;  // (M, E)       out_proj.weight
  Tensor out_proj_bias;    // (M)          out_proj.bias     (bias = true only)

  // Zero tensors of the right shapes for `cfg` (used for gradients, or before loading).
  static MambaParams zeros(const MambaConfig& cfg, DType dt = DType::F32);
  // The given tensors (shared, not copied) in names() order for `cfg`; the count must match.
  static MambaParams bind(const MambaConfig& cfg, const std::vector<Tensor>& values);
  // (official key, tensor) for every parameter the configuration has, in state_dict order.
  std::vector<std::pair<std::string, Tensor*>> names();
  // Copies every parameter from `f` under `prefix` + key, converting to `dt`; throws Error naming the
  // file and every missing key or wrong shape.
  void load(const SafetensorsFile& f, const std::string& prefix, const MambaConfig& cfg, DType dt = DType::F32);
};

// What the forward keeps for the backward (tensors of the parameters' dtype). The block keeps its
// activations channel-major, so in_proj writes x and z straight into their (B,E,L) buffers.
struct MambaCache {
  // Long sequences (channel-major):            Short ones (B > 1, L < 64; token-major, (B*L, width) rows):
  Tensor hidden;     // (B,L,M) the input           the same
  Tensor xz;         // undefined                    (B*L,2E) in_proj's output: x (the conv input) | z
  Tensor x_conv;     // (B,E,L) the conv input      undefined (the x half of xz)
  Tensor x_pre;      // (B,E,L) conv output before SiLU   (B*L,E)
  Tensor x_dbl;      // (B,L,R+2N) a transposed view of a channel-major buffer   (B,L,R+2N) contiguous
  ScanInputs scan;   // the scan's inputs, ScanLayout::kChannels / kTokens (z, B, C: views of xz, x_dbl)
  ScanSaved saved;   // the scan's chunk states
  Tensor y_scan;     // (B,E,L) scan output (gated)  (B,L,E)
};

// Recurrent state carried between chunks or decode steps (the official `conv_state`, `ssm_state`).
struct MambaState {
  Tensor conv;  // (B,E,K)  the last K conv inputs, newest last
  Tensor ssm;   // (B,E,N)  the scan state
  static MambaState zeros(int64_t batch, const MambaConfig& cfg, DType dt = DType::F32);
};

// hidden (B,L,M) -> out (B,L,M). Fills *cache when non-null (needed by the backward). With `state`
// (inference only: no cache), the sequence continues from *state and *state is advanced to its end, so
// running a sequence in chunks gives the one-shot result.
void mamba_block_forward(Tensor& out, MambaCache* cache, const Tensor& hidden, const MambaParams& p,
                         const MambaConfig& cfg, MambaState* state = nullptr);

// One decode step: x (B,M) -> out (B,M), advancing `state` (the official Mamba.step).
void mamba_block_step(Tensor& out, MambaState& state, const Tensor& x, const MambaParams& p, const MambaConfig& cfg);

// dout (B,L,M) -> dhidden (B,L,M) (written), parameter gradients added into `grads` (same layout as
// params; see MambaParams::zeros).
void mamba_block_backward(Tensor& dhidden, MambaParams& grads, const Tensor& dout, const MambaCache& cache,
                          const MambaParams& p, const MambaConfig& cfg);

}  // namespace ssmkit::core
