"""Runs the OFFICIAL S-Mamba code (wzhwzhwzh0921/S-D-Mamba) on CPU for the ETTh1 H=96 setting of
scripts/multivariate_forecasting/ETT/S_Mamba_ETTh1.sh on run.py's defaults: d_model 256, d_state 2, e_layers 2,
d_ff 256, lr 7e-5, batch 32, seed 2023, train_epochs 10, patience 3, lradj type1, embed timeF (4 time-mark
tokens), dropout 0.1, gelu. mamba_ssm (CUDA only) is replaced by tests/timeseries/tools/mamba_standin.py with
its vectorised selective scan (segment sums in log space; same numbers as the sequential reference, checked
at start). Everything else is the official code: its data_provider (pandas, sklearn), Exp_Long_Term_Forecast
train (including its per-epoch val and test passes) and test (test batch size 1, all 2785 windows).
Prints the seconds of each training epoch (the official "cost time"), their median, and the test MSE/MAE.
A dev script for comparing ssmkit's timings and accuracy; not run by CI.

usage: /usr/bin/python3 tests/bench/smamba_official_epoch.py --repo /path/to/S-D-Mamba \
           --data /work/shared/data/timeseries/ett/ [--epochs 10] [--threads N] [--workdir /tmp/smamba_bench]
needs: torch, numpy, pandas, scikit-learn (Debian: python3-torch python3-pandas python3-sklearn).
"""
import argparse
import os
import random
import re
import statistics
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "timeseries", "tools"))
sys.path.insert(0, HERE)
from openblas_core import with_openblas_core  # noqa: E402

# Before torch loads its OpenBLAS: the CPU's own kernels where OpenBLAS 0.3.21 would fall back to SSE3 ones.
os.environ.update(with_openblas_core(os.environ))


class Tee:
    """Echoes stdout and keeps every line, to read the official prints back."""

    def __init__(self, out):
        self.out, self.lines, self.buf = out, [], ""

    def write(self, s):
        self.out.write(s)
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.lines.append(line)

    def flush(self):
        self.out.flush()


def stub_matplotlib():
    """utils/tools.py imports matplotlib only for its test-plot helper `visual`."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    mpl = types.ModuleType("matplotlib")
    plt = types.ModuleType("matplotlib.pyplot")
    plt.switch_backend = lambda *a, **k: None
    mpl.pyplot = plt
    sys.modules["matplotlib"] = mpl
    sys.modules["matplotlib.pyplot"] = plt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="checkout of wzhwzhwzh0921/S-D-Mamba")
    ap.add_argument("--data", required=True, help="folder holding ETTh1.csv")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pred-len", type=int, default=96)
    ap.add_argument("--lr", type=float, default=7e-5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--num-workers", type=int, default=0,
                    help="DataLoader workers (run.py's default is 10; 0 avoids forking on a small CPU)")
    ap.add_argument("--scan", default="parallel", choices=["parallel", "sequential"])
    ap.add_argument("--workdir", default="/tmp/smamba_bench", help="checkpoints and results go here")
    args = ap.parse_args()

    import mamba_standin
    err = mamba_standin.check_scans()
    assert err < 1e-12, f"parallel scan differs from the sequential one by {err}"
    mamba_standin.install(args.scan)
    stub_matplotlib()
    import numpy as np
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repo = os.path.abspath(args.repo)
    sys.path.insert(0, repo)
    args.data = os.path.abspath(args.data)  # relative paths name the caller's directory, not the work directory
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)  # the official test() writes ./results, ./test_results, result_long_term_forecast.txt

    import experiments.exp_long_term_forecasting as elf
    elf.visual = lambda *a, **k: None  # no plots

    fix_seed = 2023  # as run.py, before anything is built
    random.seed(fix_seed)
    torch.manual_seed(fix_seed)
    np.random.seed(fix_seed)

    a = types.SimpleNamespace(
        is_training=1, model_id=f"ETTh1_96_{args.pred_len}", model="S_Mamba", data="ETTh1",
        root_path=os.path.abspath(args.data) + "/", data_path="ETTh1.csv", features="M", target="OT", freq="h",
        checkpoints=os.path.join(args.workdir, "checkpoints"), seq_len=96, label_len=48, pred_len=args.pred_len,
        enc_in=7, dec_in=7, c_out=7, d_model=256, n_heads=8, e_layers=2, d_layers=1, d_ff=256, moving_avg=25,
        factor=1, distil=True, dropout=0.1, embed="timeF", activation="gelu", output_attention=False,
        do_predict=False, num_workers=args.num_workers, itr=1, train_epochs=args.epochs, batch_size=32, patience=3,
        learning_rate=args.lr, des="Exp", loss="MSE", lradj="type1", use_amp=False, use_gpu=False, gpu=0,
        use_multi_gpu=False, devices="0", exp_name="MTSF", channel_independence=False, inverse=False,
        class_strategy="projection", target_root_path="", target_data_path="", efficient_training=False,
        use_norm=1, partial_start_index=0, d_state=2)
    setting = "{}_{}_{}_{}_ft{}_sl{}_ll{}_pl{}_dm{}_nh{}_el{}_dl{}_df{}_fc{}_eb{}_dt{}_{}_{}".format(
        a.model_id, a.model, a.data, a.features, a.seq_len, a.label_len, a.pred_len, a.d_model, a.n_heads,
        a.e_layers, a.d_layers, a.d_ff, a.factor, a.embed, a.distil, a.des, a.class_strategy, 0)

    tee = Tee(sys.stdout)
    sys.stdout = tee
    t0 = time.time()
    exp = elf.Exp_Long_Term_Forecast(a)
    print("parameters:", sum(p.numel() for p in exp.model.parameters()), "| threads:", torch.get_num_threads(),
          "| scan:", args.scan)
    exp.train(setting)
    exp.test(setting)
    total = time.time() - t0
    sys.stdout = tee.out

    epochs = [float(m.group(1)) for l in tee.lines for m in [re.match(r"Epoch: \d+ cost time: ([0-9.]+)", l)] if m]
    mae, mse = np.load(os.path.join("results", setting, "metrics.npy"))[:2]
    print("\n=== official S-Mamba on CPU, ETTh1 96->%d ===" % a.pred_len)
    print("training epochs run: %d; seconds per epoch: %s" % (len(epochs), ", ".join("%.1f" % e for e in epochs)))
    print("median seconds per training epoch: %.2f" % statistics.median(epochs))
    print("total wall time (train + per-epoch val/test + test): %.1f s" % total)
    print("test MSE %.4f  MAE %.4f" % (mse, mae))


if __name__ == "__main__":
    main()
