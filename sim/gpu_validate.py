"""Compare the GPU model with measurements: predicted, measured and error per case, MAPE per class.

The measurements are arch/gpus/h100_measured.csv (made by bench/gpu/measure.py on a real H100).
Each row becomes kernels: a GEMM row cuBLAS-like GEMM kernels, an attention row
FlashAttention-2 kernels, a layer row the kernels of the PyTorch LLaMA-2 7B layer that
measure.py times (``reference_layer_kernels``, op by op as PyTorch launches them). Rows in the
preset's ``calibration_set`` are marked and left out of every error mean.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from arch.gpu import GpuArch, load_gpu
from mappers.gpu import Kernel, attention_kernels, elementwise_kernel, gemm_kernels
from sim.gpu import run_kernels, roofline_seconds

DEFAULT_CSV = resources.files("arch").joinpath("gpus", "h100_measured.csv")  # shipped with the h100 preset
PREDICTED_CLASSES = ("gemm", "attention", "layer", "elementwise")
LLAMA2_7B = {"d": 4096, "heads": 32, "head_dim": 128, "ffn": 11008}


@dataclass(frozen=True)
class Case:
    """One measured row, with what the model needs to rebuild it."""

    cls: str
    name: str
    dtype: str
    measured_us: float
    flops: float
    nbytes: float
    params: dict

    @property
    def key(self) -> str:
        """The name a calibration set uses: class/case/dtype."""
        return f"{self.cls}/{self.name}/{self.dtype}"

    @property
    def group(self) -> str:
        """The error class the issue's targets are stated for."""
        p = self.params
        if self.cls == "gemm":
            return "gemm >= 1 GFLOP" if self.flops >= 1e9 else "gemm < 1 GFLOP"
        if self.cls in ("attention", "layer"):
            return f"{self.cls} {'decode' if p['q_len'] == 1 else 'prefill'}"
        return f"{self.cls} (not a target)" if self.cls == "elementwise" else self.cls


def read_cases(path: str | Path = DEFAULT_CSV) -> list[Case]:
    """The rows of a measurement CSV that the model predicts (GEMM, attention, layer, elementwise)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["class"] not in PREDICTED_CLASSES:
                continue
            ints = {k: int(float(row[k])) for k in ("m", "n", "k", "batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len")
                    if row.get(k) not in (None, "")}
            ints["causal"] = row.get("causal") == "True"
            out.append(Case(row["class"], row["case"], row["dtype"], float(row["median_us"]), float(row["flops"]),
                            float(row["bytes"]), ints))
    return out


def ceilings(path: str | Path = DEFAULT_CSV) -> dict[str, float]:
    """The measured ceilings (median µs by case name): launch costs and the copy."""
    with open(path, newline="") as f:
        return {r["case"]: float(r["median_us"]) for r in csv.DictReader(f) if r["class"] == "ceiling"}


def case_kernels(case: Case, gpu: GpuArch) -> list[Kernel]:
    """The kernels the model runs for one measured case."""
    p = case.params
    if case.cls == "gemm":
        return gemm_kernels(gpu, p["m"], p["n"], p["k"], case.dtype, name=case.name)
    if case.cls == "attention":
        return attention_kernels(gpu, p["batch"], p["heads"], p["kv_heads"], p["q_len"], p["kv_len"], p["head_dim"],
                                 p["causal"], case.dtype, name=case.name)
    if case.cls == "layer":
        return reference_layer_kernels(gpu, p["batch"], p["q_len"], p["kv_len"], case.dtype)
    if case.cls == "elementwise":
        return [elementwise_kernel(case.name, case.nbytes)]
    raise ValueError(f"no model for class '{case.cls}'")


def _rms_norm(t: int, d: int, e: int, tag: str) -> list[Kernel]:
    """measure.py's rms(): float(), pow, mean, +eps, rsqrt, to(bf16), t*r, *g -- eight kernels."""
    f = 4
    moves = [("float", t * d * (e + f)), ("pow", 2 * t * d * f), ("mean", t * d * f + t * f), ("add_eps", 2 * t * f),
             ("rsqrt", 2 * t * f), ("to_dtype", t * (f + e)), ("mul_rstd", 2 * t * d * e + t * e), ("mul_g", 2 * t * d * e + d * e)]
    return [elementwise_kernel(f"{tag}.{n}", b) for n, b in moves]


def _rope(t: int, d: int, q_len: int, hd: int, e: int, tag: str) -> list[Kernel]:
    """measure.py's rope(): t*cos, -t2, cat, *sin, + -- five kernels."""
    moves = [("mul_cos", 2 * t * d * e + q_len * hd * e), ("neg", t * d * e), ("cat", 2 * t * d * e),
             ("mul_sin", 2 * t * d * e + q_len * hd * e), ("add", 3 * t * d * e)]
    return [elementwise_kernel(f"{tag}.{n}", b) for n, b in moves]


def reference_layer_kernels(gpu: GpuArch, batch: int, q_len: int, kv_len: int, dtype: str = "bf16") -> list[Kernel]:
    """The kernels of measure.py's LLaMA-2 7B layer, in PyTorch's launch order (40 plus any
    split-K reductions and the split-KV combine; torch.profiler counted 40-42, in the CSV)."""
    d, heads, hd, ffn = (LLAMA2_7B[k] for k in ("d", "heads", "head_dim", "ffn"))
    e, t = 2, batch * q_len
    causal = q_len > 1 and kv_len == q_len
    ks: list[Kernel] = _rms_norm(t, d, e, "rms1")
    for w in ("q", "k", "v"):
        ks += gemm_kernels(gpu, t, d, d, dtype, name=f"{w}_proj")
    ks += _rope(t, d, q_len, hd, e, "rope_q") + _rope(t, d, q_len, hd, e, "rope_k")
    ks += [elementwise_kernel("k_cache_write", 2 * t * d * e), elementwise_kernel("v_cache_write", 2 * t * d * e)]
    ks += attention_kernels(gpu, batch, heads, heads, q_len, kv_len, hd, causal, dtype, name="sdpa")
    ks += gemm_kernels(gpu, t, d, d, dtype, name="o_proj") + [elementwise_kernel("residual1", 3 * t * d * e)]
    ks += _rms_norm(t, d, e, "rms2")
    ks += gemm_kernels(gpu, t, ffn, d, dtype, name="gate") + [elementwise_kernel("silu", 2 * t * ffn * e)]
    ks += gemm_kernels(gpu, t, ffn, d, dtype, name="up") + [elementwise_kernel("mul", 3 * t * ffn * e)]
    ks += gemm_kernels(gpu, t, d, ffn, dtype, name="down") + [elementwise_kernel("residual2", 3 * t * d * e)]
    return ks


@dataclass(frozen=True)
class Row:
    """One case's prediction beside its measurement."""

    case: Case
    predicted_us: float
    roofline_us: float
    kernels: int
    calibration: bool

    @property
    def error(self) -> float:
        """Signed relative error of the prediction."""
        return self.predicted_us / self.case.measured_us - 1.0


def predict(case: Case, gpu: GpuArch, launch: str | None = None) -> Row:
    """The model's prediction for one case (and the preset's roofline bound for it)."""
    result = run_kernels(case_kernels(case, gpu), gpu, launch)
    roof = roofline_seconds(gpu, case.flops, case.nbytes, case.dtype if case.dtype in ("fp16", "bf16") else "bf16")
    return Row(case, result.seconds * 1e6, roof * 1e6, len(result.kernels), case.key in gpu.calibration_set)


def validate(gpu: GpuArch | str = "h100", path: str | Path = DEFAULT_CSV, launch: str | None = None) -> list[Row]:
    """Every predicted case of the CSV."""
    gpu = load_gpu(gpu)
    return [predict(c, gpu, launch) for c in read_cases(path)]


def mape(rows: list[Row]) -> dict[str, tuple[float, int]]:
    """Mean absolute percentage error and case count per group, calibration cases left out."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        if not r.calibration:
            groups.setdefault(r.case.group, []).append(abs(r.error) * 100)
            if r.case.cls in ("attention", "layer"):  # the issue states these targets per class
                groups.setdefault(f"{r.case.cls} (all)", []).append(abs(r.error) * 100)
    return {g: (statistics.fmean(v), len(v)) for g, v in groups.items()}


def format_table(rows: list[Row]) -> str:
    """The per-case table and the MAPE per group, as text."""
    lines = [f"{'class':<10} {'case':<30} {'dtype':<5} {'measured us':>12} {'predicted us':>13} {'error':>8} "
             f"{'roofline us':>12}  note"]
    for r in rows:
        c = r.case
        note = "calibration" if r.calibration else ""
        if c.cls == "layer":
            note = (note + f" {r.kernels} kernels").strip()
        lines.append(f"{c.cls:<10} {c.name:<30} {c.dtype:<5} {c.measured_us:>12.2f} {r.predicted_us:>13.2f} "
                     f"{r.error * 100:>+7.1f}% {r.roofline_us:>12.2f}  {note}")
    lines.append("")
    lines.append(f"{'group (calibration cases left out)':<36} {'cases':>5} {'MAPE':>7}")
    for g, (m, n) in sorted(mape(rows).items()):
        lines.append(f"{g:<36} {n:>5} {m:>6.1f}%")
    below = [r for r in rows if r.predicted_us < r.roofline_us]
    lines.append(f"predictions below the preset's roofline: {len(below)}")
    return "\n".join(lines)
