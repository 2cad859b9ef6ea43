"""GPU kernel plans: the grid of thread blocks (CTAs) a library launches for an operation.

A GPU maps work by choosing a kernel and its grid: cuBLAS picks a CTA tile and a split-K
factor for a GEMM, FlashAttention-2 picks its plain or split-KV kernel and the number of
splits. ``gemm_kernels`` searches the library's tiles for the fastest (as cuBLAS's heuristics
and autotuning aim to); ``attention_kernels`` follows FlashAttention-2's own rules. A Kernel
holds each CTA's tensor-core cycles and the kernel's HBM bytes; ``kernel_seconds`` turns that
and a makespan (closed form here, CTA by CTA in sim.gpu) into time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil, isqrt

from arch.gpu import GpuArch
from workloads.ir import DTYPE_BYTES

KINDS = ("gemm", "attention", "elementwise")


@dataclass(frozen=True)
class Kernel:
    """One kernel launch: ``ctas`` (tensor-core cycles of each CTA of a pattern, launch order)
    repeated ``repeat`` times, its HBM traffic and its useful FLOPs (padding excluded)."""

    name: str
    kind: str
    ctas: tuple[float, ...] = ()
    repeat: int = 0
    hbm_bytes: float = 0.0
    flops: float = 0.0
    detail: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def grid(self) -> int:
        return len(self.ctas) * self.repeat


def waves_makespan(kernel: Kernel, sms: int) -> float:
    """Makespan in cycles when every CTA takes the same time: full waves of ``sms`` CTAs.

    Exact for uniform grids (what greedy dispatch gives); sim.gpu dispatches CTA by CTA."""
    if not kernel.ctas:
        return 0.0
    if len(set(kernel.ctas)) != 1:
        raise ValueError(f"kernel '{kernel.name}': CTAs differ; dispatch them (sim.gpu.makespan_cycles)")
    return ceil(kernel.grid / sms) * kernel.ctas[0]


def kernel_seconds(kernel: Kernel, gpu: GpuArch, makespan_cycles: float, launch: str | None = None) -> dict:
    """Time of one kernel in seconds, by part: launch, compute (the CTA makespan), memory (HBM
    bytes at the achievable bandwidth) and total = launch + ramp + max(compute, memory) for
    GEMM and attention kernels, launch + fixed + bytes / elementwise bandwidth for the rest.

    With eager launches the CPU enqueues a kernel every ``eager_us`` while the GPU runs ahead of
    it, so a kernel in a sequence takes the longer of the two: max(eager_us, graph_us + body)."""
    cal = gpu.calibration
    mode = launch or gpu.launch.mode
    launch_s = gpu.launch.us("graph") * 1e-6
    compute = makespan_cycles / gpu.clock_hz
    if kernel.kind == "elementwise":
        memory = kernel.hbm_bytes / (gpu.hbm_bytes_per_s * cal.elementwise_efficiency)
        body = cal.elementwise_fixed_us * 1e-6 + memory
    else:
        memory = kernel.hbm_bytes / (gpu.hbm_bytes_per_s * cal.hbm_efficiency)
        body = cal.kernel_ramp_us * 1e-6 + max(compute, memory)
    total = launch_s + body
    if mode == "eager":
        total = max(gpu.launch.eager_us * 1e-6, total)
        launch_s = total - body
    return {"launch": launch_s, "compute": compute, "memory": memory, "total": total}


def elementwise_kernel(name: str, nbytes: float) -> Kernel:
    """A memory-bound kernel (elementwise, reduction, copy) that moves ``nbytes`` through HBM."""
    return Kernel(name, "elementwise", hbm_bytes=float(nbytes))


def gemm_kernels(gpu: GpuArch, m: int, n: int, k: int, dtype: str = "bf16", batch: int = 1,
                 name: str = "gemm") -> list[Kernel]:
    """The fastest of the library's (CTA tile, split-K) choices for C[m,n] = A[m,k] B[k,n]:
    one GEMM kernel, plus a reduction kernel when K is split."""
    best, best_t = None, float("inf")
    for tm, tn in gpu.gemm.cta_tiles:
        for split in gpu.gemm.split_k:
            if split > 1 and ceil(k / split) < gpu.gemm.k_step:
                continue
            plan = _gemm_plan(gpu, m, n, k, dtype, batch, name, tm, tn, split)
            t = sum(kernel_seconds(kn, gpu, waves_makespan(kn, gpu.sms))["total"] for kn in plan)
            if t < best_t - 1e-15:
                best, best_t = plan, t
    assert best is not None
    return best


def _gemm_plan(gpu: GpuArch, m: int, n: int, k: int, dtype: str, batch: int, name: str,
               tm: int, tn: int, split: int) -> list[Kernel]:
    """One (tile, split) choice: the CTAs' cycles and the HBM traffic with L2 reuse."""
    e = DTYPE_BYTES[dtype]
    cal = gpu.calibration
    mt, nt = ceil(m / tm), ceil(n / tn)
    k_per = ceil(ceil(k / split) / gpu.gemm.k_step) * gpu.gemm.k_step  # padded k of one split
    cycles = tm * tn * k_per / (gpu.sm_macs_per_cycle(dtype) * cal.gemm_efficiency) + cal.gemm_cta_overhead_cycles
    grid = batch * mt * nt * split
    a, b, c = m * k * e, k * n * e, m * n * e
    if a + b <= gpu.l2.capacity:
        traffic = batch * (a + b + c)  # operands stay in L2: each is read from HBM once
    else:  # a wave of CTAs (a near-square block of tiles) reads its row and column panels
        waves = ceil(mt * nt * split / gpu.sms)
        rows = min(mt, max(1, isqrt(gpu.sms)))
        cols = min(nt, ceil(gpu.sms / rows))
        traffic = batch * max(a + b, waves * (rows * tm + cols * tn) * (k / split) * e) + batch * c
    partials = batch * m * n * 4 * split if split > 1 else 0  # fp32 partial sums: the GEMM writes, the reduction reads
    kernels = [Kernel(name, "gemm", (cycles,), grid, float(traffic + partials), 2.0 * batch * m * n * k,
                      {"tile": (tm, tn), "split_k": split, "grid": grid})]
    if split > 1:
        kernels.append(elementwise_kernel(f"{name}.splitk_reduce", partials + batch * c))
    return kernels


def num_splits(gpu: GpuArch, batch_heads_mblocks: int, n_blocks: int) -> int:
    """FlashAttention-2's split-KV heuristic (flash_api.cpp num_splits_heuristic, with 2 CTAs per SM):
    one split when the grid nearly fills the GPU, else the fewest splits within 85 % of the best wave efficiency."""
    slots = 2 * gpu.sms
    if batch_heads_mblocks >= 0.8 * slots:
        return 1
    top = min(gpu.attention.max_splits, slots, n_blocks)

    def eligible(s: int) -> bool:
        return s == 1 or ceil(n_blocks / s) != ceil(n_blocks / (s - 1))

    eff = {}
    for s in range(1, top + 1):
        if eligible(s):
            waves = batch_heads_mblocks * s / slots
            eff[s] = waves / ceil(waves)
    best = max(eff.values(), default=0.0)
    return next((s for s in sorted(eff) if eff[s] >= 0.85 * best), 1)


def attention_kernels(gpu: GpuArch, batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int,
                      head_dim: int, causal: bool, dtype: str = "bf16", name: str = "attention") -> list[Kernel]:
    """FlashAttention-2 forward: the plain kernel (one CTA per block of ``block_m`` queries per
    head, walking key blocks; causal CTAs stop at the diagonal) or, when the grid is too small
    for the GPU, the split-KV kernel plus its combine kernel. Decode with grouped KV heads packs
    a KV head's query heads into the query rows, as flash_api.cpp does."""
    att, e = gpu.attention, DTYPE_BYTES[dtype]
    rows, groups = q_len, heads
    if q_len == 1 and heads > kv_heads:  # seqlenq_ngroups_swapped
        rows, groups = heads // kv_heads, kv_heads
    io_bytes = batch * (2 * heads * q_len + 2 * kv_heads * kv_len) * head_dim * e
    flops = 4.0 * batch * heads * q_len * kv_len * head_dim * (0.5 if causal and q_len == kv_len else 1.0)
    rate = gpu.sm_macs_per_cycle(dtype) * gpu.calibration.attention_efficiency
    over = gpu.calibration.attention_cta_overhead_cycles
    splits = num_splits(gpu, batch * groups * ceil(rows / 64), ceil(kv_len / att.split_block_n))
    if splits == 1:
        block = att.block_m * att.block_n * head_dim * 2 / rate  # QK^T and PV of one key block
        n_blocks = ceil(kv_len / att.block_n)
        pattern = []
        for i in range(ceil(rows / att.block_m)):  # causal: keys up to the block's last query (bottom-right aligned)
            last_key = min((i + 1) * att.block_m + kv_len - rows, kv_len) if causal else kv_len
            pattern.append(min(n_blocks, max(0, ceil(last_key / att.block_n))) * block + over)
        return [Kernel(name, "attention", tuple(pattern), batch * groups, float(io_bytes), flops,
                       {"kernel": "flash_fwd", "splits": 1, "grid": len(pattern) * batch * groups})]
    block = att.split_block_m * att.split_block_n * head_dim * 2 / rate
    n_blocks = ceil(kv_len / att.split_block_n)
    per_split = ceil(n_blocks / splits)
    pattern = []
    for _ in range(ceil(rows / att.split_block_m)):
        left = n_blocks
        for _s in range(splits):
            take = min(per_split, left)
            left -= take
            pattern.append(take * block + over)
    partials = splits * batch * heads * q_len * (head_dim + 1) * 4  # fp32 partial outputs and log-sum-exps
    return [Kernel(name, "attention", tuple(pattern), batch * groups, float(io_bytes + partials), flops,
                   {"kernel": "flash_fwd_splitkv", "splits": splits, "grid": len(pattern) * batch * groups}),
            elementwise_kernel(f"{name}.combine", partials + batch * heads * q_len * head_dim * e)]
