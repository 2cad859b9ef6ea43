"""Ready-made cascades: GEMM, stable softmax, attention (3-, 2- and FuseMax's 1-pass), GEMM lists.

Rank and tensor names follow the FuseMax paper (see shared/reference/fusemax.md): E = Q/K
embedding, F = V embedding, P = queries, M = keys/values (softmax reduces over M).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from workloads.cascade import Cascade
from workloads.ir import Einsum, Tensor, WorkloadError


def _positive(what: str, **sizes: object) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WorkloadError(f"{what}: {key} must be a positive integer, got {value!r}")


def _identifier(name: object) -> str:
    """``name`` with every character outside [A-Za-z0-9_] replaced by _, never starting with a digit."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", str(name).strip())
    return text if text and not text[0].isdigit() else f"l_{text}"


def gemm(M: int, N: int, K: int, dtype: str = "fp16", name: str = "gemm") -> Cascade:
    """``C[m,n] = sum_k A[m,k] * B[k,n]``: one Einsum named C."""
    _positive(name, M=M, N=N, K=K)
    return Cascade(
        name,
        {"m": M, "n": N, "k": K},
        [Tensor("A", ("m", "k"), dtype), Tensor("B", ("k", "n"), dtype), Tensor("C", ("m", "n"), dtype)],
        [Einsum("C", "C[m,n]", ("A[m,k]", "B[k,n]"), "mul", "sum")],
    )


def softmax(P: int, M: int, dtype: str = "fp16", name: str = "softmax") -> Cascade:
    """Numerically stable softmax over m of ``X[m,p]`` into ``Y[m,p]`` (subtracts the max first)."""
    _positive(name, P=P, M=M)
    return Cascade(
        name,
        {"m": M, "p": P},
        [
            Tensor("X", ("m", "p"), dtype),
            Tensor("GM", ("p",), dtype),
            Tensor("SN", ("m", "p"), dtype),
            Tensor("SD", ("p",), dtype),
            Tensor("Y", ("m", "p"), dtype),
        ],
        [
            Einsum("GM", "GM[p]", ("X[m,p]",), None, "max"),
            Einsum("SN", "SN[m,p]", ("X[m,p]", "GM[p]"), "exp_sub"),
            Einsum("SD", "SD[p]", ("SN[m,p]",), None, "sum"),
            Einsum("Y", "Y[m,p]", ("SN[m,p]", "SD[p]"), "div"),
        ],
    )


def attention_3pass(E: int, F: int, P: int, M: int, dtype: str = "fp16",
                    name: str = "attention_3pass") -> Cascade:
    """The 3-pass attention cascade (PyTorch, FLAT): QK, max, exp, sum, divide, then times V."""
    _positive(name, E=E, F=F, P=P, M=M)
    shapes = {"Q": "ep", "K": "em", "V": "fm", "QK": "mp", "GM": "p", "SN": "mp", "SD": "p",
              "A": "mp", "AV": "fp"}
    return Cascade(
        name,
        {"e": E, "f": F, "p": P, "m": M},
        [Tensor(t, tuple(r), dtype) for t, r in shapes.items()],
        [
            Einsum("QK", "QK[m,p]", ("Q[e,p]", "K[e,m]"), "mul", "sum"),
            Einsum("GM", "GM[p]", ("QK[m,p]",), None, "max"),
            Einsum("SN", "SN[m,p]", ("QK[m,p]", "GM[p]"), "exp_sub"),
            Einsum("SD", "SD[p]", ("SN[m,p]",), None, "sum"),
            Einsum("A", "A[m,p]", ("SN[m,p]", "SD[p]"), "div"),
            Einsum("AV", "AV[f,p]", ("A[m,p]", "V[f,m]"), "mul", "sum"),
        ],
    )


def attention_1pass(E: int, F: int, P: int, M: int, M0: int, dtype: str = "fp16",
                    name: str = "attention_1pass") -> Cascade:
    """FlashAttention-2's 1-pass cascade as FuseMax runs it: M split into (M1, M0), m1 iterative.

    RM (running max, initial -inf), RD (running denominator, 0) and RNV (running numerator
    times V, 0) carry across iterations; AV divides RNV by RD after the last one.
    """
    _positive(name, E=E, F=F, P=P, M=M, M0=M0)
    if M % M0:
        raise WorkloadError(f"{name}: M={M} is not a multiple of M0={M0}")
    M1 = M // M0
    shapes = {
        "Q": "e p", "K": "e m", "V": "f m", "BK": "e m1 m0", "BV": "f m1 m0",
        "BQK": "m1 m0 p", "LM": "m1 p", "RM": "m1 p", "SLN": "m1 m0 p", "SLD": "m1 p",
        "SLNV": "f m1 p", "PRM": "m1 p", "SPD": "m1 p", "RD": "m1 p", "SPNV": "f m1 p",
        "RNV": "f m1 p", "AV": "f p",
    }
    initial = {"RM": float("-inf"), "RD": 0.0, "RNV": 0.0}
    return Cascade(
        name,
        {"e": E, "f": F, "p": P, "m": M, "m1": M1, "m0": M0},
        [Tensor(t, tuple(r.split()), dtype, initial.get(t)) for t, r in shapes.items()],
        [
            Einsum("BK", "BK[e,m1,m0]", (f"K[e,m1*{M0}+m0]",)),
            Einsum("BV", "BV[f,m1,m0]", (f"V[f,m1*{M0}+m0]",)),
            Einsum("BQK", "BQK[m1,m0,p]", ("Q[e,p]", "BK[e,m1,m0]"), "mul", "sum"),
            Einsum("LM", "LM[m1,p]", ("BQK[m1,m0,p]",), None, "max"),
            Einsum("RM", "RM[m1+1,p]", ("RM[m1,p]", "LM[m1,p]"), "max"),
            Einsum("SLN", "SLN[m1,m0,p]", ("BQK[m1,m0,p]", "RM[m1+1,p]"), "exp_sub"),
            Einsum("SLD", "SLD[m1,p]", ("SLN[m1,m0,p]",), None, "sum"),
            Einsum("SLNV", "SLNV[f,m1,p]", ("SLN[m1,m0,p]", "BV[f,m1,m0]"), "mul", "sum"),
            Einsum("PRM", "PRM[m1,p]", ("RM[m1,p]", "RM[m1+1,p]"), "exp_sub"),
            Einsum("SPD", "SPD[m1,p]", ("RD[m1,p]", "PRM[m1,p]"), "mul"),
            Einsum("RD", "RD[m1+1,p]", ("SLD[m1,p]", "SPD[m1,p]"), "add"),
            Einsum("SPNV", "SPNV[f,m1,p]", ("RNV[f,m1,p]", "PRM[m1,p]"), "mul"),
            Einsum("RNV", "RNV[f,m1+1,p]", ("SLNV[f,m1,p]", "SPNV[f,m1,p]"), "add"),
            Einsum("AV", "AV[f,p]", (f"RNV[f,{M1},p]", f"RD[{M1},p]"), "div"),
        ],
        iterative={"m1": M1},
    )


def attention_2pass(E: int, F: int, P: int, M: int, M0: int, dtype: str = "fp16",
                    name: str = "attention_2pass") -> Cascade:
    """TileFlow's 2-pass cascade (fusemax.md's reconstruction) on ``Q[e,p]``, ``K[e,m]``, ``V[f,m]``.

    M is split into (M1, M0); pass 1 finds per-tile maxima and sums, pass 2 rescales and
    multiplies by V. Built by :func:`workloads.attention.attention_2pass`, so its
    intermediates are laid out rows first (``BQK[p,m1,m0]``); the result is ``AV[p,f]``.
    """
    from workloads.attention import AttentionRanks
    from workloads.attention import attention_2pass as add_2pass
    from workloads.program import Builder, Dtypes

    _positive(name, E=E, F=F, P=P, M=M, M0=M0)
    if M % M0:
        raise WorkloadError(f"{name}: M={M} is not a multiple of M0={M0}")
    bld = Builder(name, Dtypes(activations=dtype))
    for rank, extent in (("e", E), ("f", F), ("p", P), ("m", M)):
        bld.rank(rank, extent)
    ar = AttentionRanks(q=("e", "p"), k=("e", "m"), v=("f", "m"))
    for t, ranks in (("Q", ar.q), ("K", ar.k), ("V", ar.v)):
        bld.tensor(t, ranks)
    add_2pass(bld, ar, "Q", "K", "V", "AV", None, M0)
    return bld.build()


def gemms_from_list(layers: Iterable[tuple[str, int, int, int]], dtype: str = "fp16",
                    name: str = "gemms") -> Cascade:
    """Independent GEMMs in one cascade; layer ``l0`` gets tensors l0_A/l0_B/l0_C, ranks l0_m/n/k.

    The Einsum of a layer is named after it; a name that is not an identifier (``conv-1``,
    ``1x1``) is made one (``conv_1``, ``l_1x1``), as topology files from the wild need.
    """
    ranks: dict[str, int] = {}
    tensors: list[Tensor] = []
    einsums: list[Einsum] = []
    seen: set[str] = set()
    for layer in layers:
        try:
            lname, M, N, K = layer
        except (TypeError, ValueError):
            raise WorkloadError(f"{name}: each layer must be (name, M, N, K), got {layer!r}") from None
        lname = _identifier(lname)
        if lname in seen:
            raise WorkloadError(f"{name}: layer name {lname} is used twice")
        seen.add(lname)
        _positive(f"{name}: layer {lname}", M=M, N=N, K=K)
        m, n, k = f"{lname}_m", f"{lname}_n", f"{lname}_k"
        a, b, c = f"{lname}_A", f"{lname}_B", f"{lname}_C"
        ranks.update({m: M, n: N, k: K})
        tensors += [Tensor(a, (m, k), dtype), Tensor(b, (k, n), dtype), Tensor(c, (m, n), dtype)]
        einsums.append(Einsum(lname, f"{c}[{m},{n}]", (f"{a}[{m},{k}]", f"{b}[{k},{n}]"), "mul", "sum"))
    if not einsums:
        raise WorkloadError(f"{name}: the layer list is empty")
    return Cascade(name, ranks, tensors, einsums)
