"""Benchmark: how long lowering a model to Einsum cascades takes (no mapping, no simulation).

Prints the median wall time over several runs per case, the Einsums per cascade and the
Einsums the repeat counts stand for, and GFLOP without the lookups (embedding, MoE routing), which
are data movement. Target: LLaMA-3 70B prefill at 8192 tokens under 1 s.

    python bench/bench_lowering.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

CASES = [
    ("llama3-70b", "prefill", {"seq": 8192}),
    ("llama3-70b", "decode", {"kv_len": 8192, "batch": 8}),
    ("llama2-7b", "prefill", {"seq": 2048, "attention": "1pass"}),
    ("mixtral-8x7b", "prefill", {"seq": 4096}),
    ("bert-base", "encoder", {"seq": 512}),
    ("gpt3-175b", "decode", {"kv_len": 2047}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from workloads import lower
    from workloads.zoo import load_model

    print(f"{'model':<14} {'phase':<8} {'sizes':<28} {'median s':>9} {'einsums':>8} {'represented':>12} {'GFLOP':>12}")
    for name, phase, sizes in CASES:
        cfg = load_model(name)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            program = lower(cfg, phase, **sizes)
            times.append(time.perf_counter() - t0)
        stored = sum(len(s.cascade.einsums) for s in program.segments)
        represented = sum(s.repeat * len(s.cascade.einsums) for s in program.segments)
        size_text = ",".join(f"{k}={v}" for k, v in sizes.items())
        print(f"{name:<14} {phase:<8} {size_text:<28} {statistics.median(times):>9.4f} {stored:>8} {represented:>12} "
              f"{program.flops(gathers=False) / 1e9:>12.1f}")
    print(f"(medians of {args.repeats} runs)")


if __name__ == "__main__":
    main()
