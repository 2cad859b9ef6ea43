"""Transformer lowering against a plain numpy Transformer, plus its cost accounting.

The reference below is written the way a model file would be (x @ Wq, reshape into heads,
repeat K/V over the query group, softmax with a causal mask, ...), independently of the
cascades; weights are random float64 in Hugging Face's layouts and reshaped into the
lowering's documented tensor layouts.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from workloads import Cascade, Dtypes, Einsum, Program, Tensor, WorkloadError, interpret, lower
from workloads.config import ModelConfig
from workloads.transformer import attention_mask, moe_routing, rope_tables, token_mask

EPS = 1e-5
RTOL = 1e-9


# --- configs ----------------------------------------------------------------------------------


def llama(**kw) -> ModelConfig:
    base = dict(name="tiny-llama", family="llama", hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, ffn=48,
                vocab=50, max_seq=64, ffn_type="swiglu", norm="rmsnorm", position="rope", rope_theta=10000.0)
    base.update(kw)
    return ModelConfig(**base)


def gpt2(**kw) -> ModelConfig:
    base = dict(name="tiny-gpt2", family="gpt2", hidden=32, layers=2, heads=4, kv_heads=4, head_dim=8, ffn=48,
                vocab=50, max_seq=64, ffn_type="gelu", norm="layernorm", position="learned", bias=True,
                tie_embeddings=True)
    base.update(kw)
    return ModelConfig(**base)


def bert(**kw) -> ModelConfig:
    base = dict(name="tiny-bert", family="bert", hidden=32, layers=2, heads=4, kv_heads=4, head_dim=8, ffn=48,
                vocab=50, max_seq=64, ffn_type="gelu", norm="layernorm", position="learned", bias=True,
                causal=False, type_vocab=2)
    base.update(kw)
    return ModelConfig(**base)


def mixtral(**kw) -> ModelConfig:
    return llama(name="tiny-mixtral", family="mixtral", experts=4, top_k=2, **kw)


# --- the plain numpy reference ------------------------------------------------------------------


def ref_norm(cfg, x, g, b=None):
    if cfg.norm == "layernorm":
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + EPS) * g + b
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + EPS) * g


def ref_rope(x, positions, theta):
    """Hugging Face's apply_rotary_pos_emb on x[b, s, heads, hd]."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2) / hd))
    freqs = np.outer(positions, inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[None, :, None, :], np.sin(emb)[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    rotated = np.concatenate([-x2, x1], axis=-1)
    return x * cos + rotated * sin


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1 + np.exp(-x))


def ref_ffn(cfg, W, h):
    if cfg.ffn_type == "gelu":
        return gelu(h @ W["W1"] + W.get("b1", 0)) @ W["W2"] + W.get("b2", 0)
    return (silu(h @ W["Wg"]) * (h @ W["Wu"])) @ W["Wd"]


def ref_moe(cfg, W, h):
    """Top-k routing per token, softmax over the chosen logits, weighted sum of expert FFNs."""
    logits = h @ W["Wr"]
    out = np.zeros_like(h)
    for b in range(h.shape[0]):
        for s in range(h.shape[1]):
            top = np.argsort(-logits[b, s], kind="stable")[: cfg.top_k]
            w = np.exp(logits[b, s, top] - logits[b, s, top].max())
            w /= w.sum()
            for weight, x in zip(w, top):
                out[b, s] += weight * ref_ffn(cfg, W["experts"][x], h[b, s])
    return out, logits


def ref_attention(cfg, q, k, v, allowed):
    """q[b,s,H,hd], k/v[b,t,KV,hd]; allowed[s,t] says which keys each query sees."""
    group = cfg.heads // cfg.kv_heads
    k = np.repeat(k, group, axis=2)
    v = np.repeat(v, group, axis=2)
    scores = np.einsum("bshd,bthd->bhst", q, k) / math.sqrt(cfg.head_dim)
    scores = np.where(allowed[None, None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhst,bthd->bshd", p, v)


def ref_layer(cfg, W, x, *, past=0, k_past=None, v_past=None, causal=True):
    """One layer on x[b,s,D] whose tokens sit at positions past..past+s-1. Returns y, k, v, router logits."""
    B, S, _ = x.shape
    H, KV, hd = cfg.heads, cfg.kv_heads, cfg.head_dim
    post = cfg.family == "bert"
    h = x if post else ref_norm(cfg, x, W["ln1_g"], W.get("ln1_b"))
    q = (h @ W["Wq"] + W.get("bq", 0)).reshape(B, S, H, hd)
    k = (h @ W["Wk"] + W.get("bk", 0)).reshape(B, S, KV, hd)
    v = (h @ W["Wv"] + W.get("bv", 0)).reshape(B, S, KV, hd)
    positions = np.arange(past, past + S)
    if cfg.position == "rope":
        q, k = ref_rope(q, positions, cfg.rope_theta), ref_rope(k, positions, cfg.rope_theta)
    keys = k if k_past is None else np.concatenate([k_past, k], axis=1)
    values = v if v_past is None else np.concatenate([v_past, v], axis=1)
    key_pos = np.arange(keys.shape[1])
    allowed = np.ones((S, keys.shape[1]), bool)
    if causal:
        allowed = key_pos[None, :] <= positions[:, None]
        if cfg.sliding_window:
            allowed &= key_pos[None, :] > positions[:, None] - cfg.sliding_window
    att = ref_attention(cfg, q, keys, values, allowed).reshape(B, S, H * hd)
    x1 = x + att @ W["Wo"] + W.get("bo", 0)
    if post:
        x1 = ref_norm(cfg, x1, W["ln1_g"], W.get("ln1_b"))
        h2 = x1
    else:
        h2 = ref_norm(cfg, x1, W["ln2_g"], W.get("ln2_b"))
    logits = None
    if cfg.experts > 1:
        f, logits = ref_moe(cfg, W, h2)
    else:
        f = ref_ffn(cfg, W, h2)
    y = x1 + f
    if post:
        y = ref_norm(cfg, y, W["ln2_g"], W.get("ln2_b"))
    return y, k, v, logits


def ref_embed(cfg, E, ids, types=None, past=0):
    x = E["wte"][ids]
    if cfg.position == "learned":
        x = x + E["wpe"][past: past + ids.shape[1]][None]
    if cfg.type_vocab:
        x = x + E["wtt"][types]
    if cfg.family == "bert":
        x = ref_norm(cfg, x, E["ln_emb_g"], E["ln_emb_b"])
    return x


def ref_head(cfg, E, x):
    h = x if cfg.family == "bert" else ref_norm(cfg, x, E["lnf_g"], E.get("lnf_b"))
    return h @ (E["wte"].T if cfg.tie_embeddings else E["w_lm"])


# --- random weights and their cascade layouts ---------------------------------------------------


def layer_weights(cfg, rng):
    D, H, KV, hd, F = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn
    n = lambda *s: rng.normal(size=s) / math.sqrt(s[0])  # noqa: E731
    W = {"Wq": n(D, H * hd), "Wk": n(D, KV * hd), "Wv": n(D, KV * hd), "Wo": n(H * hd, D)}
    for ln in ("ln1", "ln2"):
        W[f"{ln}_g"] = 1 + 0.1 * rng.normal(size=D)
        if cfg.norm == "layernorm":
            W[f"{ln}_b"] = 0.1 * rng.normal(size=D)
    if cfg.bias:
        W.update(bq=0.1 * rng.normal(size=H * hd), bk=0.1 * rng.normal(size=KV * hd),
                 bv=0.1 * rng.normal(size=KV * hd), bo=0.1 * rng.normal(size=D))

    def ffn():
        if cfg.ffn_type == "gelu":
            f = {"W1": n(D, F), "W2": n(F, D)}
            if cfg.bias:
                f.update(b1=0.1 * rng.normal(size=F), b2=0.1 * rng.normal(size=D))
            return f
        return {"Wg": n(D, F), "Wu": n(D, F), "Wd": n(F, D)}

    if cfg.experts > 1:
        W["Wr"] = n(D, cfg.experts)
        W["experts"] = [ffn() for _ in range(cfg.experts)]
    else:
        W.update(ffn())
    return W


def ffn_inputs(cfg, f, lead=None):
    names = {"W1": "w_up", "W2": "w_down", "b1": "b_up", "b2": "b_down", "Wg": "w_gate", "Wu": "w_up",
             "Wd": "w_down"}
    if lead is None:
        return {names[k]: v for k, v in f.items()}
    return {names[k]: np.stack([e[k] for e in lead]) for k in lead[0]}


def layer_inputs(cfg, prog, W, x, *, past=0, k_past=None, v_past=None, router_logits=None):
    """The layer cascade's inputs for reference weights W (Hugging Face layouts)."""
    D, KV, G, hd = cfg.hidden, cfg.kv_heads, cfg.group, cfg.head_dim
    S = x.shape[1]
    c = prog.segment("layer").cascade
    inp = {"x": x, "wq": W["Wq"].reshape(D, KV, G, hd), "wk": W["Wk"].reshape(D, KV, hd),
           "wv": W["Wv"].reshape(D, KV, hd), "wo": W["Wo"].reshape(KV, G, hd, D)}
    for key in ("ln1_g", "ln1_b", "ln2_g", "ln2_b"):
        if key in W:
            inp[key] = W[key]
    if cfg.bias:
        inp.update(bq=W["bq"].reshape(KV, G, hd), bk=W["bk"].reshape(KV, hd), bv=W["bv"].reshape(KV, hd),
                   bo=W["bo"])
    if cfg.position == "rope":
        inp["rope_cos"], inp["rope_sin"] = rope_tables(hd, np.arange(past, past + S), cfg.rope_theta)
    if "mask" in c.inputs:
        inp["mask"] = attention_mask(prog.meta["phase"], S, prog.meta["keys_padded"], past, cfg.sliding_window)
    if k_past is not None:
        inp["k_past"], inp["v_past"] = k_past, v_past
    if cfg.experts > 1:
        inp["w_router"] = W["Wr"]
        inp.update(ffn_inputs(cfg, None, W["experts"]))
        inp.update(moe_routing(router_logits, cfg.top_k, prog.meta["capacity"]))
    else:
        inp.update(ffn_inputs(cfg, {k: W[k] for k in ("W1", "W2", "b1", "b2", "Wg", "Wu", "Wd") if k in W}))
    assert set(c.inputs) <= set(inp), set(c.inputs) - set(inp)
    return {name: inp[name] for name in c.inputs}


def embed_weights(cfg, rng):
    D = cfg.hidden
    E = {"wte": rng.normal(size=(cfg.vocab, D))}
    if cfg.position == "learned":
        E["wpe"] = 0.5 * rng.normal(size=(cfg.max_seq, D))
    if cfg.type_vocab:
        E["wtt"] = 0.5 * rng.normal(size=(cfg.type_vocab, D))
    if cfg.family == "bert":
        E["ln_emb_g"], E["ln_emb_b"] = 1 + 0.1 * rng.normal(size=D), 0.1 * rng.normal(size=D)
    else:
        E["lnf_g"] = 1 + 0.1 * rng.normal(size=D)
        if cfg.norm == "layernorm":
            E["lnf_b"] = 0.1 * rng.normal(size=D)
    if not cfg.tie_embeddings:
        E["w_lm"] = rng.normal(size=(D, cfg.vocab)) / math.sqrt(D)
    return E


def segment_inputs(cfg, cascade, E, ids, types=None):
    inp = dict(E, tokens=token_mask(ids, cfg.vocab))
    if types is not None:
        inp["token_types"] = token_mask(types, cfg.type_vocab)
    return {name: inp[name] for name in cascade.inputs if name != "x"}


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def run_model(cfg, prog, E, layers, ids, types=None, past=0, caches=None):
    """Run embed, the layer cascade once per layer (its own weights), head; return outputs."""
    out = interpret(prog.segment("embed").cascade, segment_inputs(cfg, prog.segment("embed").cascade, E, ids, types))
    h = out["y"]
    layer_outs = []
    for i, W in enumerate(layers):
        ref_y, *_, logits = ref_layer(cfg, W, h, past=past, causal=prog.meta["phase"] != "encoder",
                                      k_past=None if caches is None else caches[i][0],
                                      v_past=None if caches is None else caches[i][1])
        kp = {} if caches is None else {"k_past": caches[i][0], "v_past": caches[i][1]}
        res = interpret(prog.segment("layer").cascade,
                        layer_inputs(cfg, prog, W, h, past=past, router_logits=logits,
                                     k_past=kp.get("k_past"), v_past=kp.get("v_past")))
        layer_outs.append(res)
        h = res["y"]
    result = {"hidden": h, "layers": layer_outs}
    if "head" in [s.name for s in prog.segments]:
        head = prog.segment("head").cascade
        res = interpret(head, {"x": h, **segment_inputs(cfg, head, E, ids)})
        result["head"] = res
    return result


# --- one layer, every combination ---------------------------------------------------------------

VARIANTS = ("3pass", "2pass", "1pass")


def check_layer(cfg, phase, attention, *, seq=10, batch=2, past=0, new=1, m0=4, seed=0):
    rng = np.random.default_rng(seed)
    W = layer_weights(cfg, rng)
    S = seq if phase != "decode" else new
    x = rng.normal(size=(batch, S, cfg.hidden))
    k_past = v_past = None
    if past:
        k_past = rng.normal(size=(batch, past, cfg.kv_heads, cfg.head_dim))
        v_past = rng.normal(size=(batch, past, cfg.kv_heads, cfg.head_dim))
    kw = dict(seq=seq) if phase != "decode" else dict(kv_len=past, new_tokens=new)
    skew = float(cfg.experts)  # capacity = all tokens: enough for any routing
    prog = lower(cfg, phase, batch=batch, attention=attention, m0=m0, moe_skew=skew, **kw)
    y, k, v, logits = ref_layer(cfg, W, x, past=past, k_past=k_past, v_past=v_past, causal=phase != "encoder")
    out = interpret(prog.segment("layer").cascade,
                    layer_inputs(cfg, prog, W, x, past=past, k_past=k_past, v_past=v_past, router_logits=logits))
    assert rel_err(out["y"], y) < RTOL
    if phase != "encoder":
        assert rel_err(out["k_cache"], k) < RTOL and rel_err(out["v_cache"], v) < RTOL
    if logits is not None:
        assert rel_err(out["router"], logits) < RTOL
    return prog, out


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_prefill_layer_llama(attention, kv_heads):
    check_layer(llama(kv_heads=kv_heads), "prefill", attention)


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("seq", [8, 10])  # 10 keys pad to 12 for M0 = 4
def test_prefill_layer_gpt2(attention, seq):
    check_layer(gpt2(), "prefill", attention, seq=seq)


@pytest.mark.parametrize("attention", VARIANTS)
def test_encoder_layer_bert(attention):
    """Post-norm, bidirectional, padded keys (10 -> 12) for 2-/1-pass."""
    prog, _ = check_layer(bert(), "encoder", attention)
    assert ("mask" in prog.segment("layer").cascade.inputs) == (attention != "3pass")


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("cfg", [llama(), gpt2(), llama(kv_heads=1, norm="layernorm", ffn_type="gelu")],
                         ids=["llama", "gpt2", "mqa-ln-gelu"])
@pytest.mark.parametrize("past,new", [(5, 1), (6, 3), (0, 2)])
def test_decode_layer(attention, cfg, past, new):
    check_layer(cfg, "decode", attention, past=past, new=new)


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_moe_layer(attention, phase):
    check_layer(mixtral(), phase, attention, **(dict(past=4, new=3) if phase == "decode" else {}))


def test_moe_layer_gelu_with_bias():
    check_layer(gpt2(experts=3, top_k=1), "prefill", "1pass")


def test_sliding_window_layer():
    check_layer(llama(sliding_window=3), "prefill", "1pass", seq=12)
    check_layer(llama(sliding_window=3), "decode", "2pass", past=7, new=2)


def test_mismatched_weights_are_caught():
    """The comparison can fail: a transposed head layout gives a different answer."""
    cfg = llama()
    rng = np.random.default_rng(3)
    W = layer_weights(cfg, rng)
    x = rng.normal(size=(2, 8, cfg.hidden))
    prog = lower(cfg, "prefill", batch=2, seq=8)
    inp = layer_inputs(cfg, prog, W, x)
    inp["wq"] = W["Wq"].reshape(cfg.hidden, cfg.group, cfg.kv_heads, cfg.head_dim).transpose(0, 2, 1, 3)
    y = ref_layer(cfg, W, x)[0]
    assert rel_err(interpret(prog.segment("layer").cascade, inp)["y"], y) > 1e-3


# --- whole small models --------------------------------------------------------------------------


def model_weights(cfg, seed):
    rng = np.random.default_rng(seed)
    return embed_weights(cfg, rng), [layer_weights(cfg, rng) for _ in range(cfg.layers)]


def ref_model(cfg, E, layers, ids, types=None, causal=True):
    h = ref_embed(cfg, E, ids, types)
    for W in layers:
        h = ref_layer(cfg, W, h, causal=causal)[0]
    return h


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("make", [llama, gpt2, mixtral], ids=["llama", "gpt2", "mixtral"])
def test_full_model_prefill(make, attention):
    cfg = make()
    E, layers = model_weights(cfg, 11)
    ids = np.random.default_rng(1).integers(0, cfg.vocab, size=(2, 10))
    prog = lower(cfg, "prefill", batch=2, seq=10, attention=attention, m0=4, moe_skew=8.0)
    assert [(s.name, s.repeat) for s in prog.segments] == [("embed", 1), ("layer", 2), ("head", 1)]
    out = run_model(cfg, prog, E, layers, ids)
    h = ref_model(cfg, E, layers, ids)
    assert rel_err(out["hidden"], h) < RTOL
    logits = ref_head(cfg, E, h)[:, -1]  # the last token of each sequence
    assert out["head"]["logits"].shape == (2, cfg.vocab)
    assert rel_err(out["head"]["logits"], logits) < RTOL


@pytest.mark.parametrize("attention", VARIANTS)
def test_full_model_encoder_bert(attention):
    cfg = bert()
    E, layers = model_weights(cfg, 5)
    rng = np.random.default_rng(2)
    ids, types = rng.integers(0, cfg.vocab, size=(2, 9)), rng.integers(0, 2, size=(2, 9))
    prog = lower(cfg, "encoder", batch=2, seq=9, attention=attention, m0=4)
    assert [s.name for s in prog.segments] == ["embed", "layer"]  # post-norm: no final norm, no LM head
    out = run_model(cfg, prog, E, layers, ids, types)
    assert rel_err(out["hidden"], ref_model(cfg, E, layers, ids, types, causal=False)) < RTOL


def test_encoder_of_prenorm_model_ends_with_the_final_norm():
    cfg = llama(causal=True)
    E, layers = model_weights(cfg, 6)
    ids = np.random.default_rng(3).integers(0, cfg.vocab, size=(2, 8))
    prog = lower(cfg, "encoder", batch=2, seq=8)
    out = run_model(cfg, prog, E, layers, ids)
    h = ref_model(cfg, E, layers, ids, causal=False)
    assert "logits" not in out["head"]
    assert rel_err(out["head"]["y"], ref_norm(cfg, h, E["lnf_g"])) < RTOL


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("make", [llama, gpt2, mixtral], ids=["llama", "gpt2", "mixtral"])
def test_decode_matches_prefill_rows(make, attention):
    """Decoding tokens t.. with the cache of tokens 0..t-1 reproduces prefill's rows t.."""
    cfg = make()
    E, layers = model_weights(cfg, 21)
    seq = 10
    ids = np.random.default_rng(4).integers(0, cfg.vocab, size=(2, seq))
    prefill = lower(cfg, "prefill", batch=2, seq=seq, attention=attention, m0=4, moe_skew=8.0)
    full = run_model(cfg, prefill, E, layers, ids)
    caches = [(r["k_cache"], r["v_cache"]) for r in full["layers"]]
    for t, new in ((6, 1), (7, 3), (0, 2)):
        dec = lower(cfg, "decode", batch=2, kv_len=t, new_tokens=new, attention=attention, m0=4, moe_skew=8.0)
        past = [(k[:, :t], v[:, :t]) for k, v in caches] if t else None
        out = run_model(cfg, dec, E, layers, ids[:, t: t + new], past=t, caches=past)
        layer_rows = [r["y"][:, t: t + new] for r in full["layers"]]
        for got, want in zip(out["layers"], layer_rows):
            assert rel_err(got["y"], want) < RTOL
        for (k, v), got in zip(caches, out["layers"]):
            assert rel_err(got["k_cache"], k[:, t: t + new]) < RTOL
        if t + new == seq:  # the last token's logits agree with prefill's
            assert rel_err(out["head"]["logits"][:, -1], full["head"]["logits"]) < RTOL


# --- costs -------------------------------------------------------------------------------------

LLAMA3_70B = ModelConfig("llama3-70b", "llama", hidden=8192, layers=80, heads=64, kv_heads=8, head_dim=128,
                         ffn=28672, vocab=128256, max_seq=8192, ffn_type="swiglu", norm="rmsnorm",
                         position="rope", rope_theta=500000.0)
MIXTRAL = ModelConfig("mixtral", "mixtral", hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128, ffn=14336,
                      vocab=32000, max_seq=32768, ffn_type="swiglu", norm="rmsnorm", position="rope", experts=8,
                      top_k=2)
GPT2 = ModelConfig("gpt2", "gpt2", hidden=768, layers=12, heads=12, kv_heads=12, head_dim=64, ffn=3072, vocab=50257,
                   max_seq=1024, bias=True, tie_embeddings=True)


def closed_form_macs(cfg, batch, queries, keys, logit_rows, capacity=None):
    """Sum over weights of tokens x params (+ attention QK and AV over every key: no causal skipping)."""
    D, H, KV, hd, F = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn
    T = batch * queries
    mats = 3 if cfg.ffn_type == "swiglu" else 2
    proj = T * (D * H * hd + 2 * D * KV * hd + H * hd * D)
    if cfg.experts > 1:
        ffn = T * D * cfg.experts + cfg.experts * capacity * mats * D * F
    else:
        ffn = T * mats * D * F
    attn = 2 * batch * H * queries * keys * hd
    return cfg.layers * (proj + ffn + attn) + logit_rows * D * cfg.vocab


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("cfg,batch,seq", [(LLAMA3_70B, 1, 8192), (GPT2, 4, 1024), (MIXTRAL, 2, 4096),
                                           (llama(), 2, 8)], ids=["llama3-70b", "gpt2", "mixtral", "tiny"])
def test_prefill_macs_closed_form(cfg, batch, seq, attention):
    prog = lower(cfg, "prefill", batch=batch, seq=seq, attention=attention, m0=256 if seq >= 256 else 4)
    capacity = math.ceil(batch * seq * cfg.top_k / cfg.experts) if cfg.experts > 1 else None
    assert prog.meta["capacity"] == capacity
    assert prog.op_counts()["mac"] == closed_form_macs(cfg, batch, seq, seq, batch, capacity)


@pytest.mark.parametrize("attention", VARIANTS)
def test_decode_macs_closed_form(attention):
    prog = lower(LLAMA3_70B, "decode", batch=8, kv_len=4096 - 4, new_tokens=4, attention=attention)
    assert prog.op_counts()["mac"] == closed_form_macs(LLAMA3_70B, 8, 4, 4096, 8 * 4)


def test_padding_costs_the_padded_keys():
    """10 keys in tiles of 4 pad to 12: QK and AV cost 12 keys, as documented."""
    cfg = llama()
    three = lower(cfg, "prefill", batch=2, seq=10).op_counts()["mac"]
    one = lower(cfg, "prefill", batch=2, seq=10, attention="1pass", m0=4).op_counts()["mac"]
    assert one - three == cfg.layers * 2 * 2 * cfg.heads * 10 * 2 * cfg.head_dim


def test_flops_and_gathers():
    prog = lower(MIXTRAL, "prefill", seq=512)
    counts, dense = prog.op_counts(), prog.op_counts(gathers=False)
    assert prog.flops() == 2 * counts["mac"] + sum(n for op, n in counts.items() if op != "mac")
    assert dense["mac"] == counts["mac"]  # selections are never MACs
    assert counts["max"] > dense["max"] and counts["add"] > dense["add"]
    T, X, c, j, D, V = 512, 8, prog.meta["capacity"], 2, 4096, MIXTRAL.vocab
    # dispatch (X*c slots pick among T tokens), combine (T*j picks among X*c slots), token lookup:
    # one add per point, one max per point that does not start an output.
    adds = MIXTRAL.layers * (X * c * T * D + T * j * X * c * D) + T * V * D
    maxes = MIXTRAL.layers * (X * c * (T - 1) * D + T * j * (X * c - 1) * D) + T * (V - 1) * D
    assert counts["add"] - dense["add"] == adds
    assert counts["max"] - dense["max"] == maxes
    assert set(prog.meta["gathers"]) == {"embed", "layer"}


@pytest.mark.parametrize("kv", ["bf16", "fp8", "fp32"])
@pytest.mark.parametrize("cfg", [LLAMA3_70B, GPT2, MIXTRAL], ids=["llama3-70b", "gpt2", "mixtral"])
def test_kv_cache_bytes_per_token(cfg, kv):
    batch, seq = 2, 1024
    prog = lower(cfg, "prefill", batch=batch, seq=seq, dtypes=Dtypes(kv=kv))
    per_token = prog.tensor_bytes_by_kind()["kv_cache"] / (batch * seq)
    bytes_ = {"bf16": 2, "fp8": 1, "fp32": 4}[kv]
    assert per_token == 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * bytes_
    layer = prog.segment("layer").cascade
    assert set(layer.outputs) >= {"k_cache", "v_cache", "y"}


def test_decode_kv_bytes_count_cache_and_new_tokens():
    prog = lower(LLAMA3_70B, "decode", batch=3, kv_len=1000, new_tokens=2)
    per_token = 2 * 80 * 8 * 128 * 2
    assert prog.tensor_bytes_by_kind()["kv_cache"] == 3 * (1000 + 2) * per_token
    assert set(prog.segment("layer").cascade.inputs) >= {"k_past", "v_past"}


def test_weight_bytes_follow_their_dtype_and_tied_embeddings_count_once():
    cfg = gpt2()
    params = (cfg.vocab * 32 + cfg.max_seq * 32  # wte (tied, once), wpe
              + 2 * (4 * (32 * 32 + 32) + 2 * 32 * 48 + 48 + 32 + 4 * 32)  # per layer: qkvo+b, ffn+b, 2 LNs
              + 2 * 32)  # final LayerNorm
    for dtype, size in (("int8", 1), ("bf16", 2), ("int4", 0.5)):
        prog = lower(cfg, "prefill", seq=8, dtypes=Dtypes(weights=dtype))
        assert prog.tensor_bytes_by_kind()["weights"] == params * size
        layer = prog.segment("layer").cascade
        assert layer.tensor("wq").dtype == dtype and layer.tensor("q").dtype == "bf16"


def test_moe_capacity_and_skew():
    cfg = mixtral()  # 4 experts, top-2
    def cap(skew, batch=2, seq=10):
        return lower(cfg, "prefill", batch=batch, seq=seq, moe_skew=skew).meta["capacity"]
    assert cap(0.0) == 10  # 20 tokens * 2 / 4
    assert cap(0.5) == 15
    assert cap(0.55) == 16  # ceil(15.5)
    assert cap(5.0) == 20  # never more than the tokens
    prog = lower(cfg, "prefill", batch=2, seq=10, moe_skew=0.5)
    assert prog.segment("layer").cascade.rank_extent("c") == 15
    with pytest.raises(WorkloadError, match="moe_skew"):
        lower(cfg, "prefill", seq=8, moe_skew=-0.1)


def test_moe_routing_rejects_overfull_experts():
    logits = np.zeros((1, 4, 2))
    logits[..., 0] = 1.0  # every token's first choice is expert 0
    with pytest.raises(WorkloadError, match="capacity"):
        moe_routing(logits, 1, 3)


# --- structure -----------------------------------------------------------------------------------


def _gemm_roles(e: Einsum) -> dict[str, str]:
    a, b, c = (set(x.ranks) for x in (*e.inputs, e.output))
    roles = {(True, True, True): "batch", (True, False, True): "M", (False, True, True): "N", (True, True, False): "K"}
    return {r: roles.get((r in a, r in b, r in c), "bad") for r in e.ranks}


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("cfg", [llama(), gpt2(), mixtral(), bert()], ids=["llama", "gpt2", "mixtral", "bert"])
def test_matmuls_are_plain_gemms(cfg, attention):
    phase = "encoder" if cfg.family == "bert" else "decode"
    prog = lower(cfg, phase, seq=10, kv_len=5, new_tokens=2, attention=attention, m0=4)
    macs = 0
    for s in prog.segments:
        for e in s.cascade.einsums:
            if e.map_op == "mul" and e.reduce_op == "sum":
                macs += 1
                assert len(e.inputs) == 2 and not e.unary
                assert all(a.is_projection for a in (*e.inputs, e.output)), e
                assert "bad" not in _gemm_roles(e).values(), e
                assert {"M", "N", "K"} <= set(_gemm_roles(e).values()) or e.name == "lm_head", e
            assert not (e.map_op is None and e.reduce_op == "sum" and len(e.inputs) == 2)
    assert macs >= 6


def test_gqa_qk_is_batched_over_b_and_g():
    prog = lower(llama(), "prefill", seq=8, attention="3pass")
    roles = _gemm_roles(prog.segment("layer").cascade.einsum("QK"))
    assert roles == {"b": "batch", "g": "batch", "r": "M", "p": "M", "m": "N", "e": "K"}


def test_identical_layers_are_one_cascade_and_lowering_is_fast():
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        prog = lower(LLAMA3_70B, "prefill", seq=8192)
        times.append(time.perf_counter() - t0)
    assert sorted(times)[1] < 1.0
    layer = prog.segment("layer")
    assert layer.repeat == 80 and len(prog.segments) == 3
    assert prog.einsum_count() == sum(s.repeat * len(s.cascade.einsums) for s in prog.segments)
    assert prog.einsum_count() > 80 * 30


def test_kinds_are_tagged():
    prog = lower(llama(), "decode", kv_len=4, new_tokens=1)
    assert prog.kind("wq") == "weight" and prog.kind("w_down") == "weight" and prog.kind("wte") == "weight"
    assert prog.kind("k_past") == "kv" and prog.kind("k_cache") == "kv"
    assert prog.kind("mask") == "aux" and prog.kind("rope_cos") == "aux" and prog.kind("tokens") == "aux"
    assert prog.kind("q") == "activation" and prog.kind("QK") == "activation"
    layer = prog.segment("layer").cascade
    for t in layer.tensors:
        assert prog.kind(t.name) in ("weight", "kv", "activation", "aux")
    by_kind = prog.tensor_bytes_by_kind()
    assert set(by_kind) == {"weights", "kv_cache", "activations", "aux"} and all(v > 0 for v in by_kind.values())


def test_program_is_a_frozen_value():
    prog = lower(llama(), "prefill", seq=8)
    with pytest.raises(AttributeError):
        prog.name = "x"  # type: ignore[misc]
    assert isinstance(prog, Program) and hash(prog) == hash(lower(llama(), "prefill", seq=8))
    assert prog.segment("layer").cascade == lower(llama(), "prefill", seq=8).segment("layer").cascade


@pytest.mark.parametrize("kwargs,match", [
    (dict(phase="training"), "unknown phase"),
    (dict(phase="prefill", attention="4pass"), "unknown attention"),
    (dict(phase="prefill", batch=0), "batch"),
    (dict(phase="decode", kv_len=-1), "kv_len"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(WorkloadError, match=match):
        lower(llama(), seq=8, **kwargs)


def test_bad_configs():
    with pytest.raises(WorkloadError, match="bidirectional"):
        lower(bert(), "prefill", seq=8)
    with pytest.raises(WorkloadError, match="learned positions"):
        lower(gpt2(), "decode", kv_len=64, new_tokens=1)
    with pytest.raises(WorkloadError, match="multiple of kv_heads"):
        lower(llama(kv_heads=3), "prefill", seq=8)
    with pytest.raises(WorkloadError, match="even head_dim"):
        lower(llama(head_dim=7), "prefill", seq=8)


def test_defaults_use_the_context_length():
    prog = lower(gpt2(), "prefill")
    assert prog.meta["seq"] == 64
    assert lower(gpt2(), "decode").meta["kv_len"] == 63


# --- the IR extension decode relies on -----------------------------------------------------------


def test_disjoint_writes_concatenate():
    ranks = {"a": 3, "n": 2, "m": 5}
    tensors = [Tensor("X", ("a",)), Tensor("Y", ("n",)), Tensor("Z", ("m",))]
    c = Cascade("cat", ranks, tensors, [Einsum("ZX", "Z[a]", "X[a]"), Einsum("ZY", "Z[n+3]", "Y[n]")])
    assert c.inputs == ("X", "Y") and len(c.producers("Z")) == 2
    out = interpret(c, {"X": np.arange(3.0), "Y": np.array([7.0, 8.0])})
    np.testing.assert_array_equal(out["Z"], [0, 1, 2, 7, 8])
    with pytest.raises(WorkloadError, match="produced by two einsums: ZX and ZY"):
        Cascade("cat", ranks, tensors, [Einsum("ZX", "Z[a]", "X[a]"), Einsum("ZY", "Z[n+2]", "Y[n]")])


def test_replace_keeps_config_frozen():
    """Configs built by replace() lower the same as fresh ones (no hidden state)."""
    a = lower(replace(llama(), kv_heads=1), "prefill", seq=8)
    b = lower(llama(kv_heads=1), "prefill", seq=8)
    assert a.op_counts() == b.op_counts()
