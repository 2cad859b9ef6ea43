"""Run GPU kernels: CTAs dispatched to SMs one by one, kernels one after another.

A GPU's block scheduler hands each CTA, in launch order, to the SM that frees first; the
kernel ends when its last CTA does. ``makespan_cycles`` replays that with a heap of SM free
times (one event per CTA), which is what uneven grids such as causal attention need; for
uniform grids it equals mappers.gpu.waves_makespan. ``run_kernels`` adds launch costs and the
HBM bound and returns a frozen result with the per-kernel breakdown.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from arch.gpu import GpuArch
from mappers.gpu import Kernel, elementwise_kernel, kernel_seconds


def makespan_cycles(kernel: Kernel, sms: int) -> float:
    """Cycles from the first CTA's start to the last CTA's end under greedy in-order dispatch."""
    if not kernel.ctas:
        return 0.0
    if len(set(kernel.ctas)) == 1:  # uniform: full waves, no need to replay
        return -(-kernel.grid // sms) * kernel.ctas[0]
    free = [0.0] * min(sms, kernel.grid)
    heapq.heapify(free)
    for _ in range(kernel.repeat):
        for cycles in kernel.ctas:
            heapq.heapreplace(free, free[0] + cycles)
    return max(free)


@dataclass(frozen=True)
class KernelTime:
    """One kernel's time (seconds) and what bounds it."""

    name: str
    kind: str
    grid: int
    launch_s: float
    compute_s: float
    memory_s: float
    total_s: float
    flops: float
    hbm_bytes: float
    detail: dict = field(default_factory=dict, compare=False, hash=False)  # the library's choice (tile, split, ...)

    @property
    def bound(self) -> str:
        if self.kind == "elementwise":
            return "memory"
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class GpuResult:
    """A sequence of kernels on a GPU: total time, FLOPs, HBM bytes and each kernel's part."""

    gpu: str
    launch: str
    kernels: tuple[KernelTime, ...]

    @property
    def seconds(self) -> float:
        return sum(k.total_s for k in self.kernels)

    @property
    def flops(self) -> float:
        return sum(k.flops for k in self.kernels)


def run_kernels(kernels: list[Kernel], gpu: GpuArch, launch: str | None = None) -> GpuResult:
    """Time ``kernels`` run back to back (one stream); ``launch``: "graph" or "eager" (default: the preset's)."""
    mode = launch or gpu.launch.mode
    out = []
    for k in kernels:
        t = kernel_seconds(k, gpu, makespan_cycles(k, gpu.sms), mode)
        out.append(KernelTime(k.name, k.kind, k.grid, t["launch"], t["compute"], t["memory"], t["total"],
                              k.flops, k.hbm_bytes, dict(k.detail)))
    return GpuResult(gpu.name, mode, tuple(out))


def roofline_seconds(gpu: GpuArch, flops: float, nbytes: float, dtype: str = "bf16") -> float:
    """The preset's roofline bound: the larger of FLOPs at peak tensor rate and bytes at rated HBM bandwidth."""
    return max(flops / gpu.peak_flops(dtype), nbytes / gpu.hbm_bytes_per_s)


def model_kernels(gpu: GpuArch, cfg, phase: str = "decode", batch: int = 1, seq: int | None = None,
                  kv_len: int | None = None, dtype: str = "fp16") -> list[Kernel]:
    """A lowered model run kernel by kernel (workloads.kernels): each matmul kernel spread evenly
    over the SMs at the calibrated tensor efficiency, each other kernel an elementwise stream; the
    layer's kernels repeated for every layer, then the LM head's."""
    from workloads.kernels import model_ops

    layer, head, layers = model_ops(cfg, phase, batch, seq, kv_len)
    rate = gpu.sm_macs_per_cycle(dtype) * gpu.calibration.gemm_efficiency * 2  # FLOPs per cycle per SM
    out = []
    for ops, repeat in ((layer, layers), (head, 1)):
        for _ in range(repeat):
            for op in ops:
                nbytes = op.in_bytes + op.out_bytes
                if op.matmul:
                    out.append(Kernel(op.name, "gemm", (op.flops / gpu.sms / rate,), gpu.sms, nbytes, op.flops))
                else:
                    out.append(elementwise_kernel(op.name, nbytes))
    return out
