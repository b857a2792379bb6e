"""Where the other threads wait: reads `perf script -F tid,time,ip,sym,dso` output of a 2-thread run recorded
with call graphs, and for every sample of the main thread asks whether the worker thread was in libgomp's
wait at that moment (its nearest sample within 2 ms). Prints the share of such "serial" main-thread samples
and the functions (innermost ssmkit frames) they fell in: the serial work that leaves the other core idle.
A dev tool for the performance work (docs/performance.md); not run by CI.

usage:
  perf record -F 1999 --call-graph dwarf,8192 -o run.data build-bench/bin/ssmkit-bench \
      --benchmark_filter='Vision_GroupMambaT_fwd_b1/2' --benchmark_min_time=4
  perf script -i run.data -F tid,time,ip,sym,dso > run.txt
  python3 tests/bench/perf_waiting.py run.txt --start 'GroupMamba::forward'
--start: skip samples before the first main-thread stack holding this text (model construction, input set-up).
"""
import argparse
import bisect
import collections
import re


def read_samples(path):
    samples, cur = [], None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        if not line[0].isspace() or re.match(r"\s*\d+\s+[\d.]+:", line):
            m = re.match(r"\s*(\d+)\s+([\d.]+):", line)
            if m:
                cur = (int(m.group(1)), float(m.group(2)), [])
                continue
        if cur is not None:
            parts = line.strip().split(" ", 1)
            cur[2].append(parts[1] if len(parts) > 1 else parts[0])
    if cur:
        samples.append(cur)
    return samples


def waiting(frames):
    return bool(frames) and ("libgomp" in frames[0] or ("[unknown]" in frames[0] and "libgomp" in "".join(frames[:2])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("script_output")
    ap.add_argument("--start", default="", help="first main-thread frame text that starts the timed part")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    samples = read_samples(a.script_output)
    counts = collections.Counter(s[0] for s in samples).most_common(2)
    if len(counts) < 2:
        raise SystemExit("need samples of two threads (run the benchmark at 2 threads)")
    main_tid = min(t for t, _ in counts)
    worker_tid = max(t for t, _ in counts)
    main_s = [s for s in samples if s[0] == main_tid]
    t0 = next((s[1] for s in main_s if a.start in "".join(s[2])), main_s[0][1]) if a.start else main_s[0][1]
    worker = sorted((s[1], waiting(s[2])) for s in samples if s[0] == worker_tid and s[1] >= t0)
    wt = [w[0] for w in worker]
    where = collections.Counter()
    n_main = n_serial = 0
    for _, t, frames in main_s:
        if t < t0:
            continue
        n_main += 1
        i = bisect.bisect_left(wt, t)
        near = [worker[j] for j in (i - 1, i) if 0 <= j < len(worker)]
        if not near:
            continue
        w = min(near, key=lambda c: abs(c[0] - t))
        if abs(w[0] - t) > 0.002 or not w[1] or waiting(frames):
            continue
        n_serial += 1
        own = [f.split("(")[0].replace("ssmkit::", "")[:60] for f in frames if "ssmkit" in f]
        where[" < ".join(own[:3]) if own else frames[0][:60] if frames else "?"] += 1
    idle = sum(1 for w in worker if w[1])
    print(f"main-thread samples {n_main}; with the worker waiting {n_serial} ({100 * n_serial / max(n_main, 1):.1f} %); "
          f"worker samples in libgomp's wait {100 * idle / max(len(worker), 1):.1f} %")
    for k, v in where.most_common(a.top):
        print(f"{100 * v / max(n_main, 1):5.1f} %  {k}")


if __name__ == "__main__":
    main()
