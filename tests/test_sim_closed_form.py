"""With unbounded bandwidth the simulated latency is exactly the closed-form stall-free count."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from conftest import make_arch
from mappers import LevelMapping, Mapping, default_mapping, gemm_cycles, matmul_view
from sim import evaluate
from workloads import gemm


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def scalesim_cycles(dataflow: str, R: int, C: int, M: int, N: int, K: int) -> int:
    """SCALE-Sim's table, written out independently of mappers.systolic (without its −1)."""
    if dataflow == "os":
        return ceil_div(M, R) * ceil_div(N, C) * (K + R + C - 2)
    if dataflow == "ws":
        return ceil_div(K, R) * ceil_div(N, C) * (M + 2 * R + C - 2)
    return ceil_div(K, R) * ceil_div(M, C) * (N + 2 * R + C - 2)


def test_scalesim_4x4x4_example():
    # systolic.md: a 4×4×4 GEMM on a 4×4 OS array is 10 cycles (SCALE-Sim prints 9).
    assert gemm_cycles("os", 4, 4, 4, 4, 4) == 10
    arch = make_arch(4, 4, "os")
    assert evaluate(arch, gemm(4, 4, 4)).latency_cycles == 10


dims = st.integers(1, 300)
arrays = st.sampled_from([1, 2, 3, 4, 8, 16, 32, 128])


@settings(max_examples=60, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), R=arrays, C=arrays, M=dims, N=dims, K=dims)
def test_unbounded_bandwidth_latency_equals_closed_form(dataflow, R, C, M, N, K):
    arch = make_arch(R, C, dataflow)  # unbounded capacity and bandwidth: the whole GEMM is one tile
    result = evaluate(arch, gemm(M, N, K))
    assert result.latency_cycles == scalesim_cycles(dataflow, R, C, M, N, K)
    assert result.macs == M * N * K


@settings(max_examples=40, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), R=arrays, C=arrays, M=dims, N=dims, K=dims,
       tm=dims, tn=dims, tk=dims, order=st.permutations(["m", "n", "k"]))
def test_tiled_unbounded_latency_is_sum_of_tile_closed_forms(dataflow, R, C, M, N, K, tm, tn, tk, order):
    """Any tiling: latency = Σ over tiles of the tile's closed form (tiles run back to back)."""
    tm, tn, tk = min(tm, M), min(tn, N), min(tk, K)
    arch = make_arch(R, C, dataflow)
    cascade = gemm(M, N, K)
    matmul_view(cascade, cascade.einsums[0])  # the cascade is a plain GEMM (raises otherwise)
    mapping = Mapping("C", "array", dataflow, (
        LevelMapping("dram", {"m": M, "n": N, "k": K}, tuple(order)),
        LevelMapping("buffer", {"m": tm, "n": tn, "k": tk})))
    expected = sum(scalesim_cycles(dataflow, R, C, min(tm, M - i), min(tn, N - j), min(tk, K - l))
                   for i in range(0, M, tm) for j in range(0, N, tn) for l in range(0, K, tk))
    result = evaluate(arch, cascade, mappings=mapping)
    assert result.latency_cycles == expected
    assert result.einsums[0].model.latency_cycles == expected


def test_overlapped_folds_pay_fill_and_drain_once():
    arch = make_arch(8, 8, "os", overlap=True)
    # 4 folds of T = 32: 4·32 + (8 + 8 − 2)
    assert evaluate(arch, gemm(16, 16, 32)).latency_cycles == 4 * 32 + 14


def test_default_mapper_keeps_whole_gemm_when_everything_fits():
    arch = make_arch(16, 16, "ws")
    cascade = gemm(100, 200, 300)
    mapping = default_mapping(matmul_view(cascade, cascade.einsums[0]), arch)
    assert mapping.compute_tile == {"m": 100, "n": 200, "k": 300}
