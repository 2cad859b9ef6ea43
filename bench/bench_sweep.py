"""Benchmark: the 1,000-point sweep (bench/sweep_bert_1000.yaml) cold, then warm.

Cold: a fresh OUT, nothing cached. Warm: the same sweep again into the same OUT after deleting
its results (OUT/mapping_cache.pkl, saved by the cold run, is reused). Prints points per second
for each and checks the two runs agree in every metric.

    python bench/bench_sweep.py [--spec bench/sweep_bert_1000.yaml] [-j 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(Path(__file__).with_name("sweep_bert_1000.yaml")))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--out", help="keep the results here (default: a temporary folder)")
    args = parser.parse_args()

    from sim import load_results, sweep

    out = Path(args.out or tempfile.mkdtemp(prefix="einsim-sweep-"))
    cold = sweep(args.spec, out, jobs=args.jobs, progress=True)
    first = load_results(out, all=True)
    (out / "results.sqlite").unlink()
    for extra in out.glob("results.sqlite-*"):
        extra.unlink()
    warm = sweep(args.spec, out, jobs=args.jobs, progress=True)
    second = load_results(out, all=True)
    metrics = [c for c in first.columns if c not in ("elapsed_s",)]
    same = first[metrics].reset_index(drop=True).equals(second[metrics].reset_index(drop=True))
    print(f"{'run':<6} {'points':>7} {'ok':>5} {'failed':>7} {'seconds':>9} {'points/s':>9}")
    for label, s in (("cold", cold), ("warm", warm)):
        print(f"{label:<6} {s.total:>7} {s.done:>5} {s.failed:>7} {s.elapsed_s:>9.1f} {s.points_per_s:>9.2f}")
    print(f"jobs={args.jobs}; warm results identical to cold in every metric: {same}; results in {out}")


if __name__ == "__main__":
    main()
