"""The numpy interpreter against plain numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import (
    UNARY_OPS,
    Cascade,
    Einsum,
    Tensor,
    WorkloadError,
    attention_1pass,
    attention_3pass,
    gemm,
    interpret,
    softmax,
)


def _softmax_ref(x: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def _attention_ref(Q, K, V):
    """AV[f,p] = sum_m softmax_m(QK[m,p]) V[f,m] with QK[m,p] = sum_e Q[e,p] K[e,m]."""
    A = _softmax_ref(Q.T @ K, axis=1)  # [p, m]
    return (A @ V.T).T


# --- GEMM ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (64, 48, 96)])
def test_gemm_matches_numpy(shape):
    M, N, K = shape
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(M, K)), rng.normal(size=(K, N))
    out = interpret(gemm(M, N, K), {"A": A, "B": B})
    np.testing.assert_allclose(out["C"], A @ B, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out["A"], A)  # inputs are in the result too


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_gemm_random_shapes(M, N, K, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(M, K)), rng.normal(size=(K, N))
    np.testing.assert_allclose(interpret(gemm(M, N, K), {"A": A, "B": B})["C"], A @ B, rtol=1e-12, atol=1e-12)


def test_dtype_is_respected():
    out = interpret(gemm(2, 2, 2), {"A": np.eye(2), "B": np.eye(2)}, dtype=np.float32)
    assert out["C"].dtype == np.float32


# --- softmax ---------------------------------------------------------------------------------


def test_softmax_matches_numpy():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(9, 4))  # [m, p]
    out = interpret(softmax(4, 9), {"X": X})
    np.testing.assert_allclose(out["Y"], _softmax_ref(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["Y"].sum(axis=0), 1.0, rtol=1e-12)


def test_softmax_is_stable_for_large_values():
    rng = np.random.default_rng(3)
    X = 1000.0 + 3000.0 * rng.random(size=(16, 5))
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(X) / np.exp(X).sum(axis=0)
    assert not np.isfinite(naive).all()  # the naive form overflows here ...
    Y = interpret(softmax(5, 16), {"X": X})["Y"]
    assert np.isfinite(Y).all()  # ... the cascade does not
    np.testing.assert_allclose(Y, _softmax_ref(X, axis=0), rtol=1e-12)


# --- attention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "E, F, P, M, M0",
    [(8, 6, 5, 12, 4), (16, 8, 7, 64, 16), (4, 4, 3, 8, 8), (3, 2, 2, 5, 1)],
)
def test_attention_1pass_matches_numpy(E, F, P, M, M0):
    rng = np.random.default_rng(E * 100 + M)
    Q, K, V = rng.normal(size=(E, P)), rng.normal(size=(E, M)), rng.normal(size=(F, M))
    out = interpret(attention_1pass(E, F, P, M, M0), {"Q": Q, "K": K, "V": V})
    np.testing.assert_allclose(out["AV"], _attention_ref(Q, K, V), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["RM"][-1], (Q.T @ K).max(axis=1), rtol=1e-12)  # final running max
    assert out["RM"][0].tolist() == [float("-inf")] * P  # the initial value stays at m1 = 0


def test_attention_1pass_with_large_scores():
    rng = np.random.default_rng(4)
    Q, K, V = 30 * rng.normal(size=(8, 4)), 30 * rng.normal(size=(8, 32)), rng.normal(size=(4, 32))
    out = interpret(attention_1pass(8, 4, 4, 32, 8), {"Q": Q, "K": K, "V": V})
    assert np.isfinite(out["AV"]).all()
    np.testing.assert_allclose(out["AV"], _attention_ref(Q, K, V), rtol=1e-9, atol=1e-12)


def test_attention_3pass_matches_numpy():
    rng = np.random.default_rng(5)
    Q, K, V = rng.normal(size=(4, 6)), rng.normal(size=(4, 10)), rng.normal(size=(3, 10))
    out = interpret(attention_3pass(4, 3, 6, 10), {"Q": Q, "K": K, "V": V})
    np.testing.assert_allclose(out["AV"], _attention_ref(Q, K, V), rtol=1e-12)


# --- generic features ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_affine_split_and_merge_is_identity(M1, M0, seed):
    """Y[m1,m0] = X[m1*M0+m0] then Z[m1*M0+m0] = Y[m1,m0] copies X exactly."""
    M = M1 * M0
    c = Cascade(
        "split",
        {"m": M, "m1": M1, "m0": M0},
        [Tensor("X", ("m",)), Tensor("Y", ("m1", "m0")), Tensor("Z", ("m",))],
        [Einsum("Y", "Y[m1,m0]", (f"X[m1*{M0}+m0]",)), Einsum("Z", f"Z[m1*{M0}+m0]", ("Y[m1,m0]",))],
    )
    X = np.random.default_rng(seed).normal(size=M)
    out = interpret(c, {"X": X})
    np.testing.assert_array_equal(out["Y"], X.reshape(M1, M0))
    np.testing.assert_array_equal(out["Z"], X)


def test_running_sum_over_an_iterative_rank():
    R, P = 6, 3
    c = Cascade(
        "cumsum",
        {"r": R, "p": P},
        [Tensor("X", ("r", "p")), Tensor("S", ("r", "p"), initial=0.0), Tensor("T", ("p",))],
        [Einsum("S", "S[r+1,p]", ("S[r,p]", "X[r,p]"), "add"), Einsum("T", "T[p]", (f"S[{R},p]",))],
        iterative={"r": R},
    )
    X = np.random.default_rng(6).normal(size=(R, P))
    out = interpret(c, {"X": X})
    np.testing.assert_allclose(out["S"][1:], np.cumsum(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["T"], X.sum(axis=0), rtol=1e-12)


def test_initialiser_einsum_of_a_running_tensor():
    R, P = 4, 3
    c = Cascade(
        "runmax",
        {"r": R, "p": P},
        [Tensor("X", ("r", "p")), Tensor("I", ("p",)), Tensor("S", ("r", "p"))],
        [Einsum("S", "S[r+1,p]", ("S[r,p]", "X[r,p]"), "max"), Einsum("S0", "S[0,p]", ("I[p]",))],
        iterative={"r": R},
    )
    X, I = np.random.default_rng(7).normal(size=(R, P)), np.full(P, 0.25)
    S = interpret(c, {"X": X, "I": I})["S"]
    np.testing.assert_array_equal(S[0], I)
    np.testing.assert_array_equal(S[1:], np.maximum.accumulate(np.vstack([I, X]), axis=0)[1:])


def test_scalar_output_broadcast_and_non_mac_reduction():
    M, N = 5, 4
    c = Cascade(
        "misc",
        {"m": M, "n": N},
        [Tensor("X", ("m",)), Tensor("W", ("m", "n")), Tensor("S", ()), Tensor("B", ("m", "n")),
         Tensor("T", ("n",))],
        [
            Einsum("S", "S[]", ("X[m]",), None, "sum"),  # scalar output
            Einsum("B", "B[m,n]", ("X[m]",)),  # broadcast along n
            Einsum("T", "T[n]", ("B[m,n]", "W[m,n]"), "add", "max"),  # max-plus "matmul"
        ],
    )
    rng = np.random.default_rng(8)
    X, W = rng.normal(size=M), rng.normal(size=(M, N))
    out = interpret(c, {"X": X, "W": W})
    np.testing.assert_allclose(out["S"], X.sum(), rtol=1e-12)
    np.testing.assert_array_equal(out["B"], np.broadcast_to(X[:, None], (M, N)))
    np.testing.assert_array_equal(out["T"], (X[:, None] + W).max(axis=0))


@pytest.mark.parametrize(
    "op, ref",
    [
        ("mul", np.multiply), ("add", np.add), ("sub", np.subtract), ("max", np.maximum),
        ("min", np.minimum), ("div", np.divide), ("exp_sub", lambda a, b: np.exp(a - b)),
    ],
)
def test_map_ops(op, ref):
    c = Cascade("m", {"m": 6}, [Tensor("A", ("m",)), Tensor("B", ("m",)), Tensor("C", ("m",))],
                [Einsum("C", "C[m]", ("A[m]", "B[m]"), op)])
    rng = np.random.default_rng(9)
    A, B = rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)
    np.testing.assert_allclose(interpret(c, {"A": A, "B": B})["C"], ref(A, B), rtol=1e-12)


_UNARY_REFS = {
    "exp": np.exp,
    "neg": np.negative,
    "recip": lambda x: 1 / x,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "square": np.square,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "scale": lambda x: x * 0.375,
    "add_const": lambda x: x + 0.375,
}


def test_every_unary_op_has_a_reference():
    assert set(_UNARY_REFS) == set(UNARY_OPS)


@pytest.mark.parametrize("op", sorted(UNARY_OPS))
def test_unary_ops(op):
    unary = (op, 0.375) if UNARY_OPS[op] else op
    c = Cascade("u", {"m": 7}, [Tensor("X", ("m",)), Tensor("Y", ("m",))],
                [Einsum("Y", "Y[m]", ("X[m]",), unary=(unary,))])
    X = np.linspace(0.1, 3.0, 7) if op in ("sqrt", "rsqrt", "recip") else np.linspace(-3.0, 3.0, 7)
    np.testing.assert_allclose(interpret(c, {"X": X})["Y"], _UNARY_REFS[op](X), rtol=1e-12, atol=1e-15)


def test_sigmoid_does_not_overflow():
    c = Cascade("u", {"m": 2}, [Tensor("X", ("m",)), Tensor("Y", ("m",))],
                [Einsum("Y", "Y[m]", ("X[m]",), unary=("sigmoid",))])
    with np.errstate(over="raise", invalid="raise"):
        Y = interpret(c, {"X": np.array([-1000.0, 1000.0])})["Y"]
    np.testing.assert_array_equal(Y, [0.0, 1.0])


# --- errors ----------------------------------------------------------------------------------


def test_input_errors():
    c = gemm(2, 3, 4)
    A, B = np.zeros((2, 4)), np.zeros((4, 3))
    with pytest.raises(WorkloadError, match=r"missing input tensor B \(shape \(4, 3\)\)"):
        interpret(c, {"A": A})
    with pytest.raises(WorkloadError, match=r"input B has shape \(3, 4\), expected \(4, 3\)"):
        interpret(c, {"A": A, "B": B.T})
    with pytest.raises(WorkloadError, match="unknown input tensor 'Z'"):
        interpret(c, {"A": A, "B": B, "Z": A})
    with pytest.raises(WorkloadError, match="tensor C is produced by the cascade"):
        interpret(c, {"A": A, "B": B, "C": np.zeros((2, 3))})
