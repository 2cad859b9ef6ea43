"""Attention as 3-pass, 2-pass and 1-pass Einsum cascades, batched over any batch/head ranks.

Each ``attention_*`` function adds to a :class:`workloads.program.Builder` the Einsums that
turn Q, K, V (and an optional 0/-inf mask added before the max) into the attention output
``out[*batch, *rows, f]``. The caller declares Q, K, V and the mask; :class:`AttentionRanks`
says how they are indexed. Batch ranks are the ranks Q shares with K (besides ``e``), e.g.
batch b and KV head g; rows are Q's other ranks, e.g. the query head within its group r and
the query position p. So for GQA ``QK[b,g,r,p,m] = sum_e Q[b,g,r,p,e] K[b,m,g,e]`` is a GEMM
batched over (b, g) with M-ranks (r, p), N-rank m and K-rank e.

Nothing here scales by 1/sqrt(head_dim): the caller scales Q. The two matmuls (QK and AV, or
their tiled forms BQK and SLNV) are plain projections with ``mul``/``sum``; the softmax steps
never use a ``mul``/``sum`` pair, so ``mac`` counts exactly QK + AV work in every variant.

The 2-/1-pass variants split the key rank m into (m1, m0), ``m = m1*M0 + m0``; the key
extent must be a multiple of M0 (:func:`key_tile` picks M0 and the padded extent; the
caller pads K/V and masks the padded keys with -inf). Their per-tile max LM is taken over
the raw scores BQK, before the mask: any upper bound of a row's scores stabilises the
softmax exactly, and a tile whose keys are all masked (causal or sliding-window attention,
padding) would otherwise give exp(-inf - -inf). The mask enters every exponent (SLN), so
masked keys weigh exactly 0. The 3-pass variant adds the mask before its max GM (each row
sees at least one key).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from workloads.ir import WorkloadError
from workloads.program import Builder, access

NEG_INF = float("-inf")


@dataclass(frozen=True)
class AttentionRanks:
    """Rank names of attention's operands and the index order of Q, K and V."""

    q: tuple[str, ...] = ("b", "g", "r", "p", "e")
    k: tuple[str, ...] = ("b", "m", "g", "e")
    v: tuple[str, ...] = ("b", "m", "g", "f")
    query: str = "p"  # the mask's first index: the query position
    key: str = "m"  # softmax reduces over it; the mask's second index
    e: str = "e"  # Q/K head dim (contracted by QK)
    f: str = "f"  # V head dim (kept in the output)
    m1: str = "m1"  # key tile index (2-/1-pass)
    m0: str = "m0"  # key within a tile (2-/1-pass)

    @property
    def batch(self) -> tuple[str, ...]:
        """Ranks in Q and K alike (batch and KV heads), in Q's order."""
        return tuple(r for r in self.q if r in self.k and r != self.e)

    @property
    def rows(self) -> tuple[str, ...]:
        """Q's ranks that K lacks (query head within the group, query position), in Q's order."""
        return tuple(r for r in self.q if r not in self.k and r != self.e)


def key_tile(keys: int, m0: int) -> tuple[int, int]:
    """(M0, padded key extent) for splitting ``keys`` into tiles of at most ``m0``.

    M0 = min(m0, keys); the keys are padded up to the next multiple of M0 (the padded keys
    must be masked with -inf; a fully padded tile is never the first, so the running max
    stays finite).
    """
    if m0 < 1 or keys < 1:
        raise WorkloadError(f"key tile: need keys >= 1 and m0 >= 1, got keys={keys}, m0={m0}")
    tile = min(m0, keys)
    return tile, math.ceil(keys / tile) * tile


def _row(ar: AttentionRanks, *tail: str) -> tuple[str, ...]:
    return (*ar.batch, *ar.rows, *tail)


def _blocked(index: tuple[str, ...], key: str, *parts: str) -> tuple[str, ...]:
    """``index`` with the key rank replaced by ``parts`` (the tile ranks, or one expression)."""
    return tuple(p for r in index for p in (parts if r == key else (r,)))


def attention_3pass(bld: Builder, ar: AttentionRanks, q: str, k: str, v: str, out: str,
                    mask: str | None = None, prefix: str = "") -> None:
    """PyTorch/FLAT attention: QK, max, exp, sum, divide, times V (3 passes over the keys)."""
    n = {t: prefix + t for t in ("QK", "QKM", "GM", "SN", "SD", "A")}
    key, f = ar.key, ar.f
    bld.tensor(n["QK"], _row(ar, key))
    bld.tensor(n["GM"], _row(ar))
    bld.tensor(n["SN"], _row(ar, key))
    bld.tensor(n["SD"], _row(ar))
    bld.tensor(n["A"], _row(ar, key))
    bld.tensor(out, _row(ar, f))
    bld.einsum(access(n["QK"], _row(ar, key)), (access(q, ar.q), access(k, ar.k)), "mul", "sum")
    scores = n["QK"]
    if mask is not None:
        bld.tensor(n["QKM"], _row(ar, key))
        bld.einsum(access(n["QKM"], _row(ar, key)),
                   (access(n["QK"], _row(ar, key)), access(mask, (ar.query, key))), "add")
        scores = n["QKM"]
    bld.einsum(access(n["GM"], _row(ar)), access(scores, _row(ar, key)), None, "max")
    bld.einsum(access(n["SN"], _row(ar, key)), (access(scores, _row(ar, key)), access(n["GM"], _row(ar))),
               "exp_sub")
    bld.einsum(access(n["SD"], _row(ar)), access(n["SN"], _row(ar, key)), None, "sum")
    bld.einsum(access(n["A"], _row(ar, key)), (access(n["SN"], _row(ar, key)), access(n["SD"], _row(ar))), "div")
    bld.einsum(access(out, _row(ar, f)), (access(n["A"], _row(ar, key)), access(v, ar.v)), "mul", "sum")


def _split_keys(bld: Builder, ar: AttentionRanks, k: str, v: str, m0: int, prefix: str) -> tuple[str, str, int]:
    """Declare m1/m0 and the tiled copies BK, BV; return their names and M1."""
    keys = bld.extent(ar.key)
    if keys % m0:
        raise WorkloadError(f"{bld.name}: {keys} keys are not a multiple of the tile M0={m0}; pad them")
    m1 = keys // m0
    bld.rank(ar.m1, m1)
    bld.rank(ar.m0, m0)
    split = f"{ar.m1}*{m0}+{ar.m0}"
    bk, bv = prefix + "BK", prefix + "BV"
    bk_index = _blocked(ar.k, ar.key, ar.m1, ar.m0)
    bv_index = _blocked(ar.v, ar.key, ar.m1, ar.m0)
    bld.tensor(bk, bk_index)
    bld.tensor(bv, bv_index)
    bld.einsum(access(bk, bk_index), access(k, _blocked(ar.k, ar.key, split)))
    bld.einsum(access(bv, bv_index), access(v, _blocked(ar.v, ar.key, split)))
    return bk, bv, m1


def _tile_scores(bld: Builder, ar: AttentionRanks, q: str, bk: str, mask: str | None, m0: int,
                 prefix: str) -> tuple[str, str]:
    """BQK = Q x BK per tile, and BQKM = BQK + mask if there is a mask; return both names."""
    tile = _row(ar, ar.m1, ar.m0)
    bk_index = _blocked(ar.k, ar.key, ar.m1, ar.m0)
    bqk = prefix + "BQK"
    bld.tensor(bqk, tile)
    bld.einsum(access(bqk, tile), (access(q, ar.q), access(bk, bk_index)), "mul", "sum")
    if mask is None:
        return bqk, bqk
    bqkm = prefix + "BQKM"
    bld.tensor(bqkm, tile)
    bld.einsum(access(bqkm, tile), (access(bqk, tile), access(mask, (ar.query, f"{ar.m1}*{m0}+{ar.m0}"))), "add")
    return bqk, bqkm


def attention_2pass(bld: Builder, ar: AttentionRanks, q: str, k: str, v: str, out: str,
                    mask: str | None = None, m0: int = 256, prefix: str = "") -> None:
    """TileFlow-style 2-pass attention (fusemax.md's reconstruction), keys split into (m1, m0).

    Pass 1 per tile: BQK, local max LM, SLN = exp(BQK - LM), SLD = sum SLN; then GM = max LM.
    Between passes (per tile, not per key): PRM = exp(LM - GM), SD = sum_m1 SLD*PRM,
    SCL = PRM / SD. Pass 2: A = SLN * SCL, AV = sum A * BV.
    """
    bk, bv, _ = _split_keys(bld, ar, k, v, m0, prefix)
    m1r, m0r = ar.m1, ar.m0
    tile, per_tile, row = _row(ar, m1r, m0r), _row(ar, m1r), _row(ar)
    n = {t: prefix + t for t in ("LM", "SLN", "SLD", "GM", "PRM", "SPD", "SD", "SCL", "A")}
    for name, ranks in (("LM", per_tile), ("SLN", tile), ("SLD", per_tile), ("GM", row), ("PRM", per_tile),
                        ("SPD", per_tile), ("SD", row), ("SCL", per_tile), ("A", tile)):
        bld.tensor(n[name], ranks)
    bld.tensor(out, _row(ar, ar.f))
    raw, scores = _tile_scores(bld, ar, q, bk, mask, m0, prefix)
    bld.einsum(access(n["LM"], per_tile), access(raw, tile), None, "max")
    bld.einsum(access(n["SLN"], tile), (access(scores, tile), access(n["LM"], per_tile)), "exp_sub")
    bld.einsum(access(n["SLD"], per_tile), access(n["SLN"], tile), None, "sum")
    bld.einsum(access(n["GM"], row), access(n["LM"], per_tile), None, "max")
    bld.einsum(access(n["PRM"], per_tile), (access(n["LM"], per_tile), access(n["GM"], row)), "exp_sub")
    bld.einsum(access(n["SPD"], per_tile), (access(n["SLD"], per_tile), access(n["PRM"], per_tile)), "mul")
    bld.einsum(access(n["SD"], row), access(n["SPD"], per_tile), None, "sum")
    bld.einsum(access(n["SCL"], per_tile), (access(n["PRM"], per_tile), access(n["SD"], row)), "div")
    bld.einsum(access(n["A"], tile), (access(n["SLN"], tile), access(n["SCL"], per_tile)), "mul")
    bv_index = _blocked(ar.v, ar.key, m1r, m0r)
    bld.einsum(access(out, _row(ar, ar.f)), (access(n["A"], tile), access(bv, bv_index)), "mul", "sum")


def attention_1pass(bld: Builder, ar: AttentionRanks, q: str, k: str, v: str, out: str,
                    mask: str | None = None, m0: int = 256, prefix: str = "") -> None:
    """FlashAttention-2 / FuseMax 1-pass attention: m1 iterative, carrying RM, RD and RNV.

    Per tile m1: BQK, LM = max, RM[m1+1] = max(RM[m1], LM), SLN = exp(BQK - RM[m1+1]),
    SLD = sum SLN, SLNV = sum SLN * BV, PRM = exp(RM[m1] - RM[m1+1]), RD[m1+1] = SLD + RD*PRM,
    RNV[m1+1] = SLNV + RNV*PRM; after the last tile AV = RNV[M1] / RD[M1].
    """
    bk, bv, m1 = _split_keys(bld, ar, k, v, m0, prefix)
    bld.iterate(ar.m1, m1)
    m1r, m0r, f = ar.m1, ar.m0, ar.f
    tile, per_tile = _row(ar, m1r, m0r), _row(ar, m1r)
    nxt = _row(ar, f"{m1r}+1")
    n = {t: prefix + t for t in ("LM", "RM", "SLN", "SLD", "SLNV", "PRM", "SPD", "RD", "SPNV", "RNV")}
    for name, ranks, initial in (
        ("LM", per_tile, None), ("RM", per_tile, NEG_INF), ("SLN", tile, None), ("SLD", per_tile, None),
        ("SLNV", _row(ar, m1r, f), None), ("PRM", per_tile, None), ("SPD", per_tile, None),
        ("RD", per_tile, 0.0), ("SPNV", _row(ar, m1r, f), None), ("RNV", _row(ar, m1r, f), 0.0),
    ):
        bld.tensor(n[name], ranks, initial=initial)
    bld.tensor(out, _row(ar, f))
    raw, scores = _tile_scores(bld, ar, q, bk, mask, m0, prefix)
    bv_index = _blocked(ar.v, ar.key, m1r, m0r)
    nv, nv_next = _row(ar, m1r, f), _row(ar, f"{m1r}+1", f)
    bld.einsum(access(n["LM"], per_tile), access(raw, tile), None, "max")
    bld.einsum(access(n["RM"], nxt), (access(n["RM"], per_tile), access(n["LM"], per_tile)), "max")
    bld.einsum(access(n["SLN"], tile), (access(scores, tile), access(n["RM"], nxt)), "exp_sub")
    bld.einsum(access(n["SLD"], per_tile), access(n["SLN"], tile), None, "sum")
    bld.einsum(access(n["SLNV"], nv), (access(n["SLN"], tile), access(bv, bv_index)), "mul", "sum")
    bld.einsum(access(n["PRM"], per_tile), (access(n["RM"], per_tile), access(n["RM"], nxt)), "exp_sub")
    bld.einsum(access(n["SPD"], per_tile), (access(n["RD"], per_tile), access(n["PRM"], per_tile)), "mul")
    bld.einsum(access(n["RD"], nxt), (access(n["SLD"], per_tile), access(n["SPD"], per_tile)), "add")
    bld.einsum(access(n["SPNV"], nv), (access(n["RNV"], nv), access(n["PRM"], per_tile)), "mul")
    bld.einsum(access(n["RNV"], nv_next), (access(n["SLNV"], nv), access(n["SPNV"], nv)), "add")
    last = str(m1)
    bld.einsum(access(out, _row(ar, f)),
               (access(n["RNV"], _row(ar, last, f)), access(n["RD"], _row(ar, last))), "div")


VARIANTS: dict[str, Callable[..., None]] = {
    "3pass": attention_3pass,
    "2pass": attention_2pass,
    "1pass": attention_1pass,
}
"""Attention variant name -> the function adding its Einsums."""


def add_attention(variant: str, bld: Builder, ar: AttentionRanks, q: str, k: str, v: str, out: str,
                  mask: str | None = None, m0: int = 256, prefix: str = "") -> None:
    """Add the Einsums of attention ``variant`` ("3pass", "2pass" or "1pass")."""
    if variant not in VARIANTS:
        raise WorkloadError(f"unknown attention variant {variant!r} (known: {', '.join(VARIANTS)})")
    if variant == "3pass":
        attention_3pass(bld, ar, q, k, v, out, mask, prefix)
    else:
        VARIANTS[variant](bld, ar, q, k, v, out, mask, m0, prefix)
