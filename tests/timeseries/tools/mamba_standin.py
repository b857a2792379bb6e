"""A pure-PyTorch stand-in for mamba_ssm.Mamba, so the official S-Mamba code runs on a CPU without the
CUDA package. Same constructor arguments, same parameters under the same state_dict keys, the same
initialization recipe and the same forward math as mamba_ssm 1.2's Mamba slow path with selective_scan_ref.
Two selective scans: "sequential" (the reference loop) and "parallel" (vectorised over time by
recursive doubling, log2(L) elementwise passes; the same numbers up to float rounding). install(scan) registers the stand-in as
the module `mamba_ssm`, and also empty stand-ins for `reformer_pytorch` and `einops`, which the official
layers import but S-Mamba never calls. Dev tool: ssmkit's tests never run Python.
"""
import math
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

SCAN = "sequential"


def scan_sequential(u, delta, A, B, C, D, z):
    """u, delta, z (b,d,l); A (d,n); B, C (b,n,l); D (d) -> (b,d,l). delta already softplus'ed."""
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    return (y + u * D[None, :, None]) * F.silu(z)


def scan_parallel(u, delta, A, B, C, D, z):
    """The same as scan_sequential without a Python loop over time steps: the linear recurrence
    h[t] = a[t] h[t-1] + b[t] (a = exp(delta A), b = delta B u) is solved by recursive doubling
    (Hillis-Steele): after the pass with offset k, (a[t], b[t]) describe steps t-2k+1..t, so ceil(log2 L)
    elementwise passes give every h[t]. Equal to the loop up to float rounding (a sum in another order)."""
    a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))       # (b,d,l,n)
    h = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)          # (b,d,l,n)
    L, k = u.shape[2], 1
    while k < L:
        h = torch.cat([h[:, :, :k], h[:, :, k:] + a[:, :, k:] * h[:, :, :-k]], dim=2)
        if 2 * k < L:
            a = torch.cat([a[:, :, :k], a[:, :, k:] * a[:, :, :-k]], dim=2)
        k *= 2
    y = torch.einsum("bdln,bnl->bdl", h, C)
    return (y + u * D[None, :, None]) * F.silu(z)


class Mamba(nn.Module):
    """mamba_ssm.modules.mamba_simple.Mamba (parameters, keys, init and slow-path forward)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False,
                 use_fast_path=True, layer_idx=None, device=None, dtype=None):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank ** -0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, hidden):  # (b,l,m) -> (b,l,m)
        L = hidden.shape[1]
        xz = self.in_proj(hidden).transpose(1, 2)  # (b,2e,l)
        x, z = xz.chunk(2, dim=1)
        x = self.act(self.conv1d(x)[..., :L])
        x_dbl = self.x_proj(x.transpose(1, 2))  # (b,l,r+2n)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus((dt @ self.dt_proj.weight.t()).transpose(1, 2) + self.dt_proj.bias[None, :, None])
        A = -torch.exp(self.A_log)
        scan = scan_parallel if SCAN == "parallel" else scan_sequential
        y = scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z)
        return self.out_proj(y.transpose(1, 2))


def install(scan="sequential"):
    """Registers this stand-in as `mamba_ssm` (and dummies for reformer_pytorch, einops) in sys.modules."""
    global SCAN
    assert scan in ("sequential", "parallel")
    SCAN = scan
    m = types.ModuleType("mamba_ssm")
    m.Mamba = Mamba
    sys.modules["mamba_ssm"] = m
    r = types.ModuleType("reformer_pytorch")

    class LSHSelfAttention(nn.Module):  # imported by SelfAttention_Family, unused by S-Mamba
        def __init__(self, *a, **k):
            raise RuntimeError("LSHSelfAttention stand-in: not available")

    r.LSHSelfAttention = LSHSelfAttention
    sys.modules.setdefault("reformer_pytorch", r)
    e = types.ModuleType("einops")

    def rearrange(*a, **k):
        raise RuntimeError("einops stand-in: not available")

    e.rearrange = rearrange
    e.repeat = rearrange
    sys.modules.setdefault("einops", e)


def check_scans(seed=0):
    """Max relative difference between the two scans on a random float64 problem (should be ~1e-15)."""
    g = torch.Generator().manual_seed(seed)
    b, d, n, l = 3, 5, 4, 13
    u = torch.randn(b, d, l, generator=g, dtype=torch.float64)
    delta = F.softplus(torch.randn(b, d, l, generator=g, dtype=torch.float64))
    A = -torch.rand(d, n, generator=g, dtype=torch.float64) * 3
    B = torch.randn(b, n, l, generator=g, dtype=torch.float64)
    C = torch.randn(b, n, l, generator=g, dtype=torch.float64)
    D = torch.randn(d, generator=g, dtype=torch.float64)
    z = torch.randn(b, d, l, generator=g, dtype=torch.float64)
    ys = scan_sequential(u, delta, A, B, C, D, z)
    yp = scan_parallel(u, delta, A, B, C, D, z)
    return ((ys - yp).abs().max() / ys.abs().max()).item()
