"""How long one FuseMax-study point takes to simulate, and what the schedule's window does.

    python bench/bench_fusemax.py [--repeats 3] [--models BERT,XLM]

Prints, per (model, length, accelerator): the median wall time of ``repeats`` runs, the simpy
events simulated, and whether the point was extrapolated; then the median and worst over all
points (the target is under 10 s per point on 2 cores), and the 1D utilization of FuseMax at
BERT 1K for 1-4 epochs in flight (sim.attention_accel.FUSEMAX_WINDOW).
"""

from __future__ import annotations

import argparse
import statistics
import time

import sim.attention_accel as acc
from sim.attention_accel import AttentionShape, simulate_attention
from sim.attention_study import LENGTHS, MODELS
from workloads.zoo import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated labels of " + ", ".join(MODELS))
    args = ap.parse_args()
    walls = []
    print(f"{'model':<6} {'seq':>5} {'accelerator':<9} {'median s':>9} {'events':>9} extrapolated")
    for label in args.models.split(","):
        model = load_model(MODELS[label])
        for seq_label, seq in LENGTHS.items():
            shape = AttentionShape.of_model(model, seq)
            for arch in ("fusemax", "flat", "unfused"):
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    r = simulate_attention(arch, shape)
                    times.append(time.perf_counter() - t)
                walls.append(statistics.median(times))
                print(f"{label:<6} {seq_label:>5} {arch:<9} {walls[-1]:>9.2f} {r.events:>9,} {r.extrapolated}")
    print(f"\n{len(walls)} points: median {statistics.median(walls):.2f} s, worst {max(walls):.2f} s per point")

    shape = AttentionShape(64, 12, 1024, 1024, 64, 64)
    default = acc.FUSEMAX_WINDOW
    print("\nFuseMax at BERT 1K, epochs in flight -> 1D / 2D utilization, latency")
    for window in (1, 2, 3, 4, 6):
        acc.FUSEMAX_WINDOW = window
        r = simulate_attention("fusemax", shape)
        mark = "  (default)" if window == default else ""
        print(f"  {window}: {r.utilization['pe1d']:.3f} / {r.utilization['pe2d']:.3f}, {r.seconds * 1e3:.4f} ms{mark}")
    acc.FUSEMAX_WINDOW = default


if __name__ == "__main__":
    main()
