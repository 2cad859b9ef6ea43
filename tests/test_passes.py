"""Pass counts and the minimum on-chip footprint they imply."""

from __future__ import annotations

import pytest

from workloads import (
    Cascade,
    Einsum,
    Tensor,
    WorkloadError,
    attention_1pass,
    attention_2pass,
    attention_3pass,
    gemm,
    lower,
    min_footprint,
    pass_count,
    softmax,
)
from workloads.config import ModelConfig
from workloads.passes import analyse, fiber_ranks

LLAMA = ModelConfig("t", "llama", 32, 2, 4, 2, 8, 48, 50, 4096, ffn_type="swiglu", norm="rmsnorm", position="rope")
GPT2 = ModelConfig("g", "gpt2", 32, 2, 4, 4, 8, 48, 50, 4096, bias=True)


def test_builders_give_3_2_1():
    assert pass_count(attention_3pass(8, 8, 5, 16), "m") == 3
    assert pass_count(attention_2pass(8, 8, 5, 16, 4), "m") == 2
    assert pass_count(attention_1pass(8, 8, 5, 16, 4), "m") == 1


def test_split_fiber_is_found_or_given():
    c = attention_1pass(8, 8, 5, 16, 4)
    assert fiber_ranks(c, "m") == ("m1", "m0")
    assert pass_count(c, ("m1", "m0")) == 1
    assert fiber_ranks(attention_3pass(8, 8, 5, 16), "m") == ("m",)


def test_softmax_is_two_passes_and_gemm_one():
    """Max, then exp-and-sum, then divide: the divide re-reads SN after SD, a 3rd pass."""
    assert pass_count(softmax(4, 16), "m") == 3
    assert pass_count(gemm(4, 4, 4), "k") == 1


def test_norms_over_the_hidden_dim():
    """LayerNorm: mean, then variance of the centred values, then normalise (3 passes over d);
    RMSNorm: mean square, then normalise (2). The LM head reads the normalised row: same pass."""
    assert pass_count(lower(GPT2, "prefill", seq=8).segment("head").cascade, "d") == 3
    assert pass_count(lower(LLAMA, "prefill", seq=8).segment("head").cascade, "d") == 2


def test_stages_of_3pass():
    pa = analyse(attention_3pass(8, 8, 5, 16), "m")
    assert pa.stage == {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}
    assert pa.avail["GM"] == 1.5 and pa.avail["SD"] == 2.5 and pa.avail["AV"] == 3.5


def test_stages_of_2pass_put_the_rescale_between_passes():
    pa = analyse(attention_2pass(8, 8, 5, 16, 4), "m")
    assert pa.stage["PRM"] == 1.5 and pa.stage["SD"] == 1.5 and pa.stage["SCL"] == 1.5
    assert pa.stage["A"] == 2 and pa.stage["LM"] == 1


def test_errors():
    with pytest.raises(WorkloadError, match="no rank 'z'"):
        pass_count(attention_3pass(8, 8, 5, 16), "z")
    unsplit = Cascade("u", {"u": 3, "n": 2}, [Tensor("X", ("u",)), Tensor("Y", ("n",))],
                      [Einsum("Y", "Y[n]", "X[n]")])  # no Einsum iterates u, nothing reads it split
    with pytest.raises(WorkloadError, match="cannot tell the fiber of rank 'u'"):
        pass_count(unsplit, "u")


# --- footprints ----------------------------------------------------------------------------------


def test_footprint_of_builders_exactly():
    """fp16, E = F = 8, per query p. 3-pass: QK (then SN) held whole, M; plus Q, K, V, AV
    tiles and the scalars GM, SD, A: 2E + 2F + 3. 1-pass: BK and BV tiles (M0 x E, M0 x F),
    BQK and SLN tiles (M0 each), Q (E), SLNV, SPNV, RNV (F each) and six running/per-tile
    scalars (LM, RM, SLD, PRM, SPD, RD)."""
    E = F = 8
    M, M0 = 16, 4
    assert min_footprint(attention_3pass(E, F, 5, M), "m") == 2 * (M + 2 * E + 2 * F + 3)
    one = M0 * (E + F + 2) + E + 3 * F + 6
    assert min_footprint(attention_1pass(E, F, 5, M, M0), "m") == 2 * one


def test_footprint_scaling_with_the_fiber():
    def grow(build):
        return build(2 * M) - build(M)

    for M in (16, 64, 256):
        assert grow(lambda n: min_footprint(attention_3pass(8, 8, 5, n), "m")) == 2 * M  # one more fp16 row
        assert grow(lambda n: min_footprint(attention_1pass(8, 8, 5, n, 4), "m")) == 0
        # 2-pass holds SLN (M) and LM, SLD, SCL (M1 = M/4 each) between its passes
        assert grow(lambda n: min_footprint(attention_2pass(8, 8, 5, n, 4), "m")) == 2 * (M + 3 * M // 4)


def test_footprint_rows_can_be_widened():
    """Holding every query of the row set at once multiplies the held fibers by P."""
    c = attention_3pass(8, 8, 5, 16)
    assert min_footprint(c, "m", rows=()) > 5 * 2 * 16


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_footprint_of_lowered_layers(phase):
    def fp(variant, n):
        kw = dict(seq=n) if phase == "prefill" else dict(kv_len=n - 1)
        return min_footprint(lower(LLAMA, phase, attention=variant, m0=256, **kw).segment("layer").cascade, "m")

    assert fp("1pass", 1024) == fp("1pass", 4096)  # a tile plus running values
    assert fp("3pass", 4096) - fp("3pass", 1024) == 2 * 3072  # the QK row (bf16) grows with the keys
    assert fp("2pass", 4096) > fp("2pass", 1024) > fp("1pass", 1024)
