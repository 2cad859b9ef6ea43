"""Benchmark: the CP-SAT mapper on the GEMM Einsums of BERT-base and LLaMA-2 7B.

For every distinct GEMM shape (BERT-base encoder at seq 512, LLaMA-2 7B prefill at 2048 and
decode at kv 4096, batch 1) on the presets tpu-like and edge-32x32, prints CP-SAT's EDP solve
time (table building shown apart; "enum": a two-level space too large for the tables, which
cpsat_mapping enumerates exactly instead), its status, and its EDP against the best of N random valid
mappings (mappers.search.random_valid_mappings) and against search_mapping. A shape CP-SAT does
not solve is listed with its status and left out of the ratio summary (never hidden).

``--padded`` runs all three (CP-SAT, the random baseline and search) over the mapspace with
imperfect tiles instead of the perfect-factor one.

    python bench/bench_mapper.py [--time-limit 30] [--random 10000] [--presets tpu-like edge-32x32] [--only N] [--padded] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

CASES = [("bert-base", "encoder", {"seq": 512}), ("llama2-7b", "prefill", {"seq": 2048}),
         ("llama2-7b", "decode", {"kv_len": 4096})]


def gemm_views() -> list[tuple[str, object]]:
    """(workload label, MatmulView) of every distinct GEMM shape of CASES, in lowering order."""
    from mappers.errors import MappingError
    from mappers.view import matmul_view
    from sim.inputs import resolve_workload
    from workloads import lower
    from workloads.zoo import load_model

    out, seen = [], set()
    for model, phase, kw in CASES:
        for seg in resolve_workload(lower(load_model(model), phase, batch=1, **kw)):
            for e in seg.cascade.einsums:
                if e.name in seg.views or e.name in seg.gathers:
                    continue
                try:
                    v = matmul_view(seg.cascade, e)
                except MappingError:
                    continue
                key = (tuple(tuple(v.sizes[r] for r in v.groups[g]) for g in ("batch", "m", "n", "k")),
                       tuple(sorted(v.elem_bytes.items())))
                if key not in seen:
                    seen.add(key)
                    out.append((f"{model}/{phase}", v))
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def one(preset: str, label: str, view, time_limit: float, n_random: int, padded: bool = False) -> dict:
    """CP-SAT, the random baseline and search_mapping on one shape."""
    from mappers.cost import evaluate
    from mappers.cpsat import ENUMERATE_ROWS, _Problem, cpsat_mapping, table_rows
    from mappers.search import random_valid_mappings, search_mapping
    from mappers.space import space_size
    from sim.inputs import resolve_arch
    from sim.run import _matmul_unit

    arch = resolve_arch(preset)
    unit = _matmul_unit(arch)
    row = {"preset": preset, "workload": label, "einsum": view.einsum,
           "shape": "x".join(str(view.sizes[r]) for r in view.ranks if view.sizes[r] > 1)}
    row["table_rows"] = table_rows(view, arch, padded)
    row["engine"] = "enum" if len(arch.memories) == 2 and row["table_rows"] > ENUMERATE_ROWS else "cp-sat"
    row["table_s"] = 0.0
    if row["engine"] == "cp-sat":  # the tables CP-SAT loads (cpsat_mapping builds them again, inside its time)
        t = time.perf_counter()
        row["table_rows"] = sum(len(tab.rows) for tab in _Problem(view, arch, unit, padded).tables)
        row["table_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r = None
    try:
        r = cpsat_mapping(view, arch, "edp", time_limit, seed=0, workers=2, unit_name=unit, padded=padded)
        row["status"], row["cpsat_edp"] = r.status, r.objective_value
    except Exception as err:  # noqa: BLE001 - reported in the table, not hidden
        row["status"], row["cpsat_edp"] = str(err).rsplit("(", 1)[-1].rstrip(")")[:24], None
    row["solve_s"] = time.perf_counter() - t
    # valid mappings: how much of it N random samples can cover (an enumeration has counted them)
    row["space"] = r.evaluated if r is not None and r.evaluated else space_size(view, arch, padded)
    t = time.perf_counter()
    memo: dict = {}
    rand = random_valid_mappings(view, arch, n_random, seed=0, unit_name=unit, padded=padded)
    best = min(c.energy_pj * c.latency_cycles for c in (evaluate(view, m, arch, memo) for m in rand))
    row["random_n"], row["random_edp"], row["random_s"] = len(rand), best, time.perf_counter() - t
    t = time.perf_counter()
    row["search_edp"] = search_mapping(view, arch, "edp", unit_name=unit, padded=padded).objective_value
    row["search_s"] = time.perf_counter() - t
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0, help="CP-SAT seconds per shape (default 30)")
    ap.add_argument("--random", type=int, default=10_000, help="random valid mappings per shape (default 10000)")
    ap.add_argument("--presets", nargs="+", default=["tpu-like", "edge-32x32"])
    ap.add_argument("--only", type=int, help="the first N shapes only")
    ap.add_argument("--padded", action="store_true", help="the mapspace with imperfect (padded) tiles")
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON lines")
    args = ap.parse_args()
    views = gemm_views()[: args.only]
    rows = []
    hdr = (f"{'preset':<11} {'workload':<18} {'einsum':<9} {'shape':<20} {'rows':>7} {'engine':<6} {'table_s':>7} {'solve_s':>7} "
           f"{'status':<14} {'vs rand%':>8} {'vs srch%':>8} {'rand_n':>6} {'space':>9}")
    print(hdr, flush=True)
    for preset in args.presets:
        for label, view in views:
            row = one(preset, label, view, args.time_limit, args.random, args.padded)
            rows.append(row)
            imp = "-" if row["cpsat_edp"] is None else f"{100 * (1 - row['cpsat_edp'] / row['random_edp']):.1f}"
            simp = "-" if row["cpsat_edp"] is None else f"{100 * (1 - row['cpsat_edp'] / row['search_edp']):.1f}"
            print(f"{preset:<11} {label:<18} {view.einsum:<9} {row['shape']:<20} {row['table_rows']:>7} {row['engine']:<6} {row['table_s']:>7.2f} "
                  f"{row['solve_s']:>7.2f} {row['status']:<14} {imp:>8} {simp:>8} {row['random_n']:>6} {row['space']:>9}", flush=True)
            if args.json:
                print(json.dumps(row), flush=True)
    space = "padded tiles" if args.padded else "perfect factors"
    print(f"\nsummary (EDP over {space}, CP-SAT 2 workers, limit {args.time_limit:.0f} s):")
    for preset in args.presets:
        rs = [r for r in rows if r["preset"] == preset]
        ok = [r for r in rs if r["cpsat_edp"] is not None]
        times = [r["solve_s"] for r in ok]
        line = f"  {preset}: {len(ok)}/{len(rs)} shapes solved"
        if ok:
            opt = sum(r["status"] == "OPTIMAL" for r in ok)
            imp = statistics.mean(100 * (1 - r["cpsat_edp"] / r["random_edp"]) for r in ok)
            simp = statistics.mean(100 * (1 - r["cpsat_edp"] / r["search_edp"]) for r in ok)
            line += (f" ({opt} proven optimal); solve time median {statistics.median(times):.2f} s, p95 {pct(times, 95):.2f} s; "
                     f"mean EDP improvement over best-of-random {imp:.1f} %, over search_mapping {simp:.1f} %")
        spaces = sorted(r["space"] for r in rs)
        line += f"; valid mappings per Einsum {spaces[0]}–{spaces[-1]} (median {statistics.median(spaces):.0f})"
        failed = sorted({r["status"] for r in rs if r["cpsat_edp"] is None})
        if failed:
            line += f"; unsolved: {', '.join(failed)}"
        print(line)


if __name__ == "__main__":
    main()
