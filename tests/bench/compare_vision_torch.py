#!/usr/bin/env python3
"""ssmkit's vision models against PyTorch on CPU, same machine, same run (the vision issue's speed targets).

Cases (the Vision_* benchmarks of tests/bench/bench_vision.cpp):
  GroupMamba-T eval forward, 224x224, batch 1 and 8; SiMBA-S (EinFFT, token labels) eval forward, batch 1;
  one training step of groupmamba-micro and simba-micro on a Fashion-MNIST-shaped batch (128 x 1 x 32 x 32,
  train mode with drop path 0.05, cross entropy with label smoothing 0.1, backward, AdamW lr 2e-3 wd 0.05);
  469 such steps make an epoch of the 60k training images.
Runs build*/bin/ssmkit-bench (JSON, medians of repetitions), then times the same cases in PyTorch in worker
subprocesses, one per thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set before torch loads, and
torch.set_num_threads), and prints one markdown table with the PyTorch / ssmkit ratios.

PyTorch models:
  GroupMamba: the official classes (Amshaker/GroupMamba, classification/models/{groupmamba,ss2d,csms6s}.py),
    imported from the checkout given with --groupmamba (a work tree, or a bare git directory whose HEAD is
    read with `git archive`; nothing fetched is kept in this repository). timm and einops, which those files
    import, are replaced by the few functions they use (DropPath, trunc_normal_, register_model, _cfg,
    rearrange, repeat), and the CUDA-only selective scan (SelectiveScanCore) by the fastest vectorised
    pure-PyTorch scan measured in this run.
  SiMBA: badripatro/simba has no licence and could not be fetched here, so the PyTorch SiMBA is written in
    this file from ../shared/specs/vision.md section 3 (PVT scaffold as in GroupMamba's official classes,
    Block_mamba, the mamba_simple.Mamba module of compare_torch.py with d_state 64, EinFFT, class block,
    token-label head); its parameter count is checked against the spec's 15,309,104 for SiMBA-S.
  Scans (compare_torch.py, issue 4): chunked recurrence and chunked log-space cumulative sums, several chunk
    lengths; each worker times them on the models' own scan shapes (forward for inference, forward +
    backward for training) and keeps the fastest.
Usage: tests/bench/compare_vision_torch.py --bench build-x/bin/ssmkit-bench --groupmamba PATH [--reps 5]
Benchmark-only: the product never needs Python.
"""
import argparse
import atexit
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_torch import timeit  # noqa: E402  (median of repeated wall-clock runs)
from openblas_core import with_openblas_core  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STEPS_PER_EPOCH = 469  # ceil(60000 / 128)

CASES = [  # (benchmark name, label, steps per reported unit)
    ("Vision_GroupMambaT_fwd_b1", "GroupMamba-T forward, batch 1, 224x224", 1),
    ("Vision_GroupMambaT_fwd_b8", "GroupMamba-T forward, batch 8, 224x224", 1),
    ("Vision_SimbaS_fwd_b1", "SiMBA-S forward, batch 1, 224x224", 1),
    ("Vision_GroupMambaMicro_train_step_b128", "groupmamba-micro train step, batch 128", 1),
    ("Vision_SimbaMicro_train_step_b128", "simba-micro train step, batch 128", 1),
    ("Vision_GroupMambaMicro_train_step_b128_shards2",
     "groupmamba-micro train step, batch 128, 2 data-parallel shards (ssm-classify train's default at 2 threads)", 1),
]
# ssmkit cases timed against another case's PyTorch run (the same official training step)
TORCH_CASE = {"Vision_GroupMambaMicro_train_step_b128_shards2": "Vision_GroupMambaMicro_train_step_b128"}


def torch_case(name):
    return TORCH_CASE.get(name, name)


# ----------------------------------------------------------------------------------------------------------
# Stand-ins for the two packages the official GroupMamba files import (only what they use)

def install_stubs(torch):
    nn = torch.nn

    class DropPath(nn.Module):  # timm.layers.DropPath: per-sample drop with 1/keep scaling, identity in eval
        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * mask / keep

    def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return nn.init.trunc_normal_(t, mean=mean, std=std, a=a, b=b)

    def parse(side):
        groups, cur = [], None
        for tok in side.replace("(", " ( ").replace(")", " ) ").split():
            if tok == "(":
                cur = []
            elif tok == ")":
                groups.append(cur)
                cur = None
            elif cur is not None:
                cur.append(tok)
            else:
                groups.append([tok])
        return groups

    def einops_apply(x, pattern, sizes, allow_new):
        left, right = (s.strip() for s in pattern.split("->"))
        lg, rg = parse(left), parse(right)
        sizes = dict(sizes)
        for g, n in zip(lg, x.shape):
            unknown = [a for a in g if a not in sizes]
            known = math.prod(sizes[a] for a in g if a in sizes)
            if len(unknown) == 1:
                sizes[unknown[0]] = n // known
        el = [a for g in lg for a in g]
        er = [a for g in rg for a in g]
        x = x.reshape([sizes[a] for a in el])
        x = x.permute([el.index(a) for a in er if a in el])
        if allow_new:
            for pos, a in enumerate(er):
                if a not in el:
                    x = x.unsqueeze(pos)
            x = x.expand([sizes[a] for a in er])
        return x.reshape([math.prod(sizes[a] for a in g) for g in rg])

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    vit = types.ModuleType("timm.models.vision_transformer")
    layers.DropPath, layers.trunc_normal_ = DropPath, trunc_normal_
    registry.register_model = lambda f: f
    vit._cfg = lambda **kw: dict(kw)
    timm.models, models.layers, models.registry, models.vision_transformer = models, layers, registry, vit
    einops = types.ModuleType("einops")
    einops.rearrange = lambda x, p, **s: einops_apply(x, p, s, False)
    einops.repeat = lambda x, p, **s: einops_apply(x, p, s, True)
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry, "timm.models.vision_transformer": vit, "einops": einops})
    return DropPath, trunc_normal_


def groupmamba_sources(path):
    """Directory holding groupmamba.py, ss2d.py and csms6s.py: from a work tree, or a bare git dir's HEAD."""
    for sub in ("classification/models", "models", "."):
        d = os.path.join(path, sub)
        if os.path.isfile(os.path.join(d, "groupmamba.py")):
            return d
    out = tempfile.mkdtemp(prefix="groupmamba_")
    atexit.register(shutil.rmtree, out, True)  # removed when this process ends
    tar = subprocess.run(["git", f"--git-dir={path}", "archive", "HEAD", "classification/models"],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=tar, check=True)
    return os.path.join(out, "classification", "models")


# ----------------------------------------------------------------------------------------------------------
# Worker: the PyTorch side at one thread count

def torch_models(args, log):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
    import compare_torch  # the mamba_simple.Mamba module and the vectorised scans of issue 4

    defs = compare_torch.torch_defs()
    DropPath, trunc_normal_ = install_stubs(torch)

    # --- scans: each candidate as f(u, delta, A, B, C, D, z, delta_bias, delta_softplus) on (B,D,L)/(B,N,L)
    cands = {}
    for T in (16, 64, 256):
        cands[f"chunked-logcumsum T={T}"] = (lambda T: lambda *a, **k: defs["scans_b"]["chunked-logcumsum"](
            *a, T=T, **k))(T)
    for T in (32, 128):
        cands[f"chunked-loop T={T}"] = (lambda T: lambda *a, **k: defs["scans_b"]["chunked-loop"](*a, T=T, **k))(T)

    def pick_scan(shape, train):
        Bn, Dn, N, L = shape
        g = torch.Generator().manual_seed(0)
        x = dict(u=torch.rand(Bn, Dn, L, generator=g) * 2 - 1, delta=torch.rand(Bn, Dn, L, generator=g) - 2,
                 A=-(torch.rand(Dn, N, generator=g) + 0.5), B=torch.rand(Bn, N, L, generator=g) - 0.5,
                 C=torch.rand(Bn, N, L, generator=g) - 0.5, D=torch.ones(Dn), delta_bias=torch.zeros(Dn))
        if train:
            for v in x.values():
                v.requires_grad_(True)
        best, best_t = None, float("inf")
        for name, f in cands.items():
            def run():
                y = f(**x, delta_softplus=True)
                if train:
                    y.sum().backward()
            with torch.set_grad_enabled(train):
                t = timeit(run, 3)
            if t < best_t:
                best, best_t = name, t
        log(f"scan for (B,D,N,L)={shape} {'fwd+bwd' if train else 'fwd'}: {best} ({best_t * 1e3:.1f} ms)")
        return cands[best], best

    # --- the official GroupMamba, with the scan replaced
    src = groupmamba_sources(args.groupmamba)
    sys.path.insert(0, src)
    import csms6s
    import ss2d
    import groupmamba as gm

    class TorchScan:  # stands in for the CUDA SelectiveScanCore: u (B,K*D,L), A (K*D,N), B/C (B,K,N,L)
        scan = None  # the scan in use (set per case)

        @staticmethod
        def mamba_scan(*a, **k):  # what the SiMBA Mamba modules call
            return TorchScan.scan(*a, **k)

        @classmethod
        def apply(cls, u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, *rest):
            assert B.shape[1] == 1, "GroupMamba's SS2D groups scan one direction each (K = 1)"
            return cls.scan(u, delta, A, B[:, 0], C[:, 0], D, delta_bias=delta_bias, delta_softplus=delta_softplus)

    for mod in (csms6s, ss2d):
        for name in ("SelectiveScanCore", "SelectiveScanOflex", "SelectiveScanMamba"):
            setattr(mod, name, TorchScan)

    def groupmamba_t():
        return gm.groupmamba_tiny()

    def groupmamba_micro():
        return gm.GroupMamba(in_chans=1, num_classes=10, stem_hidden_dim=16, embed_dims=[32, 64, 128, 160],
                             mlp_ratios=[4, 4, 4, 4], drop_path_rate=0.05,
                             norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6), depths=[1, 1, 2, 1],
                             distillation=False)

    # --- SiMBA from the spec (../shared/specs/vision.md section 3)
    class EinFFT(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.nb, self.bs, self.lam = 4, dim // 4, 0.01
            self.complex_weight_1 = nn.Parameter(torch.randn(2, self.nb, self.bs, self.bs) * 0.02)
            self.complex_weight_2 = nn.Parameter(torch.randn(2, self.nb, self.bs, self.bs) * 0.02)
            self.complex_bias_1 = nn.Parameter(torch.randn(2, self.nb, self.bs) * 0.02)
            self.complex_bias_2 = nn.Parameter(torch.randn(2, self.nb, self.bs) * 0.02)

        def forward(self, x, H=None, W=None):  # (B,N,C) -> (B,N,C)
            Bn, N, C = x.shape
            f = torch.fft.fft2(x.view(Bn, N, self.nb, self.bs).float(), dim=(1, 2), norm="ortho")
            w1, w2, b1, b2 = self.complex_weight_1, self.complex_weight_2, self.complex_bias_1, self.complex_bias_2

            def mm(v, w):  # per block k: (B,N,nb,bs) x (nb,bs,bs)
                return torch.einsum("bnkd,kde->bnke", v, w)

            r1 = F.relu(mm(f.real, w1[0]) - mm(f.imag, w1[1]) + b1[0])
            i1 = F.relu(mm(f.real, w1[1]) + mm(f.imag, w1[0]) + b1[1])
            r2 = F.softshrink(mm(r1, w2[0]) - mm(i1, w2[1]) + b2[0], self.lam)
            i2 = F.softshrink(mm(r1, w2[1]) + mm(i1, w2[0]) + b2[1], self.lam)
            y = torch.fft.ifft2(torch.complex(r2, i2), dim=(1, 2), norm="ortho").real
            return y.reshape(Bn, N, C).type_as(x)

    class MambaLayer(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.mamba = defs["Mamba"](dim, d_state=64, d_conv=4, expand=2, scan=TorchScan.mamba_scan)

        def forward(self, x):
            return self.mamba(self.norm(x))

    def pvt_init(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                                                     // m.groups)))
            if m.bias is not None:
                m.bias.data.zero_()

    class SimbaBlock(nn.Module):
        def __init__(self, dim, dp, eps):
            super().__init__()
            self.norm2 = nn.LayerNorm(dim, eps=eps)
            self.attn = MambaLayer(dim)
            self.mlp = EinFFT(dim)
            self.drop_path = DropPath(dp) if dp > 0 else nn.Identity()

        def forward(self, x):
            x = x + self.drop_path(self.attn(x))
            return x + self.drop_path(self.mlp(self.norm2(x)))

    class SimbaClassBlock(nn.Module):
        def __init__(self, dim, eps):
            super().__init__()
            self.norm2 = nn.LayerNorm(dim, eps=eps)
            self.attn = MambaLayer(dim)
            self.mlp = EinFFT(dim)

        def forward(self, c):
            c = c + self.attn(c)
            return c + self.mlp(self.norm2(c))

    class SiMBA(nn.Module):
        def __init__(self, in_chans, num_classes, stem, dims, depths, dpr_max, token_label, eps=1e-6):
            super().__init__()
            dpr = [v.item() for v in torch.linspace(0, dpr_max, sum(depths))]
            cur = 0
            for i in range(4):
                pe = gm.Stem(in_chans, stem, dims[0]) if i == 0 else gm.DownSamples(dims[i - 1], dims[i])
                setattr(self, f"patch_embed{i + 1}", pe)
                setattr(self, f"block{i + 1}", nn.ModuleList(
                    [SimbaBlock(dims[i], dpr[cur + j], eps) for j in range(depths[i])]))
                setattr(self, f"norm{i + 1}", nn.LayerNorm(dims[i], eps=eps))
                cur += depths[i]
            self.post_network = nn.ModuleList([SimbaClassBlock(dims[3], eps)])
            self.head = nn.Linear(dims[3], num_classes)
            self.token_label = token_label
            if token_label:
                self.aux_head = nn.Linear(dims[3], num_classes)
            self.apply(pvt_init)

        def forward(self, x):
            Bn = x.shape[0]
            for i in range(4):
                x, H, W = getattr(self, f"patch_embed{i + 1}")(x)
                for blk in getattr(self, f"block{i + 1}"):
                    x = blk(x)
                if i < 3:
                    x = getattr(self, f"norm{i + 1}")(x).reshape(Bn, H, W, -1).permute(0, 3, 1, 2).contiguous()
            cls = self.post_network[0](x.mean(dim=1, keepdim=True))
            if not self.token_label:
                return self.head(self.norm4(cls[:, 0]))
            f = self.norm4(torch.cat([cls, x], dim=1))
            return self.head(f[:, 0]) + 0.5 * self.aux_head(f[:, 1:]).max(dim=1)[0]

    def simba_s():
        m = SiMBA(3, 1000, 32, [64, 128, 320, 448], [3, 4, 6, 3], 0.0, True)
        n = sum(p.numel() for p in m.parameters())
        assert n == 15309104, f"SiMBA-S from the spec has {n} parameters, the spec says 15,309,104"
        return m

    def simba_micro():
        return SiMBA(1, 10, 16, [32, 64, 128, 160], [1, 1, 2, 1], 0.05, False)

    return dict(torch=torch, F=F, pick_scan=pick_scan, TorchScan=TorchScan, groupmamba_t=groupmamba_t,
                groupmamba_micro=groupmamba_micro, simba_s=simba_s, simba_micro=simba_micro)


def worker(args):
    nth = args.worker

    def log(msg):
        print(f"[torch {nth}t] {msg}", file=sys.stderr, flush=True)

    d = torch_models(args, log)
    torch, F, TorchScan = d["torch"], d["F"], d["TorchScan"]
    torch.set_num_threads(nth)
    torch.manual_seed(0)
    res = dict(threads=nth, torch_version=torch.__version__, times={}, notes={})
    T = res["times"]
    want = {torch_case(c) for c in (args.cases.split(",") if args.cases else [c[0] for c in CASES])}

    def fwd_case(name, build, B, C, scan_shape):
        if name not in want:
            return
        TorchScan.scan, note = d["pick_scan"](scan_shape, False)
        model = build().eval()
        x = torch.randn(B, C, 224, 224)
        with torch.no_grad():
            T[name] = timeit(lambda: model(x), args.reps)
        res["notes"][name] = note
        log(f"{name}: {T[name] * 1e3:.0f} ms")

    def train_case(name, build, scan_shape):
        if name not in want:
            return
        TorchScan.scan, note = d["pick_scan"](scan_shape, True)
        model = build().train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
        x = torch.rand(128, 1, 32, 32) * 3 - 1
        y = torch.arange(128) * 7 % 10

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y, label_smoothing=0.1).backward()
            opt.step()

        T[name] = timeit(step, args.reps)
        res["notes"][name] = note
        log(f"{name}: {T[name] * 1e3:.0f} ms")

    # The scan shapes the models run: GroupMamba stage 1 groups (D = C/4, N = 1), SiMBA stage 1 (d_inner 128)
    fwd_case("Vision_GroupMambaT_fwd_b1", d["groupmamba_t"], 1, 3, (1, 16, 1, 3136))
    fwd_case("Vision_GroupMambaT_fwd_b8", d["groupmamba_t"], 8, 3, (8, 16, 1, 3136))
    fwd_case("Vision_SimbaS_fwd_b1", d["simba_s"], 1, 3, (1, 128, 64, 3136))
    train_case("Vision_GroupMambaMicro_train_step_b128", d["groupmamba_micro"], (128, 8, 1, 64))
    train_case("Vision_SimbaMicro_train_step_b128", d["simba_micro"], (128, 64, 64, 64))
    print(json.dumps(res))


# ----------------------------------------------------------------------------------------------------------
# Main: the ssmkit benchmarks, the workers, the table

def run_ssmkit(args):
    filt = "^(" + "|".join(c + "/" for c in args.cases.split(",")) + ")" if args.cases else "^Vision_"
    cmd = [args.bench, f"--benchmark_filter={filt}", f"--benchmark_repetitions={args.reps}",
           "--benchmark_format=json", "--benchmark_report_aggregates_only=true"]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        m = re.match(r"(Vision_\w+)/(\d+)/real_time_median$", b["name"])
        if m:
            unit = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
            times[(m.group(1), int(m.group(2)))] = b["real_time"] * unit
    return times


def run_worker(args, nth):
    env = dict(os.environ, OMP_NUM_THREADS=str(nth), OPENBLAS_NUM_THREADS=str(nth), MKL_NUM_THREADS=str(nth))
    env = with_openblas_core(env)  # torch's OpenBLAS on the CPU's own kernels, as ssmkit's core does
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(nth), "--reps", str(args.reps),
           "--groupmamba", args.groupmamba] + (["--cases", args.cases] if args.cases else [])
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build-bench", "bin", "ssmkit-bench"))
    ap.add_argument("--groupmamba", required=True, help="Amshaker/GroupMamba checkout (work tree or bare git dir)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--cases", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison (ssmkit, then PyTorch) this "
                    "many times; times are medians over the rounds and each ratio is the median of the rounds' "
                    "own ratios")
    ap.add_argument("--save", default="", help="write all numbers to this JSON file")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    threads = [int(t) for t in args.threads.split(",")]
    rounds = []
    for r in range(max(1, args.rounds)):
        if args.rounds > 1:
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        rounds.append((run_ssmkit(args), {nth: run_worker(args, nth) for nth in threads}))
    # Times: medians over the rounds; a ratio: the median of the rounds' own PyTorch / ssmkit ratios.
    med = statistics.median
    ours = {k: med([o[k] for o, _ in rounds if k in o]) for k in rounds[0][0]}
    theirs = {n: dict(rounds[0][1][n], times={name: med([t[n]["times"][name] for _, t in rounds
                                                           if name in t[n]["times"]])
                                              for name in rounds[0][1][n]["times"]}) for n in threads}

    def ratios(name, n):
        tn = torch_case(name)
        return [t[n]["times"][tn] / o[(name, n)] for o, t in rounds
                if (name, n) in o and tn in t[n]["times"] and o[(name, n)]]

    print(f"\nssmkit vs PyTorch {theirs[threads[0]]['torch_version']} (CPU), medians of {args.reps} runs, "
          f"same machine, same run" + (f", {len(rounds)} rounds (times: medians over the rounds; ratios: the "
                                       "median of the rounds' ratios)" if len(rounds) > 1 else "") + "\n")
    head = "| case |" + "".join(f" ssmkit {n}t (ms) | PyTorch {n}t (ms) | ratio {n}t |" for n in threads)
    print(head)
    print("|" + " --- |" * (1 + 3 * len(threads)))
    for name, label, _ in CASES:
        if args.cases and name not in args.cases.split(","):
            continue
        row = f"| {label} |"
        for n in threads:
            a, b = ours.get((name, n)), theirs[n]["times"].get(torch_case(name))
            rr = ratios(name, n)
            row += f" {a * 1e3:.1f} |" if a else " - |"
            row += f" {b * 1e3:.1f} |" if b else " - |"
            row += f" {med(rr):.2f}x |" if rr else " - |"
        print(row)
    if len(rounds) > 1:
        print("\nPer round (PyTorch / ssmkit): " + "; ".join(
            f"{name} {n}t " + " ".join(f"{x:.2f}x" for x in ratios(name, n)) for name, _, _ in CASES
            for n in threads if ratios(name, n)))
    for name, label, _ in CASES:
        if "train_step" in name and (name, threads[0]) in ours and torch_case(name) in theirs[threads[0]]["times"]:
            a, b = ours[(name, threads[0])], theirs[threads[0]]["times"][torch_case(name)]
            print(f"\n{label}: an epoch of {STEPS_PER_EPOCH} steps at {threads[0]} threads = "
                  f"{a * STEPS_PER_EPOCH:.1f} s (ssmkit) vs {b * STEPS_PER_EPOCH:.1f} s (PyTorch)", end="")
    print("\n\nPyTorch scans chosen:", json.dumps({n: theirs[n]["notes"] for n in threads}))
    if args.save:
        with open(args.save, "w") as f:
            json.dump(dict(ssmkit={f"{k[0]}/{k[1]}": v for k, v in ours.items()},
                           torch={str(n): theirs[n] for n in threads},
                           rounds=[dict(ssmkit={f"{k[0]}/{k[1]}": v for k, v in o.items()},
                                        torch={str(n): t[n] for n in threads}) for o, t in rounds]), f, indent=1)


if __name__ == "__main__":
    main()
