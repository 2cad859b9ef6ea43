"""Lowering a Transformer (a ModelConfig) for one phase to a Program of Einsum cascades.

``lower(cfg, phase, ...)`` gives three segments: ``embed`` (x1), ``layer`` (x cfg.layers: one
cascade for all identical layers; each repetition has its own weights and cache) and
``head`` (x1). Phases:

- ``encoder``: bidirectional attention over ``seq`` tokens; no KV cache; the head is the
  final norm only (pre-norm models; post-norm models have no head segment), no LM head.
- ``prefill``: causal attention over ``seq`` tokens; every layer writes its K and V as the
  cascade outputs ``k_cache``/``v_cache``; logits for the last token of each sequence only.
- ``decode``: ``new_tokens`` tokens attend to ``kv_len`` cached keys/values (the inputs
  ``k_past``/``v_past``) and to their own, causally among themselves; they write their K/V
  to ``k_cache``/``v_cache``; logits for every new token.

Ranks (all kept, even those of size 1): b batch, p this step's tokens (queries),
d hidden, g KV head, r query head within its KV group (query head h = g*group + r, as
Hugging Face's ``repeat_kv``), e / f head dim of Q,K / of V, m keys, mc cached positions
(decode), i FFN, v vocabulary, s learned-position table, t token types, x expert,
c expert capacity, j top-k choice, h2 / e0 the two halves of the head dim (RoPE), m1 / m0
key tiles (2-/1-pass attention).

Tensors a caller feeds (weights are kind ``weight``, see workloads.program for kinds):

- embed: ``tokens[b,p,v]`` (0 at the token id, -inf elsewhere: :func:`token_mask`),
  ``wte[v,d]``; learned positions ``wpe[s,d]`` (row kv_len+p is read); BERT token types
  ``token_types[b,p,t]`` (like tokens) and ``wtt[t,d]``; post-norm (BERT) ``ln_emb_g/b[d]``.
  Output ``y[b,p,d]``.
- layer: input ``x[b,p,d]``, output ``y[b,p,d]``. Norms ``ln1_g``, ``ln2_g`` (+ ``ln1_b``,
  ``ln2_b`` for LayerNorm) ``[d]``; ``wq[d,g,r,e]``, ``wk[d,g,e]``, ``wv[d,g,f]``,
  ``wo[g,r,f,d]`` (+ ``bq[g,r,e]``, ``bk[g,e]``, ``bv[g,f]``, ``bo[d]`` if cfg.bias); RoPE
  tables ``rope_cos[p,e]``, ``rope_sin[p,e]`` (:func:`rope_tables`: the sin table has its first
  half negated, so rotate-half is a plain swap of the halves); attention mask ``mask[p,m]``
  (:func:`attention_mask`; present unless an unpadded encoder); decode's ``k_past[b,mc,g,e]``,
  ``v_past[b,mc,g,f]``. FFN: GELU ``w_up[d,i]``, ``w_down[i,d]``; SwiGLU also ``w_gate[d,i]``
  (+ ``b_up[i]``, ``b_gate[i]``, ``b_down[d]`` if cfg.bias). MoE: ``w_router[d,x]`` and the
  expert weights with a leading x (``w_up[x,d,i]``, ...), routing inputs ``dispatch[x,c,b,p]``,
  ``combine[b,p,j,x,c]`` (0/-inf) and ``gate[b,p,j]`` (:func:`moe_routing`); the layer also
  outputs the router logits ``router[b,p,x]`` the caller routes with.
- head: input ``x[b,p,d]``; final norm ``lnf_g`` (+ ``lnf_b``); ``w_lm[d,v]`` or, tied, ``wte``.
  Output ``logits[b,v]`` (prefill: last token), ``logits[b,p,v]`` (decode), ``y[b,p,d]`` (encoder).

Decisions: pre-norm everywhere except family "bert" (post-norm: norm after each residual
add, and after the embeddings); LayerNorm/RMSNorm epsilon NORM_EPS; Q is scaled by
1/sqrt(head_dim) (one Einsum over Q, cheaper than over QK); causal masking skips no work
(attention costs the full P x M); "relative" positions are not modelled; a sliding window
only shapes the mask. Token lookups and MoE dispatch/combine are dense 0/-inf selections
(``add`` + ``max``, never MACs), listed in ``meta["gathers"]``. Decode's copies of the cached
K/V into ``keys``/``values`` are listed in ``meta["views"]``: they exist for the interpreter; a
real kernel reads the cache in place, so a simulator should not move those bytes twice. 2-/1-pass attention pads the
keys to a multiple of the tile M0 = min(m0, keys) and masks the padding (padded keys cost
work like real ones); their per-tile max is over the unmasked scores (see workloads.attention).
The cache entries ``k_cache``/``v_cache`` are copies of K (after RoPE) and V, so that they are
cascade outputs (written to memory) while attention reads ``k``/``v``. Decode concatenates cached and new keys into ``keys``/``values``
with two copy Einsums writing disjoint slices (prefill pads the same way when needed).
MoE capacity (tokens per expert) = min(T, ceil(T*top_k*(1+moe_skew)/experts)) for T
tokens: every expert is sized for the busiest one, which gets (1+moe_skew) x the mean load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workloads.attention import AttentionRanks, add_attention, key_tile
from workloads.config import ModelConfig
from workloads.ir import WorkloadError
from workloads.program import Builder, Dtypes, Program, Segment, access, merge_kinds

PHASES = ("encoder", "prefill", "decode")
NORM_EPS = 1e-5
"""Epsilon of every LayerNorm and RMSNorm (added to the variance before rsqrt)."""
STREAM = {"input": "x", "output": "y"}
"""The hidden state each segment reads and writes (embed only writes)."""


@dataclass(frozen=True)
class _Shape:
    """The sizes one lowering works with."""

    phase: str
    batch: int
    tokens: int  # P: tokens of this step per sequence (queries)
    past: int  # L: cached tokens (decode), else 0
    keys: int  # M = L + P
    keys_padded: int  # M rounded up to the key tile (2-/1-pass), else M
    tile: int | None  # M0 (2-/1-pass)
    capacity: int | None  # tokens per expert (MoE)
    attention: str
    post_norm: bool

    @property
    def padded(self) -> bool:
        return self.keys_padded != self.keys

    @property
    def masked(self) -> bool:
        return self.phase != "encoder" or self.padded


def lower(cfg: ModelConfig, phase: str, *, batch: int = 1, seq: int | None = None, kv_len: int | None = None,
          new_tokens: int = 1, attention: str = "3pass", m0: int = 256, dtypes: Dtypes = Dtypes(),
          moe_skew: float = 0.0) -> Program:
    """Lower ``cfg`` for ``phase`` to a Program (segments embed, layer x cfg.layers, head).

    seq defaults to cfg.max_seq (encoder/prefill); decode's kv_len defaults to seq if given,
    else cfg.max_seq - new_tokens.
    """
    shape = _shape(cfg, phase, batch, seq, kv_len, new_tokens, attention, m0, moe_skew)
    builders, gathers = {}, {}
    builders["embed"], gathers["embed"] = _embed(cfg, shape, dtypes)
    builders["layer"], gathers["layer"] = _layer(cfg, shape, dtypes)
    head = _head(cfg, shape, dtypes)
    if head is not None:
        builders["head"], gathers["head"] = head, ()
    repeat = {"layer": cfg.layers}
    segments = tuple(Segment(name, b.build(), repeat.get(name, 1)) for name, b in builders.items())
    meta = {
        "model": cfg.name, "phase": phase, "attention": attention, "batch": batch,
        "tokens": shape.tokens, "seq": shape.tokens if phase != "decode" else None,
        "kv_len": shape.past, "new_tokens": shape.tokens if phase == "decode" else None,
        "keys": shape.keys, "keys_padded": shape.keys_padded, "m0": shape.tile,
        "capacity": shape.capacity, "moe_skew": moe_skew if cfg.experts > 1 else None,
        "norm_position": "post" if shape.post_norm else "pre", "norm_eps": NORM_EPS,
        "logits": {"prefill": "last token of each sequence", "decode": "every new token"}.get(phase),
        "stream": dict(STREAM), "dtypes": dtypes,
        "kinds": merge_kinds(builders.values()),
        "gathers": {k: tuple(v) for k, v in gathers.items() if v},
        # Copies a real kernel never makes: attention reads the cached K/V where they lie.
        "views": {"layer": ("keys_past", "values_past")} if phase == "decode" else {},
    }
    return Program(f"{cfg.name}-{phase}", segments, meta)


# --- sizes and checks -------------------------------------------------------------------------


def _positive(what: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WorkloadError(f"lower: {what} must be an integer >= {minimum}, got {value!r}")
    return value


def _shape(cfg: ModelConfig, phase: str, batch: int, seq: int | None, kv_len: int | None, new_tokens: int,
           attention: str, m0: int, moe_skew: float) -> _Shape:
    """Check the arguments against the config and work out the sizes."""
    if phase not in PHASES:
        raise WorkloadError(f"lower: unknown phase {phase!r} (known: {', '.join(PHASES)})")
    if attention not in ("3pass", "2pass", "1pass"):
        raise WorkloadError(f"lower: unknown attention {attention!r} (known: 3pass, 2pass, 1pass)")
    if phase != "encoder" and not cfg.causal:
        raise WorkloadError(f"lower: {cfg.name} is bidirectional (causal=False); use phase 'encoder'")
    if cfg.heads % cfg.kv_heads:
        raise WorkloadError(f"lower: {cfg.name}: heads={cfg.heads} is not a multiple of kv_heads={cfg.kv_heads}")
    if cfg.position == "rope" and cfg.head_dim % 2:
        raise WorkloadError(f"lower: {cfg.name}: RoPE needs an even head_dim, got {cfg.head_dim}")
    if cfg.norm not in ("layernorm", "rmsnorm"):
        raise WorkloadError(f"lower: {cfg.name}: unknown norm {cfg.norm!r} (known: layernorm, rmsnorm)")
    if cfg.ffn_type not in ("gelu", "swiglu"):
        raise WorkloadError(f"lower: {cfg.name}: unknown ffn_type {cfg.ffn_type!r} (known: gelu, swiglu)")
    _positive("batch", batch)
    _positive("m0", m0)
    if isinstance(moe_skew, bool) or not isinstance(moe_skew, (int, float)) or not moe_skew >= 0:
        raise WorkloadError(f"lower: moe_skew must be a number >= 0, got {moe_skew!r}")
    if phase == "decode":
        tokens = _positive("new_tokens", new_tokens)
        past = kv_len if kv_len is not None else (seq if seq is not None else cfg.max_seq - tokens)
        past = _positive("kv_len", past, 0)
    else:
        tokens, past = _positive("seq", seq if seq is not None else cfg.max_seq), 0
    if cfg.position == "learned" and past + tokens > cfg.max_seq:
        raise WorkloadError(
            f"lower: {cfg.name} has learned positions for {cfg.max_seq} tokens; "
            f"{past} cached + {tokens} new exceed it"
        )
    keys = past + tokens
    tile, padded = (None, keys) if attention == "3pass" else key_tile(keys, m0)
    capacity = None
    if cfg.experts > 1:
        if not 1 <= cfg.top_k <= cfg.experts:
            raise WorkloadError(f"lower: {cfg.name}: top_k={cfg.top_k} must be in 1..experts={cfg.experts}")
        routed = batch * tokens
        capacity = min(routed, max(1, math.ceil(routed * cfg.top_k * (1 + moe_skew) / cfg.experts - 1e-9)))
    return _Shape(phase, batch, tokens, past, keys, padded, tile, capacity, attention, cfg.family == "bert")


# --- building blocks --------------------------------------------------------------------------


def _norm(bld: Builder, cfg: ModelConfig, name: str, x: str, rows: tuple[str, ...], out: str) -> None:
    """LayerNorm (mean, centre, square, variance->rsqrt, normalise, scale, shift) or RMSNorm into ``out``."""
    d = cfg.hidden
    row, full = rows, (*rows, "d")
    stats = (("scale", 1.0 / d), ("add_const", NORM_EPS), "rsqrt")
    if cfg.norm == "layernorm":
        bld.tensor(f"{name}_mean", row)
        bld.einsum(access(f"{name}_mean", row), access(x, full), None, "sum", [("scale", 1.0 / d)])
        centred = bld.tensor(f"{name}_cen", full)
        bld.einsum(access(centred, full), (access(x, full), access(f"{name}_mean", row)), "sub")
    else:
        centred = x
    bld.tensor(f"{name}_sq", full)
    bld.einsum(access(f"{name}_sq", full), access(centred, full), None, None, ["square"])
    bld.tensor(f"{name}_rstd", row)
    bld.einsum(access(f"{name}_rstd", row), access(f"{name}_sq", full), None, "sum", stats)
    bld.tensor(f"{name}_hat", full)
    bld.einsum(access(f"{name}_hat", full), (access(centred, full), access(f"{name}_rstd", row)), "mul")
    bld.tensor(f"{name}_g", ("d",), "weight")
    scaled = out if cfg.norm == "rmsnorm" else bld.tensor(f"{name}_scaled", full)
    bld.tensor(out, full)
    bld.einsum(access(scaled, full), (access(f"{name}_hat", full), access(f"{name}_g", ("d",))), "mul")
    if cfg.norm == "layernorm":
        bld.tensor(f"{name}_b", ("d",), "weight")
        bld.einsum(access(out, full), (access(scaled, full), access(f"{name}_b", ("d",))), "add")


def _linear(bld: Builder, cfg: ModelConfig, name: str, x: str, x_idx: tuple[str, ...], w: str,
            w_idx: tuple[str, ...], out_idx: tuple[str, ...], bias: str | None, out: str,
            out_decl: tuple[str, ...] | None = None) -> str:
    """``out = x @ w`` (+ ``bias`` over the output's non-token ranks when cfg.bias); returns ``out``.

    ``out_decl`` declares ``out`` over other ranks of the same extents (e.g. keys m for p).
    """
    bld.tensor(w, w_idx, "weight")
    mm = f"{name}_mm" if cfg.bias and bias else out
    bld.tensor(mm, out_decl if mm == out and out_decl else out_idx)
    bld.einsum(access(mm, out_idx), (access(x, x_idx), access(w, w_idx)), "mul", "sum", name=name)
    if mm != out:
        b_idx = tuple(r for r in out_idx if r in w_idx)
        bld.tensor(bias, b_idx, "weight")
        bld.tensor(out, out_decl or out_idx)
        bld.einsum(access(out, out_idx), (access(mm, out_idx), access(bias, b_idx)), "add", name=f"{name}_bias")
    return out


def _rope(bld: Builder, cfg: ModelConfig, name: str, x: str, idx: tuple[str, ...], out: str,
          out_decl: tuple[str, ...]) -> None:
    """Rotate-half RoPE: out = x*cos + swap_halves(x)*sin, sin's first half negated (see rope_tables)."""
    half = cfg.head_dim // 2
    bld.rank("h2", 2)
    bld.rank("e0", half)
    bld.tensor("rope_cos", ("p", "e"), "aux")
    bld.tensor("rope_sin", ("p", "e"), "aux")
    here = tuple(f"h2*{half}+e0" if r == "e" else r for r in idx)
    other = tuple(f"{half}-{half}*h2+e0" if r == "e" else r for r in idx)
    bld.tensor(f"{name}_cos", idx)
    bld.tensor(f"{name}_sin", idx)
    bld.tensor(out, out_decl)
    bld.einsum(access(f"{name}_cos", idx), (access(x, idx), access("rope_cos", ("p", "e"))), "mul")
    bld.einsum(access(f"{name}_sin", here), (access(x, other), access("rope_sin", ("p", f"h2*{half}+e0"))), "mul")
    bld.einsum(access(out, idx), (access(f"{name}_cos", idx), access(f"{name}_sin", idx)), "add")


def _select(bld: Builder, out: str, out_idx: tuple[str, ...], table: str, table_idx: tuple[str, ...],
            mask: str, mask_idx: tuple[str, ...], name: str) -> str:
    """A data-dependent gather as a dense selection: out = max over the masked ranks of table + mask."""
    bld.tensor(out, out_idx)
    return bld.einsum(access(out, out_idx), (access(table, table_idx), access(mask, mask_idx)), "add", "max",
                      name=name)


# --- segments ---------------------------------------------------------------------------------


def _embed(cfg: ModelConfig, shape: _Shape, dtypes: Dtypes) -> tuple[Builder, list[str]]:
    """Token lookup (+ learned positions, + token types, + LayerNorm for post-norm models) into y."""
    bld = Builder("embed", dtypes)
    for r, n in (("b", shape.batch), ("p", shape.tokens), ("d", cfg.hidden), ("v", cfg.vocab)):
        bld.rank(r, n)
    tok = ("b", "p", "d")
    parts = ["tok_emb"] + ["pos_emb"] * (cfg.position == "learned") + ["type_emb"] * (cfg.type_vocab > 0)
    sums = [f"emb_sum{k}" for k in range(1, len(parts))]
    names = {n: n for n in parts + sums}
    if not shape.post_norm:  # the last step writes y (post-norm models normalise into y)
        names[(parts + sums)[-1]] = "y"
    bld.tensor("wte", ("v", "d"), "weight")
    bld.tensor("tokens", ("b", "p", "v"), "aux")
    gathers = [_select(bld, names["tok_emb"], tok, "wte", ("v", "d"), "tokens", ("b", "p", "v"), "embed_tok")]
    if cfg.position == "learned":
        bld.rank("s", cfg.max_seq)
        bld.tensor("wpe", ("s", "d"), "weight")
        bld.tensor("pos_emb", ("p", "d"))
        bld.einsum(access("pos_emb", ("p", "d")), access("wpe", (f"p+{shape.past}", "d")), name="embed_pos")
    if cfg.type_vocab > 0:
        bld.rank("t", cfg.type_vocab)
        bld.tensor("wtt", ("t", "d"), "weight")
        bld.tensor("token_types", ("b", "p", "t"), "aux")
        gathers.append(_select(bld, names["type_emb"], tok, "wtt", ("t", "d"), "token_types", ("b", "p", "t"),
                               "embed_type"))
    total = names["tok_emb"]
    for part, out in zip(parts[1:], sums):
        bld.tensor(names[out], tok)
        part_idx = ("p", "d") if part == "pos_emb" else tok
        bld.einsum(access(names[out], tok), (access(total, tok), access(names[part], part_idx)), "add")
        total = names[out]
    if shape.post_norm:
        _norm(bld, cfg, "ln_emb", total, ("b", "p"), "y")
    return bld, gathers


def _layer(cfg: ModelConfig, shape: _Shape, dtypes: Dtypes) -> tuple[Builder, list[str]]:
    """One Transformer layer: norms, Q/K/V, RoPE, attention, output projection, residuals, FFN or MoE."""
    bld = Builder("layer", dtypes)
    hd = cfg.head_dim
    for r, n in (("b", shape.batch), ("p", shape.tokens), ("d", cfg.hidden), ("g", cfg.kv_heads),
                 ("r", cfg.group), ("e", hd), ("f", hd), ("m", shape.keys_padded)):
        bld.rank(r, n)
    tok = ("b", "p", "d")
    bld.tensor("x", tok)

    attn_in = "x"
    if not shape.post_norm:
        _norm(bld, cfg, "ln1", "x", ("b", "p"), "attn_in")
        attn_in = "attn_in"
    _attention_block(bld, cfg, shape, attn_in)
    gathers: list[str] = []

    bld.tensor("res1", tok)
    bld.einsum(access("res1", tok), (access("x", tok), access("attn_out", tok)), "add")
    if shape.post_norm:
        _norm(bld, cfg, "ln1", "res1", ("b", "p"), "ffn_in")
    else:
        _norm(bld, cfg, "ln2", "res1", ("b", "p"), "ffn_in")
    if cfg.experts > 1:
        gathers += _moe(bld, cfg, shape, "ffn_in")
    else:
        _ffn(bld, cfg, "ffn_in", ("b", "p"), "ffn_out", ())
    skip = "ffn_in" if shape.post_norm else "res1"
    out = "res2" if shape.post_norm else "y"
    bld.tensor(out, tok)
    bld.einsum(access(out, tok), (access(skip, tok), access("ffn_out", tok)), "add")
    if shape.post_norm:
        _norm(bld, cfg, "ln2", "res2", ("b", "p"), "y")
    return bld, gathers


def _attention_block(bld: Builder, cfg: ModelConfig, shape: _Shape, h: str) -> None:
    """Q/K/V projections, RoPE, Q scaling, KV cache, attention and the output projection into attn_out."""
    tok = ("b", "p", "d")
    decode, rope = shape.phase == "decode", cfg.position == "rope"
    # Keys are read straight from k/v unless decode or padding needs a concatenated/padded copy.
    direct = not decode and not shape.padded
    key_decl = "m" if direct else "p"
    q_idx, k_idx, v_idx = ("b", "p", "g", "r", "e"), ("b", "p", "g", "e"), ("b", "p", "g", "f")
    k_decl, v_decl = ("b", key_decl, "g", "e"), ("b", key_decl, "g", "f")

    q_src = _linear(bld, cfg, "q_proj", h, tok, "wq", ("d", "g", "r", "e"), q_idx, "bq",
                    "q_rope_in" if rope else "q_lin")
    k_name = "k_rope_in" if rope else "k"
    _linear(bld, cfg, "k_proj", h, tok, "wk", ("d", "g", "e"), k_idx, "bk", k_name, None if rope else k_decl)
    _linear(bld, cfg, "v_proj", h, tok, "wv", ("d", "g", "f"), v_idx, "bv", "v", v_decl)
    if rope:
        _rope(bld, cfg, "q_rot", q_src, q_idx, "q_roped", q_idx)
        _rope(bld, cfg, "k_rot", "k_rope_in", k_idx, "k", k_decl)
        q_src = "q_roped"
    ar = AttentionRanks()
    bld.tensor("q", ar.q)
    bld.einsum(access("q", ar.q), access(q_src, q_idx), None, None, [("scale", 1.0 / math.sqrt(cfg.head_dim))],
               name="q_scale")

    if shape.phase != "encoder":  # the KV cache entries of this step's tokens: cascade outputs
        bld.tensor("k_cache", k_idx, "kv")
        bld.tensor("v_cache", v_idx, "kv")
        bld.einsum(access("k_cache", k_idx), access("k", k_idx))
        bld.einsum(access("v_cache", v_idx), access("v", v_idx))
    keys, values = "k", "v"
    if not direct:  # keys[m] = concat(k_past, k) (decode), zero-padded to the tile multiple
        pad = 0.0 if shape.padded else None
        keys = bld.tensor("keys", ("b", "m", "g", "e"), initial=pad)
        values = bld.tensor("values", ("b", "m", "g", "f"), initial=pad)
        if shape.past:
            bld.rank("mc", shape.past)
            bld.tensor("k_past", ("b", "mc", "g", "e"), "kv")
            bld.tensor("v_past", ("b", "mc", "g", "f"), "kv")
            bld.einsum(access("keys", ("b", "mc", "g", "e")), access("k_past", ("b", "mc", "g", "e")), name="keys_past")
            bld.einsum(access("values", ("b", "mc", "g", "f")), access("v_past", ("b", "mc", "g", "f")),
                       name="values_past")
        at = f"p+{shape.past}" if shape.past else "p"
        bld.einsum(access("keys", ("b", at, "g", "e")), access("k", k_idx), name="keys_new")
        bld.einsum(access("values", ("b", at, "g", "f")), access("v", v_idx), name="values_new")
    mask = bld.tensor("mask", ("p", "m"), "aux") if shape.masked else None
    add_attention(shape.attention, bld, ar, "q", keys, values, "att", mask, shape.tile or 256)
    _linear(bld, cfg, "o_proj", "att", ("b", "g", "r", "p", "f"), "wo", ("g", "r", "f", "d"), tok, "bo",
            "attn_out")


def _ffn(bld: Builder, cfg: ModelConfig, x: str, rows: tuple[str, ...], out: str, lead: tuple[str, ...]) -> None:
    """GELU (up, gelu, down) or SwiGLU (gate, up, silu(gate)*up, down) over token ranks ``rows``.

    ``lead`` ranks (the expert x) prefix every weight.
    """
    bld.rank("i", cfg.ffn)
    xi, hi = (*rows, "d"), (*rows, "i")
    up = _linear(bld, cfg, "ffn_up", x, xi, "w_up", (*lead, "d", "i"), hi, "b_up", "ffn_up_out")
    if cfg.ffn_type == "gelu":
        bld.tensor("ffn_act", hi)
        bld.einsum(access("ffn_act", hi), access(up, hi), None, None, ["gelu"])
        act = "ffn_act"
    else:
        gate = _linear(bld, cfg, "ffn_gate", x, xi, "w_gate", (*lead, "d", "i"), hi, "b_gate", "ffn_gate_out")
        bld.tensor("ffn_silu", hi)
        bld.einsum(access("ffn_silu", hi), access(gate, hi), None, None, ["silu"])
        bld.tensor("ffn_act", hi)
        bld.einsum(access("ffn_act", hi), (access("ffn_silu", hi), access(up, hi)), "mul")
        act = "ffn_act"
    _linear(bld, cfg, "ffn_down", act, hi, "w_down", (*lead, "i", "d"), xi, "b_down", out)


def _moe(bld: Builder, cfg: ModelConfig, shape: _Shape, h: str) -> list[str]:
    """Router GEMM, dense dispatch to (expert, slot), expert FFNs over ``capacity`` slots, combine."""
    tok = ("b", "p", "d")
    bld.rank("x", cfg.experts)
    bld.rank("c", shape.capacity)
    bld.rank("j", cfg.top_k)
    _linear(bld, cfg, "router", h, tok, "w_router", ("d", "x"), ("b", "p", "x"), None, "router")
    bld.tensor("dispatch", ("x", "c", "b", "p"), "aux")
    bld.tensor("combine", ("b", "p", "j", "x", "c"), "aux")
    bld.tensor("gate", ("b", "p", "j"))
    slots = ("x", "c", "d")
    gathers = [_select(bld, "moe_in", slots, h, tok, "dispatch", ("x", "c", "b", "p"), "moe_dispatch")]
    _ffn(bld, cfg, "moe_in", ("x", "c"), "moe_out", ("x",))
    pick = ("b", "p", "j", "d")
    gathers.append(_select(bld, "moe_pick", pick, "moe_out", slots, "combine", ("b", "p", "j", "x", "c"),
                           "moe_combine"))
    bld.tensor("moe_weighted", pick)
    bld.einsum(access("moe_weighted", pick), (access("moe_pick", pick), access("gate", ("b", "p", "j"))), "mul")
    bld.tensor("ffn_out", tok)
    bld.einsum(access("ffn_out", tok), access("moe_weighted", pick), None, "sum")
    return gathers


def _head(cfg: ModelConfig, shape: _Shape, dtypes: Dtypes) -> Builder | None:
    """Final norm and LM head (prefill: last token of each sequence; decode: every new token)."""
    if shape.phase == "encoder" and shape.post_norm:
        return None
    bld = Builder("head", dtypes)
    for r, n in (("b", shape.batch), ("p", shape.tokens), ("d", cfg.hidden), ("v", cfg.vocab)):
        bld.rank(r, n)
    bld.tensor("x", ("b", "p", "d"))
    rows: tuple[str, ...] = ("b", "p")
    h = "x"
    if shape.phase == "prefill":
        rows = ("b",)
        bld.tensor("last", ("b", "d"))
        bld.einsum(access("last", ("b", "d")), access("x", ("b", shape.tokens - 1, "d")))
        h = "last"
    final = "y" if shape.phase == "encoder" else "head_in"
    if shape.post_norm:
        final = h
    else:
        _norm(bld, cfg, "lnf", h, rows, final)
    if shape.phase == "encoder":
        return bld
    w, w_idx = ("wte", ("v", "d")) if cfg.tie_embeddings else ("w_lm", ("d", "v"))
    bld.tensor(w, w_idx, "weight")
    bld.tensor("logits", (*rows, "v"))
    bld.einsum(access("logits", (*rows, "v")), (access(final, (*rows, "d")), access(w, w_idx)), "mul", "sum",
               name="lm_head")
    return bld


# --- inputs a caller builds (numpy) -----------------------------------------------------------


def token_mask(ids: np.ndarray, vocab: int) -> np.ndarray:
    """``tokens[b,p,v]``: 0 where v is the token id, -inf elsewhere (the embedding's selection)."""
    ids = np.asarray(ids)
    mask = np.full((*ids.shape, vocab), -np.inf)
    np.put_along_axis(mask, ids[..., None], 0.0, axis=-1)
    return mask


def attention_mask(phase: str, tokens: int, keys_padded: int, kv_len: int = 0,
                   window: int | None = None) -> np.ndarray:
    """``mask[p,m]``: 0 where query p (at position kv_len+p) may see key m, -inf elsewhere.

    Keys are the kv_len cached positions then the step's tokens, then padding (always
    masked). encoder: every real key; prefill/decode: keys at positions <= the query's, and
    with a sliding ``window`` only the last ``window`` of them.
    """
    q_pos = kv_len + np.arange(tokens)[:, None]
    k_pos = np.arange(keys_padded)[None, :]
    visible = (k_pos < kv_len + tokens) & (q_pos >= 0)
    if phase != "encoder":
        visible &= k_pos <= q_pos
        if window is not None:
            visible &= k_pos > q_pos - window
    return np.where(visible, 0.0, -np.inf)


def rope_tables(head_dim: int, positions: np.ndarray, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """``(rope_cos, rope_sin)`` of shape [len(positions), head_dim] for rotate-half RoPE.

    Angle of position t and dim i: t * theta**(-2*(i mod head_dim/2)/head_dim); the sin table's
    first half is negated so that ``x*cos + swap_halves(x)*sin`` is Hugging Face's
    ``x*cos + rotate_half(x)*sin``.
    """
    half = head_dim // 2
    inv_freq = theta ** (-np.arange(half) * 2.0 / head_dim)
    angles = np.asarray(positions, dtype=float)[:, None] * np.concatenate([inv_freq, inv_freq])[None, :]
    sign = np.concatenate([-np.ones(half), np.ones(half)])
    return np.cos(angles), np.sin(angles) * sign


def moe_routing(logits: np.ndarray, top_k: int, capacity: int) -> dict[str, np.ndarray]:
    """``dispatch``, ``combine`` and ``gate`` for router ``logits[b,p,x]`` (top-k, softmax over the k).

    Tokens fill each expert's slots in (b, p) order; a slot left empty reads token (0, 0) and
    is never combined. Raises if an expert gets more than ``capacity`` tokens.
    """
    logits = np.asarray(logits)
    B, P, X = logits.shape
    choice = np.argsort(-logits, axis=-1, kind="stable")[..., :top_k]  # [b,p,j]
    chosen = np.take_along_axis(logits, choice, axis=-1)
    gate = np.exp(chosen - chosen.max(axis=-1, keepdims=True))
    gate /= gate.sum(axis=-1, keepdims=True)
    dispatch = np.full((X, capacity, B, P), -np.inf)
    dispatch[:, :, 0, 0] = 0.0
    combine = np.full((B, P, top_k, X, capacity), -np.inf)
    fill = np.zeros(X, dtype=int)
    for b in range(B):
        for p in range(P):
            for j in range(top_k):
                x = int(choice[b, p, j])
                c = fill[x]
                if c >= capacity:
                    raise WorkloadError(f"moe_routing: expert {x} gets more than capacity={capacity} tokens")
                fill[x] += 1
                dispatch[x, c, :, :] = -np.inf
                dispatch[x, c, b, p] = 0.0
                combine[b, p, j, x, c] = 0.0
    return {"dispatch": dispatch, "combine": combine, "gate": gate}
