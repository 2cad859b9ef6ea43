"""Exact compute cycles of a GEMM tile on a systolic array (SCALE-Sim's closed form).

GEMM A[M×K]·B[K×N] on R rows × C columns, c(a, b) = ⌈a/b⌉ (../shared/reference/systolic.md):

    dataflow  rows  cols  temporal T  folds              cycles per fold
    os        M     N     K           c(M,R)·c(N,C)      T + R + C − 2
    ws        K     N     M           c(K,R)·c(N,C)      T + 2R + C − 2
    is        K     M     N           c(K,R)·c(M,C)      T + 2R + C − 2

Folds run back to back. With ``overlap`` the fill and drain of consecutive folds overlap, so
only the first fold's fill and the last fold's drain are paid: folds·T + (per-fold − T).
SCALE-Sim reports one cycle fewer (a known off-by-one); we do not copy it.
"""

from __future__ import annotations

from dataclasses import dataclass


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class FoldPlan:
    """How a tile's GEMM folds onto the array: fold count and cycles per fold."""

    folds: int
    temporal: int
    per_fold: int

    def cycles(self, overlap: bool = False, batches: int = 1) -> int:
        """Cycles of ``batches`` back-to-back GEMMs of this plan (ints or numpy arrays alike)."""
        if overlap:
            return (batches * self.folds) * self.temporal + (self.per_fold - self.temporal)
        return batches * (self.folds * self.per_fold)


def fold_plan(dataflow: str, rows: int, cols: int, m: int, n: int, k: int) -> FoldPlan:
    """The fold plan of an m×n×k GEMM on a rows×cols array with the given dataflow."""
    if dataflow == "os":
        return FoldPlan(ceil_div(m, rows) * ceil_div(n, cols), k, k + rows + cols - 2)
    if dataflow == "ws":
        return FoldPlan(ceil_div(k, rows) * ceil_div(n, cols), m, m + 2 * rows + cols - 2)
    if dataflow == "is":
        return FoldPlan(ceil_div(k, rows) * ceil_div(m, cols), n, n + 2 * rows + cols - 2)
    raise ValueError(f"unknown dataflow '{dataflow}' (expected os, ws or is)")


def gemm_cycles(dataflow: str, rows: int, cols: int, m: int, n: int, k: int, overlap: bool = False) -> int:
    """Stall-free cycles of one m×n×k GEMM on the array."""
    return fold_plan(dataflow, rows, cols, m, n, k).cycles(overlap)


@dataclass(frozen=True)
class ArrayAccesses:
    """Words the array reads from / writes to the memory that feeds it, for one GEMM tile.

    Reads and writes follow SCALE-Sim's counters; in addition we count the partial-sum reads
    that accumulation needs (SCALE-Sim counts only the writes): between K-folds under ws/is,
    and one read of the whole output tile when it continues an earlier partial sum.
    """

    input_reads: int
    weight_reads: int
    output_reads: int
    output_writes: int


def array_accesses(dataflow: str, rows: int, cols: int, m: int, n: int, k: int, continues: bool) -> ArrayAccesses:
    """Array-side accesses of one m×n×k tile; ``continues`` if it adds to an earlier partial sum."""
    carried = m * n if continues else 0
    if dataflow == "os":
        return ArrayAccesses(ceil_div(n, cols) * m * k, ceil_div(m, rows) * k * n, carried, m * n)
    if dataflow == "ws":
        kf = ceil_div(k, rows)
        return ArrayAccesses(ceil_div(n, cols) * m * k, k * n, (kf - 1) * m * n + carried, kf * m * n)
    if dataflow == "is":
        kf = ceil_div(k, rows)
        return ArrayAccesses(m * k, ceil_div(m, cols) * k * n, (kf - 1) * m * n + carried, kf * m * n)
    raise ValueError(f"unknown dataflow '{dataflow}' (expected os, ws or is)")
