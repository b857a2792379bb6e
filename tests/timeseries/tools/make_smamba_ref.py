"""Writes tests/data/timeseries/smamba_ref.safetensors: a tiny S-Mamba built from the OFFICIAL code
(wzhwzhwzh0921/S-D-Mamba, model/S_Mamba.py; pass a checkout with --repo) with the pure-PyTorch Mamba of
mamba_standin.py (sequential scan), in float64 and eval mode: its state_dict without the unused man/man2/a
modules (param.<key>), a fixed input (input.x (B,L,C), input.x_mark (B,L,F)), the output (output (B,H,C))
and the gradient of sum(output^2) for every parameter (grad.<key>). Metadata: "config" (the ssmkit smamba
config) and "official_keys" (JSON list of every key of the official state_dict, man/man2/a included).
safetensors is written by hand (the format: u64 header length, JSON header, raw little-endian data).

usage: /usr/bin/python3 tests/timeseries/tools/make_smamba_ref.py --repo /path/to/S-D-Mamba [--out FILE]
"""
import argparse
import json
import os
import struct
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mamba_standin  # noqa: E402

DTYPES = {torch.float64: "F64", torch.float32: "F32"}


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="checkout of wzhwzhwzh0921/S-D-Mamba")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "data", "timeseries", "smamba_ref.safetensors"))
    args = ap.parse_args()

    mamba_standin.install("sequential")
    sys.path.insert(0, os.path.abspath(args.repo))
    from model.S_Mamba import Model  # the official model

    B, L, H, C, Fm = 2, 24, 12, 3, 4
    cfg = dict(d_model=16, d_ff=32, e_layers=2, d_state=2, dropout=0.1, activation="gelu", use_norm=True)
    configs = types.SimpleNamespace(seq_len=L, pred_len=H, output_attention=False, use_norm=1, d_model=cfg["d_model"],
                                    embed="timeF", freq="h", dropout=cfg["dropout"], class_strategy="projection",
                                    d_state=cfg["d_state"], d_ff=cfg["d_ff"], e_layers=cfg["e_layers"],
                                    activation=cfg["activation"])
    torch.manual_seed(2023)
    model = Model(configs).double().eval()
    # Make the Mamba parameters less uniform than their init (D = 1, A_log = log n) so the check sees them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".D") or name.endswith(".A_log") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    official_keys = list(model.state_dict().keys())
    unused = (".man.", ".man2.", ".a.")
    params = {k: v for k, v in model.state_dict().items() if not any(u in k for u in unused)}

    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, L, C, generator=g, dtype=torch.float64) * 2 + 0.5
    x_mark = torch.rand(B, L, Fm, generator=g, dtype=torch.float64) - 0.5
    out = model(x.clone(), x_mark, None, None)  # the official forecast divides x in place
    (out ** 2).sum().backward()

    tensors = {"input.x": x, "input.x_mark": x_mark, "output": out}
    for k, v in params.items():
        tensors["param." + k] = v
    for k, p in model.named_parameters():
        if not any(u in k for u in unused):
            tensors["grad." + k] = p.grad if p.grad is not None else torch.zeros_like(p)
    config = dict(model="smamba", seq_len=L, pred_len=H, enc_in=C, n_marks=Fm, period=24, **cfg)
    write_safetensors(args.out, tensors, {"config": json.dumps(config), "official_keys": json.dumps(official_keys),
                                          "source": "wzhwzhwzh0921/S-D-Mamba model/S_Mamba.py + mamba_standin.py"})
    print("wrote", args.out, os.path.getsize(args.out), "bytes;", len(params), "parameters;",
          "output max", out.abs().max().item(), "; scans agree to", mamba_standin.check_scans())


if __name__ == "__main__":
    main()
