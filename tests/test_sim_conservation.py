"""Finite bandwidth: conservation laws, roofline bound, and model/simulator agreement."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from conftest import make_arch
from mappers import LevelMapping, Mapping, check_mapping, evaluate as model_cost, matmul_view
from mappers.cost import port_rate, transfer_cycles
from sim import evaluate
from sim.engine import simulate
from workloads import gemm

dims = st.integers(1, 200)


def _mapping(M, N, K, tm, tn, tk, order, dataflow):
    return Mapping("C", "array", dataflow, (
        LevelMapping("dram", {"m": M, "n": N, "k": K}, tuple(order)),
        LevelMapping("buffer", {"m": min(tm, M), "n": min(tn, N), "k": min(tk, K)})))


@settings(max_examples=60, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), M=dims, N=dims, K=dims, tm=dims, tn=dims, tk=dims,
       order=st.permutations(["m", "n", "k"]), dram=st.sampled_from(["2 GB/s", "16 GB/s", "64 GB/s"]),
       buf=st.sampled_from(["unbounded", "8 GB/s", "64 GB/s"]), split=st.booleans(), double=st.booleans())
def test_conservation_and_roofline(dataflow, M, N, K, tm, tn, tk, order, dram, buf, split, double):
    arch = make_arch(8, 4, dataflow, dram_bw=dram, buf_bw=buf, split_ports=split, double=double)
    cascade = gemm(M, N, K)
    view = matmul_view(cascade, cascade.einsums[0])
    mapping = _mapping(M, N, K, tm, tn, tk, order, dataflow)
    check_mapping(mapping, view, arch)
    stats = simulate(view, mapping, arch)
    cost = model_cost(view, mapping, arch)

    # MACs executed = MACs in the workload
    assert stats.macs == M * N * K == cascade.op_counts()["mac"]
    # DRAM traffic ≥ compulsory (read A and B once, write C once)
    dram = stats.traffic["dram"]
    assert dram["A"]["read"] >= M * K * 2 and dram["B"]["read"] >= K * N * 2 and dram["C"]["write"] >= M * N * 2
    assert sum(d["read"] + d["write"] for d in dram.values()) >= cascade.compulsory_traffic_bytes()
    # latency ≥ compute cycles and ≥ bytes / bandwidth at every port
    assert stats.latency_cycles >= stats.compute_cycles >= math.ceil(M * N * K / 32)
    for port, busy in stats.port_busy.items():
        assert stats.latency_cycles >= busy
    assert stats.latency_cycles >= cost.bound_cycles
    # the analytical model and the simulator agree on traffic exactly
    assert stats.traffic == cost.traffic
    assert stats.compute_cycles == cost.compute_cycles
    assert stats.stall_free_cycles == cost.stall_free_cycles


@settings(max_examples=40, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), M=st.integers(16, 160), N=st.integers(16, 160),
       K=st.integers(64, 400), order=st.permutations(["m", "n", "k"]), split=st.booleans())
def test_model_equals_simulation_when_nothing_contends(dataflow, M, N, K, order, split):
    """Compute-bound tiles on a fast DRAM: every transfer hides under compute, so the model's
    first-load + compute + last-store is the simulated latency, cycle for cycle."""
    arch = make_arch(4, 4, dataflow, dram_bw="1000 GB/s", split_ports=split)
    cascade = gemm(M, N, K)
    view = matmul_view(cascade, cascade.einsums[0])
    mapping = _mapping(M, N, K, 32, 32, 64, order, dataflow)
    stats = simulate(view, mapping, arch)
    cost = model_cost(view, mapping, arch)
    assert stats.stall_cycles["load"] >= 0
    first = stats.stall_cycles["load"]
    # nothing contends: the only wait is for the very first tile
    rate = port_rate(arch, arch.memories[0], "input", "read", 1e9)[1]
    assert first == transfer_cycles(min(32, M) * min(64, K) * 2, rate) + transfer_cycles(min(64, K) * min(32, N) * 2, rate)
    assert stats.latency_cycles == cost.latency_cycles


def test_three_level_hierarchy_traffic_agrees():
    arch = make_arch(4, 4, "ws", dram_bw="8 GB/s", extra_level="64 KiB")
    cascade = gemm(64, 96, 128)
    view = matmul_view(cascade, cascade.einsums[0])
    mapping = Mapping("C", "array", "ws", (
        LevelMapping("dram", {"m": 64, "n": 96, "k": 128}, ("k", "n", "m")),
        LevelMapping("l2", {"m": 32, "n": 48, "k": 64}, ("m", "k", "n")),
        LevelMapping("buffer", {"m": 16, "n": 16, "k": 32})))
    check_mapping(mapping, view, arch)
    stats = simulate(view, mapping, arch)
    cost = model_cost(view, mapping, arch)
    assert stats.traffic == cost.traffic
    assert stats.macs == 64 * 96 * 128
    # k outermost at DRAM: partial sums of C go back and forth between dram and l2
    assert stats.traffic["dram"]["C"]["read"] == 64 * 96 * 2 * (2 - 1)


def test_energy_adds_up_from_actions():
    arch = make_arch(8, 8, "os", dram_bw="16 GB/s", capacity="16 KiB")
    r = evaluate(arch, gemm(64, 64, 64))
    t = r.traffic_by_tensor
    dram_words = sum(d["read"] for d in t["dram"].values()) / 2
    assert math.isclose(r.energy_breakdown["dram.read"], dram_words * 100)
    assert math.isclose(r.energy_breakdown["array.mac"], 64 ** 3 * 1.0)
    assert math.isclose(r.energy_pj, sum(r.energy_breakdown.values()))


def test_deterministic():
    arch = make_arch(8, 8, "ws", dram_bw="4 GB/s", capacity="8 KiB")
    a = evaluate(arch, gemm(100, 60, 90)).to_dict()
    b = evaluate(arch, gemm(100, 60, 90)).to_dict()
    assert a == b
