"""The model zoo: every shipped file, parameter counts against published ones, HF config.json import."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import pytest
import yaml

from workloads.config import ModelConfig
from workloads.ir import WorkloadError
from workloads.zoo import (
    active_params,
    from_hf_config,
    kv_bytes_per_token,
    list_models,
    load_model,
    matmul_params,
    model_summary,
    param_count,
    published_params,
)

ZOO = [
    "bert-base", "bert-large",
    "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl",
    "gpt3-small", "gpt3-medium", "gpt3-large", "gpt3-xl", "gpt3-13b", "gpt3-175b",
    "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b",
    "mixtral-8x7b", "trxl-wt103", "t5-small-encoder", "xlm",
]
FIELDS = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("name", "sources", "description")]


def _raw(name: str) -> dict:
    text = resources.files("workloads").joinpath("models", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _param_table() -> str:
    """Every zoo model: our total, the published count and the relative error."""
    rows = [f"{'model':18} {'ours':>17} {'published':>17} {'error':>8}"]
    for name in list_models():
        ours, pub = param_count(load_model(name))["total"], published_params(name)
        err = f"{(ours / pub - 1) * 100:+.2f}%" if pub else "-"
        rows.append(f"{name:18} {ours:>17,} {f'{pub:,.0f}' if pub else 'null':>17} {err:>8}")
    return "\n".join(rows)


# --- the files ------------------------------------------------------------------------------------


def test_list_models_is_the_zoo():
    assert list_models() == sorted(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_file_loads_with_a_source_for_every_field(name):
    cfg = load_model(name)
    raw = _raw(name)
    assert cfg.name == name == raw["name"]
    assert cfg.description
    set_fields = [f for f in FIELDS if f in raw]
    assert set_fields == FIELDS, f"{name}: write every field explicitly"
    missing = [f for f in [*set_fields, "published_params"] if not raw["sources"].get(f, "").strip()]
    assert not missing, f"{name}: no source for {missing}"
    assert "published_params" in raw
    if raw["published_params"] is None:
        assert raw["sources"]["published_params"].startswith("null"), "say why there is no published count"
    assert cfg.heads % cfg.kv_heads == 0 and cfg.top_k <= cfg.experts
    if cfg.q_dim != cfg.hidden:  # GPT-3 13B and XL as printed in Brown et al. Table 2.1
        assert str(cfg.q_dim) in cfg.sources["hidden"], f"{name}: explain q_dim {cfg.q_dim} != hidden {cfg.hidden}"


def test_zoo_names_are_case_insensitive():
    assert load_model("LLaMA2-7B") == load_model("llama2-7b")
    assert load_model(" Mixtral-8x7B ") == load_model("mixtral-8x7b")


def test_family_conventions():
    for name in ZOO:
        cfg = load_model(name)
        if cfg.family in ("gpt2", "gpt3"):
            assert (cfg.tie_embeddings, cfg.bias, cfg.position, cfg.norm, cfg.ffn_type, cfg.causal) == (
                True, True, "learned", "layernorm", "gelu", True), name
        if cfg.family in ("llama", "mixtral"):
            assert (cfg.tie_embeddings, cfg.bias, cfg.position, cfg.norm, cfg.ffn_type, cfg.causal) == (
                False, False, "rope", "rmsnorm", "swiglu", True), name
        if cfg.family in ("bert", "encoder"):
            assert not cfg.causal, name
    mixtral = load_model("mixtral-8x7b")
    assert (mixtral.experts, mixtral.top_k) == (8, 2)
    t5 = load_model("t5-small-encoder")
    assert (t5.norm, t5.bias, t5.position) == ("rmsnorm", False, "relative")
    assert load_model("trxl-wt103").position == "relative"
    assert load_model("xlm").position == "learned"
    g13 = load_model("gpt3-13b")
    assert (g13.hidden, g13.heads, g13.head_dim, g13.q_dim) == (5140, 40, 128, 5120)


@pytest.mark.parametrize(
    "name, hidden, heads, e, ffn",
    [("bert-base", 768, 12, 64, 3072), ("trxl-wt103", 1024, 16, 64, 4096),
     ("t5-small-encoder", 512, 8, 64, 2048), ("xlm", 2048, 16, 128, 8192)],
)
def test_fusemax_encoders_match_the_paper(name, hidden, heads, e, ffn):
    cfg = load_model(name)
    assert (cfg.hidden, cfg.heads, cfg.head_dim, cfg.ffn, cfg.causal) == (hidden, heads, e, ffn, False)


# --- parameter counts -----------------------------------------------------------------------------


KNOWN_GAPS = {
    # Reported, not fudged: each config is what its source prints; the published figure is not
    # reachable from it within 1 %.
    "gpt3-medium": "Brown et al. 2020 Table 2.1 gives only the rounded label 350M; d=1024, 24 layers and "
                   "GPT-2's 50257-token vocabulary give 355.9M (+1.7 %)",
    "gpt3-xl": "Table 2.1 prints 24 heads x 128 = 3072 attention width with d_model 2048 (inconsistent); as "
               "printed that is 1.517B (+16.7 %), and even a 2048-wide attention gives 1.316B (+1.2 %) vs the label 1.3B",
    "trxl-wt103": "the real model has adaptive input embeddings / adaptive softmax and a relative-position "
                  "projection per layer, which ModelConfig does not express; a full 267,735 x 1024 embedding gives 501M vs 257M",
}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_GAPS[n], strict=True)) if n in KNOWN_GAPS else n
    for n in ZOO if _raw(n)["published_params"] is not None])
def test_param_count_within_1_percent_of_published(name):
    ours, pub = param_count(load_model(name))["total"], published_params(name)
    assert abs(ours / pub - 1) <= 0.01, f"{name}: {ours:,} vs published {pub:,.0f}\n{_param_table()}"


@pytest.mark.parametrize(
    "name, total",
    [  # exact counts of the Hugging Face modules (BertModel incl. pooler; *ForCausalLM)
        ("bert-base", 109_482_240),
        ("gpt2-small", 124_439_808),
        ("gpt2-medium", 354_823_168),
        ("gpt2-xl", 1_557_611_200),
        ("llama2-7b", 6_738_415_616),
        ("llama2-70b", 68_976_648_192),
        ("llama3-8b", 8_030_261_248),
        ("mixtral-8x7b", 46_702_792_704),
    ],
)
def test_param_count_exact(name, total):
    assert param_count(load_model(name))["total"] == total


def test_param_breakdown_llama2_70b():
    p = param_count(load_model("llama2-70b"))
    assert p["embeddings"] == p["lm_head"] == 32000 * 8192
    assert p["attention_per_layer"] == 2 * 8192 * 8192 + 2 * 8192 * 1024
    assert p["ffn_per_layer"] == 3 * 8192 * 28672
    assert p["norms_per_layer"] == 2 * 8192 and p["final_norm"] == 8192 and p["pooler"] == 0
    assert p["layers"] == 80 * p["per_layer"]
    assert p["total"] == p["embeddings"] + p["layers"] + p["final_norm"] + p["lm_head"]


def test_param_breakdown_bert_base():
    p = param_count(load_model("bert-base"))
    assert p["embeddings"] == (30522 + 512 + 2) * 768
    assert p["attention_per_layer"] == 4 * (768 * 768 + 768)
    assert p["ffn_per_layer"] == 2 * 768 * 3072 + 3072 + 768
    assert p["norms_per_layer"] == 4 * 768 and p["final_norm"] == 2 * 768
    assert p["pooler"] == 768 * 768 + 768 and p["lm_head"] == 0


def test_mixtral_active_and_matmul_params():
    cfg = load_model("mixtral-8x7b")
    p = param_count(cfg)
    assert p["ffn_per_layer"] == 8 * 3 * 4096 * 14336 + 4096 * 8  # experts + router
    assert active_params(cfg) == 12_879_925_248  # "12.9B active" (Mistral AI)
    norms = 32 * p["norms_per_layer"] + p["final_norm"]
    assert matmul_params(cfg) == active_params(cfg) - p["embeddings"] - norms


def test_matmul_params():
    llama = load_model("llama2-7b")
    p = param_count(llama)
    assert matmul_params(llama) == p["total"] - p["embeddings"] - 32 * p["norms_per_layer"] - p["final_norm"]
    gpt2 = load_model("gpt2-small")  # tied LM head still multiplies; biases are not matmul weights
    assert matmul_params(gpt2) == 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 50257 * 768
    bert = load_model("bert-base")  # encoder: no LM head, no pooler
    assert matmul_params(bert) == 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    for name in ZOO:
        cfg = load_model(name)
        assert active_params(cfg) == param_count(cfg)["total"] or cfg.experts > 1


def test_kv_bytes_per_token():
    assert kv_bytes_per_token(load_model("llama2-70b")) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_bytes_per_token(load_model("llama2-7b")) == 2 * 32 * 32 * 128 * 2 == 524_288
    assert kv_bytes_per_token(load_model("llama2-70b"), kv_bytes=1) == 163_840


def test_model_summary():
    s = model_summary(load_model("mixtral-8x7b"))
    assert s["name"] == "mixtral-8x7b" and s["family"] == "mixtral"
    assert s["params"] == 46_702_792_704 and s["active_params"] == 12_879_925_248
    assert (s["layers"], s["hidden"], s["heads"], s["kv_heads"], s["ffn"], s["experts"]) == (32, 4096, 32, 8, 14336, 8)


# --- Hugging Face config.json ---------------------------------------------------------------------

BERT_BASE = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}
GPT2_XL = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 1600, "n_head": 25,
    "n_layer": 48, "n_positions": 1024, "output_past": True, "resid_pdrop": 0.1, "summary_activation": None,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "vocab_size": 50257,
}
LLAMA2_70B = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 8192, "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "tie_word_embeddings": False,
    "torch_dtype": "float16", "transformers_version": "4.32.0.dev0", "use_cache": True, "vocab_size": 32000,
}
LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256,
}
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
    "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000,
}
MIXTRAL = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
    "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
    "output_router_logits": False, "rms_norm_eps": 1e-05, "rope_theta": 1e6, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000,
}


def _write_config(tmp_path, data, folder="model") -> str:
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return str(path)


@pytest.mark.parametrize(
    "data, zoo_name",
    [(BERT_BASE, "bert-base"), (GPT2_XL, "gpt2-xl"), (LLAMA2_70B, "llama2-70b"), (LLAMA3_8B, "llama3-8b"),
     (MIXTRAL, "mixtral-8x7b")],
)
def test_hf_config_matches_zoo(tmp_path, data, zoo_name):
    cfg = load_model(_write_config(tmp_path, data, folder="Some-Model"))
    assert cfg.name == "Some-Model"
    assert dataclasses.replace(cfg, name=zoo_name) == load_model(zoo_name)
    assert set(cfg.sources) >= set(FIELDS)
    assert from_hf_config(data, zoo_name) == load_model(zoo_name)


def test_hf_mistral(tmp_path):
    cfg = load_model(_write_config(tmp_path, MISTRAL_7B, folder="Mistral-7B-v0.1"))
    assert cfg == ModelConfig(
        name="Mistral-7B-v0.1", family="mistral", hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128,
        ffn=14336, vocab=32000, max_seq=32768, ffn_type="swiglu", norm="rmsnorm", position="rope", causal=True,
        bias=False, tie_embeddings=False, rope_theta=10000.0, sliding_window=4096,
    )
    assert param_count(cfg)["total"] == 7_241_732_096  # "7.24B" (HF mistralai/Mistral-7B-v0.1)
    no_window = load_model(_write_config(tmp_path, MISTRAL_7B | {"sliding_window": None}, folder="m2"))
    assert no_window.sliding_window is None


def test_hf_defaults_and_directory(tmp_path):
    gpt2 = dict(GPT2_XL, n_inner=None)
    _write_config(tmp_path, gpt2, folder="gpt")
    cfg = load_model(str(tmp_path / "gpt"))  # a folder holding config.json
    assert cfg.name == "gpt" and cfg.ffn == 4 * 1600 and cfg.tie_embeddings
    named = load_model(_write_config(tmp_path, LLAMA2_70B | {"_name_or_path": "meta-llama/Llama-2-70b-hf"}))
    assert named.name == "Llama-2-70b-hf"
    mha = {k: v for k, v in LLAMA2_70B.items() if k != "num_key_value_heads"}
    assert load_model(_write_config(tmp_path, mha, folder="mha")).kv_heads == 64


MALFORMED = [
    ('{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}', ":3: invalid JSON", None),
    ("[1, 2, 3]", "must be a JSON object, got list", None),
    ({"hidden_size": 4096}, "key 'model_type' missing", "model_type"),
    ({"model_type": "gptj", "n_embd": 4096}, "key 'model_type' is 'gptj'", "model_type"),
    ({"model_type": "lama"}, "(did you mean 'llama'?)", "model_type"),
    ({k: v for k, v in LLAMA2_70B.items() if k != "num_attention_heads"},
     "key 'num_attention_heads' missing (needed for model_type 'llama')", "num_attention_heads"),
    (LLAMA2_70B | {"hidden_size": 0}, "key 'hidden_size' must be a positive integer, got 0", "hidden_size"),
    (LLAMA2_70B | {"hidden_size": "8192"}, "key 'hidden_size' must be a positive integer, got '8192'", "hidden_size"),
    (LLAMA2_70B | {"num_hidden_layers": 80.5}, "must be a positive integer, got 80.5", "num_hidden_layers"),
    (LLAMA2_70B | {"intermediate_size": True}, "must be a positive integer, got True", "intermediate_size"),
    (LLAMA2_70B | {"num_key_value_heads": 6}, "(6) must divide the number of heads (64)", "num_key_value_heads"),
    (LLAMA2_70B | {"tie_word_embeddings": "no"}, "must be true or false", "tie_word_embeddings"),
    (LLAMA2_70B | {"hidden_act": "gelu"}, "only silu (SwiGLU) is supported", "hidden_act"),
    (LLAMA2_70B | {"rope_theta": -1}, "must be a positive number", "rope_theta"),
    ({k: v for k, v in MIXTRAL.items() if k != "num_local_experts"},
     "key 'num_local_experts' missing (needed for model_type 'mixtral')", "num_local_experts"),
    (MIXTRAL | {"num_experts_per_tok": 9}, "must not exceed num_local_experts (8)", "num_experts_per_tok"),
    (MISTRAL_7B | {"sliding_window": -4096}, "must be a positive integer", "sliding_window"),
    ({k: v for k, v in GPT2_XL.items() if k != "n_embd"}, "key 'n_embd' missing (needed for model_type 'gpt2')", "n_embd"),
    (GPT2_XL | {"n_head": 7}, "(7) must divide the hidden size (1600)", "n_head"),
    (BERT_BASE | {"hidden_act": "tanh"}, "key 'hidden_act' is 'tanh'", "hidden_act"),
    (BERT_BASE | {"type_vocab_size": -1}, "must be a non-negative integer", "type_vocab_size"),
]


@pytest.mark.parametrize("data, fragment, key", MALFORMED)
def test_malformed_hf_config(tmp_path, data, fragment, key):
    path = _write_config(tmp_path, data)
    with pytest.raises(WorkloadError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path), message
    assert fragment in message
    if key:
        assert f"'{key}'" in message


def test_malformed_message_form(tmp_path):
    data = {k: v for k, v in LLAMA2_70B.items() if k != "num_attention_heads"}
    with pytest.raises(WorkloadError, match=r"^config\.json: key 'num_attention_heads' missing \(needed for model_type 'llama'\)$"):
        from_hf_config(data, "x")


# --- names and paths ------------------------------------------------------------------------------


def test_unknown_model_suggests():
    with pytest.raises(WorkloadError) as info:
        load_model("lama2-7b")
    message = str(info.value)
    assert message.startswith("unknown model 'lama2-7b' (did you mean 'llama2-7b'?); known: bert-base, bert-large")
    assert message.endswith("(or a path to a Hugging Face config.json)") and "\n" not in message
    with pytest.raises(WorkloadError, match=r"^unknown model 'qwerty'; known: .*xlm \(or a path"):
        load_model("qwerty")


def test_missing_file(tmp_path):
    with pytest.raises(WorkloadError, match="no such file"):
        load_model(str(tmp_path / "nope" / "config.json"))


def test_model_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(resources.files("workloads").joinpath("models", "llama2-7b.yaml").read_text())
    assert load_model(str(path)) == load_model("llama2-7b")
    assert published_params(str(path)) == 6.74e9
    assert published_params(_write_config(tmp_path, LLAMA2_70B)) is None


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (("hidden: 4096", "hiden: 4096"), ":7: key 'hiden' is unknown (did you mean 'hidden'?)"),
        (("heads: 32", "heads: 0"), ":9: key 'heads' must be a positive integer, got 0"),
        (("kv_heads: 32", "kv_heads: 5"), ":10: key 'kv_heads' (5) must divide heads (32)"),
        (("norm: rmsnorm", "norm: batchnorm"), ":16: key 'norm' is 'batchnorm'; allowed: layernorm, rmsnorm"),
        (("layers: 32", "layers: [32"), ": invalid YAML"),
        (("name: llama2-7b\n", ""), "key 'name' missing"),
    ],
)
def test_malformed_model_yaml(tmp_path, edit, fragment):
    text = resources.files("workloads").joinpath("models", "llama2-7b.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(WorkloadError) as info:
        load_model(str(path))
    message = str(info.value)
    assert message.startswith(str(path)) and fragment in message and "\n" not in message, message
