#!/usr/bin/env python3
"""ssmkit against PyTorch on the workloads of the core performance issue, same machine, same run.

Runs build*/bin/ssmkit-bench (Google Benchmark, JSON, medians of repetitions), then times the same workloads
in PyTorch in worker subprocesses (one per thread count, with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set
before torch loads, since Debian's torch does not pass its thread count to the BLAS), and prints one
markdown table: times, PyTorch/ssmkit ratios, and ssmkit's distance from its limits (exp-bound, GEMM rate,
FFTW). Benchmark-only: the product never needs Python.

PyTorch variants, written here from the published algorithms (not copied):
  (a) the official reference code: selective_scan_ref (state-spaces/mamba ops/selective_scan_interface.py:
      discretise with exp(einsum), loop over L, einsum for y) for W1/W2, the official Mamba module
      (modules/mamba_simple.py slow path) with that scan for W3, the official S4D (state-spaces/s4
      models/s4/s4d.py: Vandermonde kernel, torch.fft conv, D skip, GELU, Conv1d 1x1 + GLU) for W4.
  (b) the fastest vectorised pure-PyTorch scan found (two are timed on W1 and W2 every run, the faster
      is kept: a chunked recurrence on contiguous (L,B,D,N) slices, and chunked cumulative sums in log
      space with the state carried across chunks), and the Mamba module with that scan for W3/W5.
Usage: tests/bench/run_compare.sh (installs what is missing, builds, runs this).
"""
import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openblas_core import with_openblas_core  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# ----------------------------------------------------------------------------------------------------------
# Workload sizes (the same as tests/bench/bench_util.h)
W1 = dict(B=1, D=1536, N=16, L=1024)
W2 = dict(B=8, D=256, N=16, L=512)
W3 = dict(B=1, L=3136, M=384, N=16, K=4)
W4 = dict(B=16, H=256, N=64, L=4096)
W5 = dict(B=8, L=1024, M=256, N=16, K=4)


# ----------------------------------------------------------------------------------------------------------
# PyTorch side (imported only in the workers)

def torch_defs():
    """Defines the PyTorch models and scans; returns them in a namespace dict."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    # (a) selective_scan_ref, real A, B/C of shape (B,N,L). u, delta, z (B,D,L); A (D,N); D, delta_bias (D).
    def scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
        dtype_in = u.dtype
        u, delta = u.float(), delta.float()
        if delta_bias is not None:
            delta = delta + delta_bias[..., None].float()
        if delta_softplus:
            delta = F.softplus(delta)
        n_batch, n_dim, n_state = u.shape[0], A.shape[0], A.shape[1]
        B, C = B.float(), C.float()
        state = A.new_zeros((n_batch, n_dim, n_state))
        dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
        dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
        outs = []
        for i in range(u.shape[2]):
            state = dA[:, :, i] * state + dBu[:, :, i]
            outs.append(torch.einsum("bdn,bn->bd", state, C[:, :, i]))
        y = torch.stack(outs, dim=2)
        if D is not None:
            y = y + u * D[:, None]
        if z is not None:
            y = y * F.silu(z)
        return y.to(dtype_in)

    # (b) shared prologue/epilogue: discretised delta, delta*u, B, C as (L,B,...) views split into chunks of
    # T steps, so that every time step of a chunk's (T,B,D,N) tensors is one contiguous (B,D,N) slice.
    def _chunks(u, delta, B, C, delta_bias, delta_softplus, T):
        if delta_bias is not None:
            delta = delta + delta_bias[..., None]
        if delta_softplus:
            delta = F.softplus(delta)
        views = (delta.permute(2, 0, 1), (delta * u).permute(2, 0, 1), B.permute(2, 0, 1).unsqueeze(2),
                 C.permute(2, 0, 1))
        # split, not slicing: under autograd every slice's backward would zero-fill a full (L,...) gradient
        return zip(*(torch.split(v, T, dim=0) for v in views))

    def _epilogue(ys, u, D, z):
        y = torch.cat(ys, dim=1).transpose(1, 2)  # (B,L,D) -> (B,D,L)
        if D is not None:
            y = y + u * D[:, None]
        if z is not None:
            y = y * F.silu(z)
        return y

    # (b1) chunks of T steps: exp(delta A) and delta B u for the chunk (T,B,D,N), then the recurrence,
    # one fused addcmul per step (in place without autograd).
    def scan_chunked_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, T=32):
        h = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]))
        grad = torch.is_grad_enabled()
        ys = []
        for dt_c, du_c, B_c, C_c in _chunks(u, delta, B, C, delta_bias, delta_softplus, T):
            a = torch.exp(dt_c.unsqueeze(-1) * A)
            b = du_c.unsqueeze(-1) * B_c
            if grad:  # unbind: one backward node for all steps (indexing would zero-fill a chunk per step)
                hs = []
                for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
                    h = torch.addcmul(b_t, a_t, h)
                    hs.append(h)
                H = torch.stack(hs)
            else:
                H = b
                H[0].addcmul_(a[0], h)
                for t in range(1, H.shape[0]):
                    H[t].addcmul_(a[t], H[t - 1])
                h = H[-1]
            ys.append(torch.einsum("tbdn,tbn->btd", H, C_c))
        return _epilogue(ys, u, D, z)

    # (b2) chunks of T steps in log space: S = cumsum(delta A) within the chunk, h_t = e^{S_t - m} *
    # cumsum(e^{m - S_s} dBu_s) + e^{S_t} h0 with m = S_T / 2 (keeps both exps in float range while
    # |S_T| < 160; longer decays split the chunk).
    def _chunk_logspace(dAlog, dBu, h0):
        S = torch.cumsum(dAlog, dim=0)
        T = S.shape[0]
        if T > 1 and S[-1].min().item() < -160.0:
            h1 = _chunk_logspace(dAlog[: T // 2], dBu[: T // 2], h0)
            h2 = _chunk_logspace(dAlog[T // 2:], dBu[T // 2:], h1[-1])
            return torch.cat([h1, h2])
        m = 0.5 * S[-1]
        H = torch.exp(S - m) * torch.cumsum(torch.exp(m - S) * dBu, dim=0)
        return torch.addcmul(H, torch.exp(S), h0)

    def scan_chunked_logspace(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, T=16):
        h = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]))
        ys = []
        for dt_c, du_c, B_c, C_c in _chunks(u, delta, B, C, delta_bias, delta_softplus, T):
            H = _chunk_logspace(dt_c.unsqueeze(-1) * A, du_c.unsqueeze(-1) * B_c, h)
            h = H[-1]
            ys.append(torch.einsum("tbdn,tbn->btd", H, C_c))
        return _epilogue(ys, u, D, z)

    scans_b = {"chunked-loop": scan_chunked_loop, "chunked-logcumsum": scan_chunked_logspace}

    # The official Mamba block (mamba_simple.Mamba, the path without the CUDA kernels): same structure,
    # parameter names and initialisation; `scan` is the selective scan it calls.
    class Mamba(nn.Module):
        def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_min=0.001, dt_max=0.1, dt_scale=1.0,
                     dt_init_floor=1e-4, conv_bias=True, bias=False, scan=scan_ref):
            super().__init__()
            self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
            self.d_inner = int(expand * d_model)
            self.dt_rank = math.ceil(d_model / 16)
            self.scan = scan
            self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
            self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                    padding=d_conv - 1, bias=conv_bias)
            self.act = nn.SiLU()
            self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
            self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
            # dt_proj: weight U(+-dt_rank^-0.5 * dt_scale); bias = softplus^-1(dt), dt log-uniform in
            # [dt_min, dt_max] floored at dt_init_floor.
            std = self.dt_rank ** -0.5 * dt_scale
            nn.init.uniform_(self.dt_proj.weight, -std, std)
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            dt = dt.clamp(min=dt_init_floor)
            with torch.no_grad():
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            # S4D-Real A = -(1..N) per channel, stored as A_log; D = 1.
            A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
            self.A_log = nn.Parameter(torch.log(A))
            self.D = nn.Parameter(torch.ones(self.d_inner))
            self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

        def forward(self, hidden):  # (B,L,M) -> (B,L,M)
            n_batch, L, _ = hidden.shape
            # in_proj as W @ hidden^T, giving (2E, B*L) -> (B,2E,L)
            xz = (self.in_proj.weight @ hidden.reshape(n_batch * L, -1).t()).view(-1, n_batch, L).permute(1, 0, 2)
            if self.in_proj.bias is not None:
                xz = xz + self.in_proj.bias[:, None]
            A = -torch.exp(self.A_log.float())
            x, z = xz.chunk(2, dim=1)
            x = self.act(self.conv1d(x)[..., :L])
            x_dbl = self.x_proj(x.permute(0, 2, 1).reshape(n_batch * L, -1))
            dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
            dt = (self.dt_proj.weight @ dt.t()).view(-1, n_batch, L).permute(1, 0, 2)
            B = B.reshape(n_batch, L, -1).permute(0, 2, 1).contiguous()
            C = C.reshape(n_batch, L, -1).permute(0, 2, 1).contiguous()
            y = self.scan(x, dt, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                          delta_softplus=True)
            return self.out_proj(y.permute(0, 2, 1))

    # The official S4D layer (models/s4/s4d.py), dropout 0 (identity), transposed (B,H,L).
    class S4DKernel(nn.Module):
        def __init__(self, d_model, N=64, dt_min=0.001, dt_max=0.1):
            super().__init__()
            H = d_model
            log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))
            self.log_dt = nn.Parameter(log_dt)
            self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
            self.A_imag = nn.Parameter(math.pi * torch.arange(N // 2).float().repeat(H, 1))

        def forward(self, L):  # -> K (H,L)
            dt = torch.exp(self.log_dt)
            C = torch.view_as_complex(self.C)
            A = -torch.exp(self.log_A_real) + 1j * self.A_imag
            dtA = A * dt.unsqueeze(-1)
            K = dtA.unsqueeze(-1) * torch.arange(L)  # Vandermonde exponents (H, N/2, L)
            C = C * (torch.exp(dtA) - 1.0) / A
            return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(K)).real

    class S4D(nn.Module):
        def __init__(self, d_model, d_state=64):
            super().__init__()
            self.h = d_model
            self.D = nn.Parameter(torch.randn(self.h))
            self.kernel = S4DKernel(self.h, N=d_state)
            self.activation = nn.GELU()
            self.output_linear = nn.Sequential(nn.Conv1d(self.h, 2 * self.h, kernel_size=1), nn.GLU(dim=-2))

        def forward(self, u):  # (B,H,L) -> (B,H,L)
            L = u.size(-1)
            k = self.kernel(L=L)
            k_f = torch.fft.rfft(k, n=2 * L)
            u_f = torch.fft.rfft(u, n=2 * L)
            y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
            y = y + u * self.D.unsqueeze(-1)
            return self.output_linear(self.activation(y))

    return dict(torch=torch, scan_ref=scan_ref, scans_b=scans_b, Mamba=Mamba, S4D=S4D)


def scan_inputs(torch, s, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)

    def U(shape, lo, hi):
        return (torch.rand(shape, generator=g) * (hi - lo) + lo).requires_grad_(grad)

    B, D, N, L = s["B"], s["D"], s["N"], s["L"]
    return dict(u=U((B, D, L), -1, 1), delta=U((B, D, L), -3, 0), A=U((D, N), -4, -0.3), B=U((B, N, L), -1, 1),
                C=U((B, N, L), -1, 1), D=U((D,), 0.5, 1.5), z=U((B, D, L), -2, 2), delta_bias=U((D,), -4, -1))


def timeit(fn, reps, warmup=1):
    """Median wall seconds of `reps` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def blas_info(torch):
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    a = torch.randn(256, 256)
    (a @ a).sum().item()
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if re.search(r"blas|lapack|mkl", os.path.basename(path)):
                libs.add(os.path.realpath(path))
    return dict(blas_info=m.group(1) if m else "?", loaded=sorted(libs), torch_version=torch.__version__)


def worker(args):
    """Times the PyTorch variants at args.worker threads; prints one JSON object on stdout."""
    d = torch_defs()
    torch, scan_ref, scans_b = d["torch"], d["scan_ref"], d["scans_b"]
    nth = args.worker
    torch.set_num_threads(nth)
    torch.manual_seed(0)
    reps = args.torch_reps
    res = dict(threads=nth, blas=blas_info(torch), times={}, notes={}, checks={})
    T = res["times"]

    def log(msg):
        print(f"[torch {nth}t] {msg}", file=sys.stderr, flush=True)

    full = nth == 2 or args.all_threads  # the (a) variants run at 2 threads only (unless asked)

    # W1: forward, no autograd.
    x = scan_inputs(torch, W1)
    with torch.no_grad():
        if full:
            T["W1_a"] = timeit(lambda: scan_ref(**x, delta_softplus=True), reps)
            log(f"W1 (a) {T['W1_a'] * 1e3:.0f} ms")
            if nth == 2:
                ref = scan_ref(**x, delta_softplus=True)
                for name, f in scans_b.items():
                    o = f(**x, delta_softplus=True)
                    res["checks"][f"W1 {name}"] = ((o - ref).abs().max() / ref.abs().max()).item()
        # the 2-thread worker times every (b) variant and keeps the fastest; the 1-thread worker reuses it
        for name in ([args.scan_w1] if args.scan_w1 else scans_b):
            f = scans_b[name]
            T[f"W1_b_{name}"] = timeit(lambda: f(**x, delta_softplus=True), reps)
            log(f"W1 (b) {name} {T[f'W1_b_{name}'] * 1e3:.0f} ms")
        best = min((k for k in T if k.startswith("W1_b_")), key=T.get)[5:]
        T["W1_b"], res["notes"]["W1_b"] = T[f"W1_b_{best}"], best
    scan_fwd = scans_b[best]
    del x

    # W2: forward + backward with all gradients (dy seeded), through autograd.
    x = scan_inputs(torch, W2, grad=True)
    dy = torch.randn(W2["B"], W2["D"], W2["L"])

    def fwd_bwd(f, inp, seed):
        for v in inp.values():
            v.grad = None
        f(**inp, delta_softplus=True).backward(seed)

    for name in ([args.scan_w2] if args.scan_w2 else scans_b):
        f = scans_b[name]
        T[f"W2_b_{name}"] = timeit(lambda: fwd_bwd(f, x, dy), reps)
        log(f"W2 (b) {name} {T[f'W2_b_{name}'] * 1e3:.0f} ms")
    best = min((k for k in T if k.startswith("W2_b_")), key=T.get)[5:]
    T["W2_b"], res["notes"]["W2_b"] = T[f"W2_b_{best}"], best
    scan_train = scans_b[best]
    if full and args.w2_ref:
        T["W2_a"] = timeit(lambda: fwd_bwd(scan_ref, x, dy), 1, warmup=0)
        log(f"W2 (a) {T['W2_a'] * 1e3:.0f} ms (one run)")
    if nth == 2:  # gradients of (b) against (a) on a small case (the full-size (a) backward takes minutes)
        small = dict(B=2, D=64, N=16, L=256)
        xs = scan_inputs(torch, small, grad=True, seed=1)
        dys = torch.randn(small["B"], small["D"], small["L"])
        fwd_bwd(scan_ref, xs, dys)
        ref = {k: v.grad.clone() for k, v in xs.items()}
        for name, f in scans_b.items():
            fwd_bwd(f, xs, dys)
            res["checks"][f"W2 grads {name}"] = max(
                ((xs[k].grad - ref[k]).abs().max() / ref[k].abs().max()).item() for k in ref)
    del x

    # W3: Mamba block forward (inference).
    Mamba = d["Mamba"]
    hidden = torch.randn(W3["B"], W3["L"], W3["M"])
    with torch.no_grad():
        m = Mamba(W3["M"], d_state=W3["N"], d_conv=W3["K"], scan=scan_fwd)
        T["W3_b"] = timeit(lambda: m(hidden), reps)
        res["notes"]["W3_b"] = res["notes"]["W1_b"]
        log(f"W3 (b) {T['W3_b'] * 1e3:.0f} ms")
        if full:
            m.scan = scan_ref
            T["W3_a"] = timeit(lambda: m(hidden), max(1, reps - 1))
            log(f"W3 (a) {T['W3_a'] * 1e3:.0f} ms")
    del m

    # W4: S4D layer forward (eval, no autograd).
    s4d = d["S4D"](W4["H"], d_state=W4["N"]).eval()
    u = torch.randn(W4["B"], W4["H"], W4["L"])
    with torch.no_grad():
        T["W4_a"] = timeit(lambda: s4d(u), reps)
    log(f"W4 (a) {T['W4_a'] * 1e3:.0f} ms")
    del s4d, u

    # W5: Mamba block training step: forward, mean(out^2), backward, AdamW step.
    m = Mamba(W5["M"], d_state=W5["N"], d_conv=W5["K"], scan=scan_train)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    hidden = torch.randn(W5["B"], W5["L"], W5["M"])

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = m(hidden).pow(2).mean()
        loss.backward()
        opt.step()

    T["W5_b"] = timeit(train_step, max(1, reps - 1))
    res["notes"]["W5_b"] = res["notes"]["W2_b"]
    log(f"W5 (b) {T['W5_b'] * 1e3:.0f} ms")
    print(json.dumps(res))


# ----------------------------------------------------------------------------------------------------------
# Driver

def run_ssmkit(bench, reps, min_time, bench_filter):
    cmd = [bench, "--benchmark_format=json", f"--benchmark_repetitions={reps}",
           "--benchmark_report_aggregates_only=true", "--benchmark_enable_random_interleaving=true",
           f"--benchmark_min_time={min_time}",
           f"--benchmark_filter={bench_filter}"]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"compare_torch.py: {bench} gave no JSON (exit code {proc.returncode})")
    times, counters, labels = {}, {}, {}
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].replace("/real_time", "")  # e.g. "W1/2"
        times[name] = b["real_time"] * scale[b["time_unit"]]  # ms
        counters[name] = {k: v for k, v in b.items() if k in ("Gexp/s", "GFLOP/s", "transforms/s", "loss")}
        if b.get("label"):
            labels[name] = b["label"]
    return dict(context=data.get("context", {}), times=times, counters=counters, labels=labels)


def run_worker(nth, args, scans=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(nth), OPENBLAS_NUM_THREADS=str(nth), MKL_NUM_THREADS=str(nth))
    env = with_openblas_core(env)  # torch's OpenBLAS on the CPU's own kernels, as ssmkit's core does
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(nth), "--torch-reps", str(args.torch_reps)]
    if scans:
        cmd += ["--scan-w1", scans["W1_b"], "--scan-w2", scans["W2_b"]]
    if args.w2_ref:
        cmd.append("--w2-ref")
    if args.all_threads:
        cmd.append("--all-threads")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def fmt_x(v):
    return "—" if v is None else f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def load_avg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default=None, help="path to ssmkit-bench (default: build-bench/bin, build/bin)")
    p.add_argument("--reps", type=int, default=3, help="ssmkit-bench repetitions (median reported)")
    p.add_argument("--min-time", default="0.2", help="ssmkit-bench --benchmark_min_time per repetition")
    p.add_argument("--torch-reps", type=int, default=3, help="timed PyTorch runs after one warm-up (median)")
    p.add_argument("--w2-ref", action="store_true", help="also time (a) for W2 once (autograd of the 512-step "
                   "loop: minutes)")
    p.add_argument("--all-threads", action="store_true", help="time the (a) variants at 1 thread too")
    p.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison (ssmkit, then PyTorch) this "
                   "many times; times are medians over the rounds and each ratio is the median of the rounds' "
                   "ratios, so a slow or fast phase of a shared machine is paired with itself")
    p.add_argument("--save", default=None, help="write all raw results to this JSON file")
    p.add_argument("--reuse", default=None, help="print the table from a file written by --save (no timing)")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--scan-w1", default=None, help=argparse.SUPPRESS)  # (b) variant for W1/W3 (1-thread worker)
    p.add_argument("--scan-w2", default=None, help=argparse.SUPPRESS)  # (b) variant for W2/W5
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    t_start = time.time()
    load0 = load_avg()
    if args.reuse:
        saved = json.load(open(args.reuse))
        rounds = saved["rounds"] if "rounds" in saved else [dict(ssmkit=saved["ssmkit"], torch=saved["torch"])]
        load0, load1 = saved.get("load", [["?"], ["?"]])
    else:
        bench = args.bench
        if bench is None:
            for cand in ("build-bench/bin/ssmkit-bench", "build/bin/ssmkit-bench"):
                if os.access(os.path.join(ROOT, cand), os.X_OK):
                    bench = os.path.join(ROOT, cand)
                    break
        if bench is None or not os.access(bench, os.X_OK):
            sys.exit("compare_torch.py: ssmkit-bench not found (build it with -DSSMKIT_BUILD_BENCH=ON, or pass --bench)")
        rounds = []
        for r in range(max(1, args.rounds)):
            if args.rounds > 1:
                print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            sk_r = run_ssmkit(bench, args.reps, args.min_time, "^(W[1-5]|ExpBound_W|GEMM_|FFT_W4)")
            tr_r = {2: run_worker(2, args)}
            tr_r[1] = run_worker(1, args, scans=tr_r[2]["notes"])
            rounds.append(dict(ssmkit=sk_r, torch={str(k): v for k, v in tr_r.items()}))
        load1 = load_avg()
        if args.save:
            with open(args.save, "w") as f:
                json.dump(dict(rounds=rounds, load=[load0, load1]), f, indent=1)

    # Times: the median over the rounds of each figure (one round: its own figures). Ratios: the median over
    # the rounds of each round's ratio (below).
    def med_dict(ds):
        keys = list(dict.fromkeys(k for d in ds for k in d))  # first-seen order
        return {k: statistics.median([d[k] for d in ds if d.get(k) is not None]) for k in keys
                if any(d.get(k) is not None for d in ds)}

    sk = dict(rounds[0]["ssmkit"])
    sk["times"] = med_dict([r["ssmkit"]["times"] for r in rounds])
    sk["counters"] = {name: med_dict([r["ssmkit"]["counters"].get(name, {}) for r in rounds])
                      for name in rounds[0]["ssmkit"]["counters"]}
    tr = {}
    for k in ("2", "1"):
        tr[int(k)] = dict(rounds[0]["torch"][k])
        tr[int(k)]["times"] = med_dict([r["torch"][k]["times"] for r in rounds])

    S = sk["times"]
    t2, t1 = tr[2]["times"], tr[1]["times"]

    def s(name):
        return S.get(name)

    def sum_or_none(*vals):
        return None if any(v is None for v in vals) else sum(vals)

    def at_gemm_peak(flop, nth):  # ms for flop floating-point operations at the measured GEMM_peak rate
        rate = sk["counters"].get(f"GEMM_peak/{nth}", {}).get("GFLOP/s")
        return None if not rate else flop / (rate * 1e9) * 1e3

    # W4's work: its 1x1 conv (16*4096 x 256 -> 512: 17.2 GFLOP) and the convolution. ssmkit's inference path
    # runs the convolution as S4D's recurrence: per complex mode (N/2 = 32), step and channel a complex
    # multiply-add of the state and Re(c x) into the output, 11 flops: 5.9 GFLOP in all.
    W4_GEMM_FLOP = 2.0 * 16 * 4096 * 256 * 512
    W4_REC_FLOP = 11.0 * 16 * 256 * 4096 * 32

    def limit(w, nth):  # ssmkit's limit for workload w at nth threads, in ms
        if w == "W4":  # the GEMM and the recurrence at the machine's measured FMA rate (GEMM_peak)
            return at_gemm_peak(W4_GEMM_FLOP + W4_REC_FLOP, nth), "17.2 + 5.9 GFLOP at GEMM_peak"
        parts = {"W1": ["ExpBound_W1"], "W2": ["ExpBound_W2"], "W3": ["GEMM_W3", "ExpBound_W3"],
                 "W5": ["GEMM_W5", "ExpBound_W5"]}[w]
        return sum_or_none(*(s(f"{k}/{nth}") for k in parts)), " + ".join(parts)

    desc = {
        "W1": "W1 scan fwd (B1 D1536 N16 L1024)",
        "W2": "W2 scan fwd+bwd (B8 D256 N16 L512)",
        "W3": "W3 Mamba fwd (M384 L3136 B1)",
        "W4": "W4 S4D fwd (B16 H256 N64 L4096)",
        "W5": "W5 Mamba train step (M256 L1024 B8)",
    }
    a_note = {
        "W1": "selective_scan_ref",
        "W2": "selective_scan_ref" if "W2_a" in t2 else "skipped: autograd of the 512-step loop takes minutes (--w2-ref)",
        "W3": "Mamba + selective_scan_ref",
        "W4": "official S4D (torch.fft)",
        "W5": "not timed: Mamba + ref-loop autograd over 1024 steps takes minutes",
    }
    notes2 = tr[2]["notes"]
    b_note = {
        "W1": f"{notes2.get('W1_b')}",
        "W2": f"{notes2.get('W2_b')}",
        "W3": f"Mamba + {notes2.get('W3_b')}",
        "W4": "— (S4D has no scan: (a) is its vectorised path)",
        "W5": f"Mamba + {notes2.get('W5_b')} + AdamW",
    }
    ms = lambda sec: None if sec is None else sec * 1e3  # noqa: E731

    def round_ratios(w, variant):  # PyTorch / ssmkit at 2 threads in each round (variant "a" or "b" = best (b))
        out = []
        for r in rounds:
            s2r = r["ssmkit"]["times"].get(f"{w}/2")
            t2r, t1r = r["torch"]["2"]["times"], r["torch"]["1"]["times"]
            if variant == "a":
                v = t2r.get(f"{w}_a")
            else:
                v = min([x for x in (t2r.get(f"{w}_b"), t1r.get(f"{w}_b")) if x is not None], default=None)
            if v is not None and s2r:
                out.append(v * 1e3 / s2r)
        return out

    def ratio_cell(w, variant):
        v = round_ratios(w, variant)
        return fmt_x(statistics.median(v)) if v else "—"

    rows = []
    hdr = ["workload", "ssmkit 2 thr", "ssmkit 1 thr", "PyTorch (a) 2 thr", "PyTorch (b) 2 thr", "PyTorch (b) 1 thr",
           "(a) / ssmkit", "best (b) / ssmkit", "limit (2 thr)", "ssmkit / limit, 2 thr", "ssmkit / limit, 1 thr"]
    for w in ("W1", "W2", "W3", "W4", "W5"):
        s2, s1 = s(f"{w}/2"), s(f"{w}/1")
        a2 = ms(t2.get(f"{w}_a"))
        b2, b1 = ms(t2.get(f"{w}_b")), ms(t1.get(f"{w}_b"))
        lim, lim_name = limit(w, 2)
        lim1, _ = limit(w, 1)
        rows.append([desc[w], fmt_ms(s2), fmt_ms(s1),
                     fmt_ms(a2) if a2 is not None else "—",
                     fmt_ms(b2), fmt_ms(b1),
                     ratio_cell(w, "a"),
                     ratio_cell(w, "b"),
                     f"{fmt_ms(lim)} ({lim_name})" if lim else "—",
                     fmt_x(s2 / lim) if lim and s2 else "—",
                     fmt_x(s1 / lim1) if lim1 and s1 else "—"])

    out = []
    ctx = sk.get("context", {})
    out.append(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"ssmkit-bench context: {ctx.get('num_cpus', '?')} CPUs @ {ctx.get('mhz_per_cpu', '?')} MHz; "
               f"load average {' '.join(load0)} at start, {' '.join(load1)} at end "
               f"(other processes share the cores: times are noisy).")
    gl = sk["labels"].get("GEMM_peak/2", "?")
    out.append(f"ssmkit: GEMM {gl}; SIMD path {sk['labels'].get('ExpBound_W1/2', '?')}.")
    bi = tr[2]["blas"]
    out.append(f"PyTorch {bi['torch_version']}: torch.__config__ BLAS_INFO={bi['blas_info']}; BLAS/LAPACK "
               f"libraries mapped after a matmul: {', '.join(bi['loaded']) or 'none'}; OPENBLAS_CORETYPE="
               f"{with_openblas_core(os.environ).get('OPENBLAS_CORETYPE', 'unset (OpenBLAS detects)')}.")
    out.append("")
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    if len(rounds) > 1:
        parts = []
        for w in ("W1", "W2", "W3", "W4", "W5"):
            for variant in ("a", "b"):
                v = round_ratios(w, variant)
                if v:
                    parts.append(f"{w} ({variant}) " + " ".join(fmt_x(x) for x in v))
        out.append(f"{len(rounds)} rounds (times: medians over the rounds; ratios: the median of the rounds' "
                   "ratios, each round's PyTorch time over its own ssmkit time). Per round: " + "; ".join(parts) + ".")
    sp = []
    for w in ("W1", "W2", "W3", "W4"):
        s2, s1 = s(f"{w}/2"), s(f"{w}/1")
        sp.append(f"{w} {s1 / s2:.2f}×" if s1 and s2 else f"{w} —")
    line = "ssmkit 2-thread speedup (1 thr / 2 thr, from the medians): " + ", ".join(sp) + "."
    if len(rounds) > 1:  # each round's own 1-thread time over its 2-thread time
        per = []
        for w in ("W1", "W2", "W3", "W4"):
            v = [r["ssmkit"]["times"][f"{w}/1"] / r["ssmkit"]["times"][f"{w}/2"] for r in rounds
                 if r["ssmkit"]["times"].get(f"{w}/1") and r["ssmkit"]["times"].get(f"{w}/2")]
            if v:
                per.append(f"{w} " + " ".join(f"{x:.2f}" for x in v))
        line += " Per round: " + "; ".join(per) + "."
    out.append(line)
    lim_parts = []
    for k in ("ExpBound_W1", "ExpBound_W1_sleef", "ExpBound_W1_sleef512"):
        if s(f"{k}/2") is not None:
            lim_parts.append(f"{k} {fmt_ms(s(k + '/2'))} ({sk['counters'][k + '/2'].get('Gexp/s', 0):.2f} Gexp/s)")
    for k in ("GEMM_peak", "GEMM_W3", "GEMM_W5"):
        if s(f"{k}/2") is not None:
            lim_parts.append(f"{k} {fmt_ms(s(k + '/2'))} ({sk['counters'][k + '/2'].get('GFLOP/s', 0):.1f} GFLOP/s)")
    if s("FFT_W4_measure/2") is not None:
        lim_parts.append(f"FFT_W4 with FFTW_MEASURE {fmt_ms(s('FFT_W4_measure/2'))} (the FFT path's transforms: "
                         "W4 takes the recurrence instead)")
    out.append("Limits at 2 threads: " + "; ".join(lim_parts) + ".")
    out.append("(a): " + "; ".join(f"{w} {a_note[w]}" for w in a_note) + ".")
    out.append("(b): " + "; ".join(f"{w} {b_note[w]}" for w in b_note) + ". Scan variants timed this run "
               "(2 thr): " + ", ".join(f"{k[:2]} {k[5:]} {fmt_ms(v * 1e3)}" for k, v in t2.items()
                                       if re.match(r"W[12]_b_", k)) + ".")
    out.append("Checks, (b) against (a) in PyTorch (max abs error / max abs value): " +
               ", ".join(f"{k} {v:.1e}" for k, v in tr[2]["checks"].items()) + ".")
    out.append(f"Wall time of this comparison: {time.time() - t_start:.0f} s.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
