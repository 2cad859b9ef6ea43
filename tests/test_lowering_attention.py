"""The attention variants on their own: batched GQA shapes, masks, padding, structure and costs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workloads import WorkloadError, attention_1pass, attention_2pass, attention_3pass, interpret, lower, pass_count
from workloads.attention import VARIANTS, AttentionRanks, add_attention, key_tile
from workloads.config import ModelConfig
from workloads.program import Builder

B, G, R, P, E = 2, 2, 3, 5, 4  # batch, KV heads, queries per KV head, queries, head dim


def build(variant, keys, *, mask=False, m0=4, pad_to=None):
    """Attention over Q[b,g,r,p,e], K[b,m,g,e], V[b,m,g,f] (keys padded to ``pad_to``)."""
    bld = Builder(f"att_{variant}")
    M = pad_to or keys
    for r, n in (("b", B), ("g", G), ("r", R), ("p", P), ("e", E), ("f", E), ("m", M)):
        bld.rank(r, n)
    ar = AttentionRanks()
    bld.tensor("Q", ar.q)
    bld.tensor("K", ar.k)
    bld.tensor("V", ar.v)
    if mask:
        bld.tensor("mask", ("p", "m"), "aux")
    add_attention(variant, bld, ar, "Q", "K", "V", "out", "mask" if mask else None, m0)
    return bld.build()


def reference(Q, K, V, allowed):
    """softmax over keys of Q.K per (b, g, r, p), times V; rows of allowed[p, m] mask keys."""
    s = np.einsum("bgrpe,bmge->bgrpm", Q, K)
    s = np.where(allowed, s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return np.einsum("bgrpm,bmgf->bgrpf", a, V)


def data(keys, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, G, R, P, E)), 2 * rng.normal(size=(B, keys, G, E)), rng.normal(size=(B, keys, G, E)))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("keys,m0", [(8, 4), (8, 8), (12, 4), (8, 256)])
def test_unmasked_matches_numpy(variant, keys, m0):
    Q, K, V = data(keys)
    out = interpret(build(variant, keys, m0=min(m0, keys)), {"Q": Q, "K": K, "V": V})["out"]
    want = reference(Q, K, V, np.ones((P, keys), bool))
    assert np.max(np.abs(out - want)) / np.max(np.abs(want)) < 1e-12


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_causal_mask_with_fully_masked_tiles(variant):
    """Queries at positions 0..4 over 12 keys: the last tiles are wholly masked for early queries."""
    keys = 12
    Q, K, V = data(keys, 1)
    allowed = np.arange(keys)[None, :] <= np.arange(P)[:, None] * 2
    mask = np.where(allowed, 0.0, -np.inf)
    out = interpret(build(variant, keys, mask=True), {"Q": Q, "K": K, "V": V, "mask": mask})["out"]
    assert np.all(np.isfinite(out))
    want = reference(Q, K, V, allowed)
    assert np.max(np.abs(out - want)) / np.max(np.abs(want)) < 1e-12


@pytest.mark.parametrize("variant", ["2pass", "1pass"])
def test_padded_keys_are_masked(variant):
    """10 keys padded with zeros to 12 (tiles of 4); the mask hides the padding."""
    keys, padded = 10, 12
    Q, K, V = data(keys, 2)
    Kp = np.concatenate([K, np.zeros((B, 2, G, E))], axis=1)
    Vp = np.concatenate([V, np.zeros((B, 2, G, E))], axis=1)
    mask = np.where(np.arange(padded)[None, :] < keys, 0.0, -np.inf) * np.ones((P, 1))
    out = interpret(build(variant, keys, mask=True, pad_to=padded), {"Q": Q, "K": Kp, "V": Vp, "mask": mask})["out"]
    want = reference(Q, K, V, np.ones((P, keys), bool))
    assert np.max(np.abs(out - want)) / np.max(np.abs(want)) < 1e-12


def test_unpadded_split_is_refused():
    with pytest.raises(WorkloadError, match="not a multiple of the tile"):
        build("1pass", 10, m0=4)
    with pytest.raises(WorkloadError, match="unknown attention variant"):
        build("4pass", 8)


def test_key_tile():
    assert key_tile(8192, 256) == (256, 8192)
    assert key_tile(4097, 256) == (256, 4352)
    assert key_tile(9, 256) == (9, 9)
    with pytest.raises(WorkloadError):
        key_tile(0, 256)


@pytest.mark.parametrize("variant,passes", [("3pass", 3), ("2pass", 2), ("1pass", 1)])
def test_pass_counts_of_the_variants(variant, passes):
    c = build(variant, 8)
    assert pass_count(c, "m") == passes
    if variant != "3pass":
        assert pass_count(c, ("m1", "m0")) == passes


@pytest.mark.parametrize("variant,passes", [("3pass", 3), ("2pass", 2), ("1pass", 1)])
@pytest.mark.parametrize("phase", ["encoder", "prefill", "decode"])
def test_pass_counts_of_lowered_layers(variant, passes, phase):
    cfg = ModelConfig("t", "llama", 32, 2, 4, 2, 8, 48, 50, 64, ffn_type="swiglu", norm="rmsnorm", position="rope")
    layer = lower(cfg, phase, seq=10, kv_len=6, new_tokens=3, attention=variant, m0=4).segment("layer").cascade
    assert pass_count(layer, "m") == passes


@pytest.mark.parametrize("keys,m0", [(16, 4), (12, 4)])
def test_softmax_op_counts(keys, m0):
    """exp and div counts show each variant's structure: 3-pass divides M*P times, 2-pass M1*P,
    1-pass F*P; the tiled variants pay M1*P extra exponentials for the rescaling factors."""
    rows = B * G * R * P
    M1 = keys // m0
    ops = {v: build(v, keys, m0=m0).op_counts() for v in VARIANTS}
    assert ops["3pass"]["exp"] == rows * keys and ops["3pass"]["div"] == rows * keys
    assert ops["2pass"]["exp"] == rows * (keys + M1) and ops["2pass"]["div"] == rows * M1
    assert ops["1pass"]["exp"] == rows * (keys + M1) and ops["1pass"]["div"] == rows * E
    for v in VARIANTS:  # the two matmuls and nothing else
        assert ops[v]["mac"] == 2 * rows * keys * E


def test_gqa_matmuls_batch_over_b_and_g():
    c = build("1pass", 8)
    for name, batch, m_ranks, n_ranks, k_ranks in (("BQK", {"b", "g"}, {"r", "p"}, {"m1", "m0"}, {"e"}),
                                                    ("SLNV", {"b", "g", "m1"}, {"r", "p"}, {"f"}, {"m0"})):
        e = c.einsum(name)
        a, w, o = (set(x.ranks) for x in (*e.inputs, e.output))
        assert a & w & o == batch
        assert (a & o) - w == m_ranks and (w & o) - a == n_ranks and (a & w) - o == k_ranks


def test_scale_is_applied_to_q_once():
    cfg = ModelConfig("t", "llama", 32, 2, 4, 2, 8, 48, 50, 64, ffn_type="swiglu", norm="rmsnorm", position="rope")
    layer = lower(cfg, "prefill", seq=8).segment("layer").cascade
    scales = [(e.name, u.arg) for e in layer.einsums for u in e.unary if u.op == "scale" and "ln" not in e.name]
    assert scales == [("q_scale", 1 / math.sqrt(8))]
    assert layer.einsum("q_scale").output.tensor == "q" and layer.tensor("q").ranks == ("b", "g", "r", "p", "e")


# --- the single-head builders -------------------------------------------------------------------


def _single(Q, K, V):
    s = Q.T @ K
    a = np.exp(s - s.max(1, keepdims=True))
    return (a / a.sum(1, keepdims=True)) @ V.T  # [p, f]


def test_builders_2pass_matches_numpy_and_siblings():
    rng = np.random.default_rng(7)
    E_, F_, P_, M_ = 6, 5, 7, 12
    Q, K, V = rng.normal(size=(E_, P_)), rng.normal(size=(E_, M_)), rng.normal(size=(F_, M_))
    want = _single(Q, K, V)
    two = interpret(attention_2pass(E_, F_, P_, M_, 4), {"Q": Q, "K": K, "V": V})["AV"]
    one = interpret(attention_1pass(E_, F_, P_, M_, 4), {"Q": Q, "K": K, "V": V})["AV"]
    three = interpret(attention_3pass(E_, F_, P_, M_), {"Q": Q, "K": K, "V": V})["AV"]
    assert np.max(np.abs(two - want)) < 1e-12
    assert np.max(np.abs(one.T - want)) < 1e-12 and np.max(np.abs(three.T - want)) < 1e-12
    c = attention_2pass(E_, F_, P_, M_, 4, dtype="fp32")
    assert {t.dtype for t in c.tensors} == {"fp32"} and c.name == "attention_2pass"
    with pytest.raises(WorkloadError, match="not a multiple"):
        attention_2pass(4, 4, 4, 10, 4)
