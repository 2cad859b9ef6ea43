"""Benchmark: how fast einsim maps and simulates a fixed set of GEMMs.

Prints, per case, the median wall time of mapping + simulation (``sim.evaluate``) and of the
event simulation alone over several runs, simulated MACs per second and simulator events per
second, and the speed-up over SCALE-Sim 3.0's measured CPU time where the reference has one
(../shared/reference/systolic.md, measured on a 2-core machine like ours). Timings are noisy:
read medians and ratios, not single runs.

    python bench/bench_sim.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

CASES = [
    # (preset, M, N, K, SCALE-Sim 3.0 CPU seconds on the same array size or None)
    ("edge-32x32", 512, 768, 768, 59.0),
    ("edge-32x32", 1, 4096, 4096, None),  # SCALE-Sim did not finish in 600 CPU-s
    ("tpu-like", 512, 768, 768, 11.0),  # 8-14 s on 128x128; the middle of that range
    ("tpu-like", 128, 11008, 4096, 360.0),  # 5-7 minutes on 128x128
    ("tpu-like", 2048, 4096, 4096, None),  # out of SCALE-Sim's practical reach
]


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(repeats: int) -> list[dict]:
    from arch import load_arch
    from mappers import default_mapping, matmul_view
    from sim import evaluate
    from sim.engine import simulate
    from workloads import gemm

    rows = []
    for preset, m, n, k, scalesim_s in CASES:
        arch = load_arch(preset)
        cascade = gemm(m, n, k)
        total, result = _median_time(lambda: evaluate(arch, cascade), repeats)
        view = matmul_view(cascade, cascade.einsums[0])
        mapping = default_mapping(view, arch)
        sim_only, stats = _median_time(lambda: simulate(view, mapping, arch), repeats)
        rows.append({
            "preset": preset, "gemm": f"{m}x{n}x{k}", "median_total_s": total, "median_sim_s": sim_only,
            "macs_per_s": result.macs / total, "events": stats.events, "events_per_s": stats.events / sim_only,
            "latency_cycles": result.latency_cycles, "scalesim_cpu_s": scalesim_s,
            "speedup_vs_scalesim": (scalesim_s / total) if scalesim_s else None,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.repeats)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<12} {'gemm':<16} {'total s':>8} {'sim s':>8} {'MAC/s':>10} {'events':>7} {'events/s':>9} {'vs SCALE-Sim':>12}")
    for r in rows:
        speed = f"{r['speedup_vs_scalesim']:.0f}x" if r["speedup_vs_scalesim"] else "-"
        print(f"{r['preset']:<12} {r['gemm']:<16} {r['median_total_s']:>8.3f} {r['median_sim_s']:>8.3f} "
              f"{r['macs_per_s']:>10.3g} {r['events']:>7} {r['events_per_s']:>9.3g} {speed:>12}")
    print(f"(medians of {args.repeats} runs; 'total' = default mapper + event simulation)")


if __name__ == "__main__":
    main()
