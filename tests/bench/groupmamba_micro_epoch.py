"""Times full Fashion-MNIST training epochs of the OFFICIAL GroupMamba class in the micro configuration (the
issue's PyTorch reference for `ssm-classify train --model groupmamba-micro`), alternating with the same epoch of
ssmkit's app, so that both see the same phases of a shared machine.

PyTorch side: Amshaker/GroupMamba's classes (the checkout given with --groupmamba; the CUDA scan replaced by the
fastest vectorised PyTorch scan of compare_vision_torch.py for this shape), 1 channel, 32x32, stem_hidden 16,
dims [32, 64, 128, 160], depths [1, 1, 2, 1], mlp ratio 4, no distillation head, drop path 0.05; AdamW 2e-3,
weight decay 0.05, 1 warmup epoch then cosine (per step), label smoothing 0.1, batch 128, random crop with
2-pixel zero padding + horizontal flip on the 28x28 images zero-padded to 32x32, normalised with mean 0.2860 and
std 0.3530: the recipe of the issue and of the app's defaults. Batches are built in the training loop (numpy,
no DataLoader workers: the machine has two cores and both train). The epoch time is the training loop only:
469 steps (the last batch of 96 images kept, as the app does), no evaluation.

ssmkit side: `ssm-classify train --data D --model groupmamba-micro --epochs 1 --threads T` (its default shards:
one per thread), timed as the app reports its epoch (its "epoch 1/1: ... | NN.N s train" line) and as the process's
wall time.

A dev script for the issue's speed figure; not run by CI.

usage: /usr/bin/python3 tests/bench/groupmamba_micro_epoch.py --groupmamba /path/to/GroupMamba \
           --data ../shared/data/vision/fashion_mnist --classify build/bin/ssm-classify [--threads 2] [--rounds 2]
needs: torch, numpy (Debian: python3-torch python3-numpy).
"""
import argparse
import gzip
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from openblas_core import with_openblas_core  # noqa: E402

# Before torch loads its OpenBLAS: the CPU's own kernels where OpenBLAS 0.3.21 would fall back to SSE3 ones.
os.environ.update(with_openblas_core(os.environ))

import numpy as np  # noqa: E402

BATCH = 128
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def official_micro(groupmamba_dir):
    """The official GroupMamba class in the micro configuration, its scan replaced (compare_vision_torch.py)."""
    import torch
    import torch.nn as nn
    import compare_vision_torch as cv
    import compare_torch
    cv.install_stubs(torch)
    sys.path.insert(0, cv.groupmamba_sources(groupmamba_dir))
    import csms6s
    import ss2d
    import groupmamba as gm
    scans = compare_torch.torch_defs()["scans_b"]

    class TorchScan:  # stands in for the CUDA SelectiveScanCore: u (B,D,L), B/C (B,1,N,L)
        @classmethod
        def apply(cls, u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, *rest):
            return scans["chunked-logcumsum"](u, delta, A, B[:, 0], C[:, 0], D, delta_bias=delta_bias,
                                              delta_softplus=delta_softplus, T=64)

    for mod in (csms6s, ss2d):
        for name in ("SelectiveScanCore", "SelectiveScanOflex", "SelectiveScanMamba"):
            setattr(mod, name, TorchScan)
    return gm.GroupMamba(in_chans=1, num_classes=10, stem_hidden_dim=16, embed_dims=[32, 64, 128, 160],
                         mlp_ratios=[4, 4, 4, 4], drop_path_rate=0.05,
                         norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6), depths=[1, 1, 2, 1], distillation=False)


def torch_epoch(model, opt, sched, images, labels, rng):
    """One epoch over all images in random order; returns (seconds, mean train loss)."""
    import torch
    import torch.nn.functional as F
    n = images.shape[0]
    order = rng.permutation(n)
    padded = np.zeros((n, 36, 36), dtype=np.uint8)  # 28x28 in the 2-pixel border (32x32), plus the crop padding
    padded[:, 4:32, 4:32] = images
    lut = ((np.arange(256, dtype=np.float32) / 255.0) - MEAN) / STD
    model.train()
    total, steps = 0.0, 0
    t0 = time.perf_counter()
    for s in range(0, n, BATCH):
        idx = order[s:s + BATCH]
        b = len(idx)
        dy, dx = rng.integers(0, 5, size=b), rng.integers(0, 5, size=b)
        flip = rng.random(b) < 0.5
        crop = np.empty((b, 32, 32), dtype=np.uint8)
        for i in range(b):
            c = padded[idx[i], dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
            crop[i] = c[:, ::-1] if flip[i] else c
        x = torch.from_numpy(lut[crop]).unsqueeze(1)
        y = torch.from_numpy(labels[idx].astype(np.int64))
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss)
        steps += 1
    return time.perf_counter() - t0, total / steps


def ssmkit_epoch(classify, data, threads, workdir):
    """One epoch of the app; returns (its own epoch seconds, process wall seconds, train loss)."""
    out = os.path.join(workdir, "micro.safetensors")
    cmd = [classify, "train", "--data", data, "--model", "groupmamba-micro", "--epochs", "1", "--threads",
           str(threads), "--seed", "0", "--out", out]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"ssm-classify failed ({r.returncode}):\n{r.stderr[-2000:]}")
    # the app's epoch line: "epoch 1/1: train loss 1.0961 acc 0.7260 | 39.8 s train, 0.0 s eval"
    m = re.search(r"epoch 1/1: train loss ([0-9.]+).*?\| ([0-9.]+) s train", r.stderr)
    if not m:
        sys.exit("could not find the epoch line in ssm-classify's output:\n" + r.stderr[-2000:])
    return float(m.group(2)), wall, float(m.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groupmamba", required=True, help="Amshaker/GroupMamba checkout (work tree or bare git dir)")
    p.add_argument("--data", required=True, help="the Fashion-MNIST idx directory")
    p.add_argument("--classify", default="build/bin/ssm-classify")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="PyTorch epoch, then ssmkit epoch, this many times")
    p.add_argument("--epochs-total", type=int, default=22, help="the cosine schedule's length (the recipe's 22)")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    steps_per_epoch = math.ceil(images.shape[0] / BATCH)
    model = official_micro(args.groupmamba)
    decay, no_decay = [], []
    for name, prm in model.named_parameters():
        (no_decay if prm.ndim <= 1 or name.endswith(("A_logs", "Ds")) else decay).append(prm)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-3)
    warm, total = steps_per_epoch, steps_per_epoch * args.epochs_total

    def lr_at(step):  # 1 warmup epoch from 1e-6, then cosine to 1e-5 (as a factor of 2e-3)
        if step < warm:
            return (1e-6 + (2e-3 - 1e-6) * step / warm) / 2e-3
        t = (step - warm) / max(1, total - warm)
        return (1e-5 + 0.5 * (2e-3 - 1e-5) * (1 + math.cos(math.pi * t))) / 2e-3

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {args.threads} threads; {sum(p.numel() for p in model.parameters()):,} "
          f"parameters (official class); {images.shape[0]} images, {steps_per_epoch} steps an epoch", flush=True)
    pt, sk, skw = [], [], []
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            secs, loss = torch_epoch(model, opt, sched, images, labels, rng)
            pt.append(secs)
            print(f"round {r + 1}: PyTorch epoch {secs:.1f} s (train loss {loss:.4f})", flush=True)
            e, wall, l2 = ssmkit_epoch(args.classify, args.data, args.threads, work)
            sk.append(e)
            skw.append(wall)
            print(f"round {r + 1}: ssmkit epoch {e:.1f} s ({wall:.1f} s wall; train loss {l2:.4f}); "
                  f"ratio {secs / e:.2f}x", flush=True)
    ratios = [a / b for a, b in zip(pt, sk)]
    print(f"\nmedians over {args.rounds} rounds: PyTorch {statistics.median(pt):.1f} s, ssmkit "
          f"{statistics.median(sk):.1f} s ({statistics.median(skw):.1f} s wall); ratio (median of the rounds' "
          f"ratios) {statistics.median(ratios):.2f}x; per round " + " ".join(f"{x:.2f}x" for x in ratios))


if __name__ == "__main__":
    main()
