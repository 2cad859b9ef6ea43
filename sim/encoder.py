"""One encoder layer end to end: the linear layers mapped on the 2D array, plus attention.

The linear layers (Q, K, V and output projections, the two FFN matrices) are GEMMs over every
token of the batch; sim.run.evaluate maps each onto the architecture's 2D array and simulates
it. Attention comes from sim.attention_accel with the preset's dataflow. They run one after
the other, so the layer's latency and energy are the sums. Layers are identical, so one layer
stands for the model: speedups and energy ratios are the model's.

A GEMM over T tokens is T / BLOCK_TOKENS identical row blocks; sim.periodic simulates 2-4
blocks and extrapolates exactly (the check is that the counts grow by the same amount per
block), so 64 x 1M tokens costs what 256K tokens do.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.attention_accel import AttentionResult, AttentionShape, simulate_attention
from sim.periodic import extrapolate

BLOCK_TOKENS = 65536
"""Tokens per row block of a linear layer (batch 64 x 1K tokens): the unit sim.periodic extrapolates."""


@dataclass(frozen=True)
class LinearResult:
    """The linear layers of one encoder layer: cycles, energy and DRAM bytes, summed."""

    cycles: int
    energy_pj: float
    dram_bytes: float
    macs: int


@dataclass(frozen=True)
class EncoderLayerResult:
    """One encoder layer: its attention and its linear layers, run one after the other."""

    attention: AttentionResult
    linear: LinearResult
    clock_hz: float

    @property
    def seconds(self) -> float:
        return self.attention.seconds + self.linear.cycles / self.clock_hz

    @property
    def energy_pj(self) -> float:
        return self.attention.total_energy_pj + self.linear.energy_pj


def linear_gemms(model) -> list[tuple[str, int, int, int]]:
    """(name, N, K, count) of the GEMMs of an encoder layer of ``model`` (per token: x @ W[K,N])."""
    d, ffn, inner = model.hidden, model.ffn, model.heads * model.head_dim
    return [("qkv", inner, d, 3), ("out", d, inner, 1), ("ffn_up", ffn, d, 1), ("ffn_down", d, ffn, 1)]


def _gemm_counts(arch, arch_key: str, m: int, n: int, k: int, cache: dict) -> dict:
    """Map and simulate one m x n x k GEMM; ``cache`` keeps answers by architecture and shape."""
    from sim.run import evaluate

    key = (arch_key, m, n, k)
    if key not in cache:
        r = evaluate(arch, f"gemm:{m},{n},{k}")
        cache[key] = {"cycles": r.latency_cycles, "energy": r.energy_pj,
                      "dram": r.traffic_bytes.get("dram", 0.0), "macs": r.macs}
    return cache[key]


def linear_layers(arch, model, tokens: int, cache: dict | None = None) -> LinearResult:
    """Map and simulate the linear layers of one encoder layer over ``tokens`` tokens.

    ``cache``: a dict kept across calls so that GEMM shapes repeated across models, lengths and
    row blocks are simulated once."""
    cache = {} if cache is None else cache
    arch_key = arch.model_dump_json()
    cycles, energy, dram, macs = 0, 0.0, 0.0, 0
    for _, n, k, count in linear_gemms(model):
        if tokens % BLOCK_TOKENS:
            got = _gemm_counts(arch, arch_key, tokens, n, k, cache)
        else:
            got, _ = extrapolate(lambda b, n=n, k=k: _gemm_counts(arch, arch_key, b * BLOCK_TOKENS, n, k, cache),
                                 tokens // BLOCK_TOKENS, start=2)
        cycles += count * int(got["cycles"])
        energy += count * got["energy"]
        dram += count * got["dram"]
        macs += count * int(got["macs"])
    return LinearResult(cycles, energy, dram, macs)


def encoder_layer(arch, model, seq: int, batch: int = 64, cache: dict | None = None,
                  dataflow: str | None = None) -> EncoderLayerResult:
    """Simulate one encoder layer of ``model`` (workloads.zoo) at ``seq`` tokens on ``arch``."""
    from arch.loader import load_arch

    a = load_arch(arch)
    attention = simulate_attention(a, AttentionShape.of_model(model, seq, batch), dataflow)
    linear = linear_layers(a, model, batch * seq, cache)
    return EncoderLayerResult(attention, linear, a.clock_hz(a.unit("pe2d")))
