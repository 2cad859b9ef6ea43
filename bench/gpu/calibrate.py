"""Fit the h100 preset's calibration constants on a small, named subset of the measurements.

Four pairs of constants, each fitted on two measured cases, in this order (later fits use the
earlier constants):

1. ``hbm_efficiency``, ``kernel_ramp_us``: two batch-1 GEMVs (pure weight streaming);
2. ``gemm_efficiency``, ``gemm_cta_overhead_cycles``: a large (4096³) and a small GEMM;
3. ``attention_efficiency``, ``attention_cta_overhead_cycles``: flash attention at 512 and 4K tokens;
4. ``elementwise_fixed_us``, ``elementwise_efficiency``: one decode and one prefill LLaMA-2 layer.

Launch costs are not fitted: they are the measured ceilings (graph and eager tiny kernels).
Every fit minimises the squared log error of its two cases by a shrinking grid search, so the
result is deterministic. Every other row of the CSV is left for validation (einsim validate-gpu).

    python bench/gpu/calibrate.py [--csv arch/gpus/h100_measured.csv] [--write]
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

PRESET = Path(__file__).resolve().parents[2] / "arch" / "gpus" / "h100.yaml"

FITS = [
    (("hbm_efficiency", 0.5, 1.0), ("kernel_ramp_us", 0.0, 10.0),
     ("gemm/decode_b1_4096/bf16", "gemm/decode_b1_lmhead/bf16")),
    (("gemm_efficiency", 0.3, 1.0), ("gemm_cta_overhead_cycles", 0.0, 20000.0),
     ("gemm/sq4096/bf16", "gemm/bert_qkv/bf16")),
    (("attention_efficiency", 0.1, 1.0), ("attention_cta_overhead_cycles", 0.0, 40000.0),
     ("attention/prefill_full_b1_s4096/bf16", "attention/prefill_full_b1_s512/bf16")),
    (("elementwise_fixed_us", 0.0, 10.0), ("elementwise_efficiency", 0.2, 1.0),
     ("layer/llama2_7b_prefill_b1_seq2048/bf16", "layer/llama2_7b_decode_b1_kv512/bf16")),
]


def calibration_set() -> tuple[str, ...]:
    """The measured cases the constants are fitted on (ceilings included)."""
    return ("ceiling/graph_launch_tiny_kernel", "ceiling/eager_launch_tiny_kernel") + tuple(k for *_, ks in FITS for k in ks)


def _with(gpu, **values):
    """``gpu`` with calibration values replaced."""
    return gpu.model_copy(update={"calibration": gpu.calibration.model_copy(update=values)})


def fit(csv_path: str | Path | None = None, gpu="h100") -> tuple[dict[str, float], dict[str, float]]:
    """(calibration constants, launch costs) fitted on the calibration set of ``csv_path``."""
    from arch.gpu import load_gpu
    from sim.gpu_validate import DEFAULT_CSV, ceilings, predict, read_cases

    csv_path = csv_path or DEFAULT_CSV
    gpu = load_gpu(gpu)
    ceil = ceilings(csv_path)
    launch = {"graph_us": round(ceil["graph_launch_tiny_kernel"], 3), "eager_us": round(ceil["eager_launch_tiny_kernel"], 3)}
    gpu = gpu.model_copy(update={"launch": gpu.launch.model_copy(update=launch)})
    cases = {c.key: c for c in read_cases(csv_path)}
    found: dict[str, float] = {}
    for (p1, lo1, hi1), (p2, lo2, hi2), keys in FITS:
        targets = [cases[k] for k in keys]

        def loss(v1: float, v2: float) -> float:
            g = _with(gpu, **found, **{p1: v1, p2: v2})
            return sum(math.log(predict(c, g).predicted_us / c.measured_us) ** 2 for c in targets)

        best = _grid_search(loss, (lo1, hi1), (lo2, hi2))
        found[p1], found[p2] = _round(best[0]), _round(best[1])
    return found, launch


def _grid_search(loss, r1: tuple[float, float], r2: tuple[float, float], points: int = 13, rounds: int = 7):
    """The minimum of ``loss`` over a box: a grid, then finer grids around the best point."""
    (lo1, hi1), (lo2, hi2) = r1, r2
    best = None
    for _ in range(rounds):
        grid = [(lo1 + (hi1 - lo1) * i / (points - 1), lo2 + (hi2 - lo2) * j / (points - 1))
                for i in range(points) for j in range(points)]
        value, v1, v2 = min((loss(a, b), a, b) for a, b in grid)
        best = (v1, v2)
        s1, s2 = (hi1 - lo1) / (points - 1), (hi2 - lo2) / (points - 1)
        lo1, hi1 = max(r1[0], v1 - 2 * s1), min(r1[1], v1 + 2 * s1)
        lo2, hi2 = max(r2[0], v2 - 2 * s2), min(r2[1], v2 + 2 * s2)
    return best


def _round(x: float) -> float:
    """Four significant digits, so the YAML stays readable and refits reproduce it."""
    return float(f"{x:.4g}")


def write_preset(values: dict[str, float], launch: dict[str, float], path: Path = PRESET) -> None:
    """Rewrite the preset's calibration block, launch costs and calibration set in place."""
    text = path.read_text(encoding="utf-8")
    for key, v in {**values, **launch}.items():
        text, n = re.subn(rf"^(\s+{key}: ).*$", lambda m: f"{m.group(1)}{v:g}", text, count=1, flags=re.M)
        assert n == 1, key
    listed = "".join(f"\n  - {k}" for k in calibration_set())
    text, n = re.subn(r"^calibration_set:.*?(?=^\S)", f"calibration_set:{listed}\n\n", text, count=1, flags=re.M | re.S)
    assert n == 1
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="measurement CSV (default: arch/gpus/h100_measured.csv)")
    parser.add_argument("--write", action="store_true", help="write the constants into arch/gpus/h100.yaml")
    args = parser.parse_args()
    values, launch = fit(args.csv)
    for k, v in {**launch, **values}.items():
        print(f"{k:<32} {v:g}")
    print("fitted on:", ", ".join(calibration_set()))
    if args.write:
        write_preset(values, launch)
        print(f"wrote {PRESET}")


if __name__ == "__main__":
    main()
