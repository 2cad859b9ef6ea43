"""The model zoo: named ModelConfigs shipped as YAML, Hugging Face config.json import, parameter counts.

``load_model`` takes a zoo name (``llama2-70b``, case-insensitive), a path to a Hugging Face
``config.json`` (families bert, gpt2, llama, mistral, mixtral) or a path to a model YAML file in
the zoo's own format. Every error is a one-line :class:`WorkloadError` naming the file and key.

Parameter counts follow the Hugging Face module layout of each family:

* ``embeddings``: token table, plus the position table when positions are learned, plus
  BERT's token-type table. Relative-position parameters are not counted (T5's 32-bucket bias
  table; Transformer-XL's per-layer position projection).
* ``final_norm``: the one norm outside the layers -- the final norm of pre-LN models, or the
  embedding LayerNorm of post-LN encoders (BERT, XLM).
* ``pooler``: BERT's [CLS] pooler (hidden x hidden + bias), which BertModel and the published
  110M / 340M counts include; 0 for every other family.
* ``lm_head``: vocab x hidden unless tied to the token embedding (then 0; its matmul still
  counts in :func:`matmul_params`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from workloads.config import ModelConfig
from workloads.ir import WorkloadError

FAMILIES = ("bert", "gpt2", "gpt3", "llama", "mistral", "mixtral", "encoder")
"""Values of ``ModelConfig.family``."""

CHOICES: dict[str, tuple[str, ...]] = {
    "family": FAMILIES,
    "ffn_type": ("gelu", "swiglu", "relu"),  # relu: 2-matrix FFN with ReLU (T5 v1.0, Transformer-XL)
    "norm": ("layernorm", "rmsnorm"),
    "position": ("learned", "rope", "relative", "none"),
}
"""Allowed values of the ModelConfig string fields."""

HF_MODEL_TYPES = ("bert", "gpt2", "llama", "mistral", "mixtral")
"""Hugging Face ``model_type`` values that :func:`from_hf_config` understands."""

_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("sources", "description"))
_REQUIRED = ("name", "family", "hidden", "layers", "heads", "kv_heads", "head_dim", "ffn", "vocab", "max_seq")
_YAML_KEYS = (*_CONFIG_FIELDS, "published_params", "sources", "description")
_YAML_SUFFIXES = (".yaml", ".yml")
_HF_GELU = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "gelu_accurate", "quick_gelu")


# --- the zoo --------------------------------------------------------------------------------------


def _models_dir():
    """The folder of model YAML files shipped inside the package."""
    return resources.files("workloads").joinpath("models")


def list_models() -> list[str]:
    """Names of the zoo's models, sorted."""
    return sorted(e.name[: -len(".yaml")] for e in _models_dir().iterdir() if e.name.endswith(".yaml"))


def load_model(name_or_path: str | Path) -> ModelConfig:
    """The ModelConfig for a zoo name, a Hugging Face config.json path, or a model YAML path."""
    return _load(name_or_path)[0]


def published_params(name_or_path: str | Path) -> float | None:
    """The published total parameter count recorded for a zoo model or model YAML (None if none)."""
    return _load(name_or_path)[1]


def _load(name_or_path: str | Path) -> tuple[ModelConfig, float | None]:
    """(config, published parameter count) for a zoo name or a file path."""
    text, path = str(name_or_path), Path(name_or_path)
    suffix = path.suffix.lower()
    looks_like_path = isinstance(name_or_path, Path) or suffix in (*_YAML_SUFFIXES, ".json") or "/" in text or "\\" in text
    if not looks_like_path:
        key = text.strip().lower()
        if key in list_models():
            entry = _models_dir().joinpath(f"{key}.yaml")
            return _model_from_yaml_text(entry.read_text(encoding="utf-8"), f"{key}.yaml")
        if not path.exists():
            raise _unknown_model(text)
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
        text, suffix = str(path), ".json"
    if not path.exists():
        raise WorkloadError(f"{text}: no such file")
    if not path.is_file():
        raise WorkloadError(f"{text}: not a file")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise WorkloadError(f"{text}: cannot read: {err}") from None
    if suffix in _YAML_SUFFIXES:
        return _model_from_yaml_text(content, text)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise WorkloadError(f"{text}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
    return from_hf_config(data, _hf_name(data, path), file=text), None


def _unknown_model(name: str) -> WorkloadError:
    """The error for a name that is neither a zoo model nor a file, with a did-you-mean."""
    names = list_models()
    close = difflib.get_close_matches(name.strip().lower(), names, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return WorkloadError(
        f"unknown model '{name}'{hint}; known: {', '.join(names)} (or a path to a Hugging Face config.json)"
    )


# --- the zoo's YAML format ------------------------------------------------------------------------


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key of a YAML mapping document ({} if not a mapping)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def _model_from_yaml_text(text: str, file: str) -> tuple[ModelConfig, float | None]:
    """Parse and validate one model YAML document read from ``file``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise WorkloadError(f"{where}: invalid YAML: {problem}") from None
    return model_from_dict(data, file=file, lines=_key_lines(text))


def model_from_dict(
    data: object, file: str = "<model>", lines: Mapping[str, int] | None = None
) -> tuple[ModelConfig, float | None]:
    """Validate the zoo's YAML form (ModelConfig fields, published_params, sources) as plain data."""
    lines = lines or {}

    def fail(key: str | None, why: str) -> WorkloadError:
        line = lines.get(key) if key else None
        where = f"{file}:{line}" if line else file
        return WorkloadError(f"{where}: {f'key {key!r} ' if key else ''}{why}")

    if not isinstance(data, dict):
        kind = "an empty document" if data is None else f"a {type(data).__name__}"
        raise fail(None, f"a model file must be a mapping of ModelConfig fields; got {kind}")
    for key in data:
        if key not in _YAML_KEYS:
            close = difflib.get_close_matches(str(key), _YAML_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(_YAML_KEYS)})"
            raise fail(str(key), f"is unknown{hint}")
    for key in _REQUIRED:
        if key not in data:
            raise fail(None, f"key {key!r} missing")
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.default is not dataclasses.MISSING}
    values = {key: data.get(key, defaults.get(key)) for key in _CONFIG_FIELDS}
    _check_fields(values, fail)
    sources = data.get("sources", {}) or {}
    if not isinstance(sources, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sources.items()):
        raise fail("sources", "must map field names to citation text")
    for key in sources:
        if key not in (*_CONFIG_FIELDS, "published_params"):
            raise fail("sources", f"names unknown field {key!r}")
    published = data.get("published_params")
    if published is not None and (isinstance(published, bool) or not isinstance(published, (int, float)) or published <= 0):
        raise fail("published_params", f"must be a positive number or null, got {published!r}")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise fail("description", "must be text")
    config = ModelConfig(**values, sources=dict(sources), description=" ".join(description.split()))
    return config, (float(published) if published is not None else None)


def _check_fields(values: dict[str, Any], fail: Callable[[str | None, str], WorkloadError]) -> None:
    """Type- and range-check ModelConfig field values, raising ``fail(key, why)``."""
    if not isinstance(values["name"], str) or not values["name"].strip():
        raise fail("name", f"must be non-empty text, got {values['name']!r}")
    for key, allowed in CHOICES.items():
        if values[key] not in allowed:
            raise fail(key, f"is {values[key]!r}; allowed: {', '.join(allowed)}")
    for key in ("hidden", "layers", "heads", "kv_heads", "head_dim", "ffn", "vocab", "max_seq", "experts", "top_k"):
        if not _is_int(values[key]) or values[key] < 1:
            raise fail(key, f"must be a positive integer, got {values[key]!r}")
    if not _is_int(values["type_vocab"]) or values["type_vocab"] < 0:
        raise fail("type_vocab", f"must be a non-negative integer, got {values['type_vocab']!r}")
    for key in ("causal", "bias", "tie_embeddings"):
        if not isinstance(values[key], bool):
            raise fail(key, f"must be true or false, got {values[key]!r}")
    theta = values["rope_theta"]
    if theta is not None and (isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 0):
        raise fail("rope_theta", f"must be a positive number or null, got {theta!r}")
    if theta is not None:
        values["rope_theta"] = float(theta)
    window = values["sliding_window"]
    if window is not None and (not _is_int(window) or window < 1):
        raise fail("sliding_window", f"must be a positive integer or null, got {window!r}")
    if values["heads"] % values["kv_heads"]:
        raise fail("kv_heads", f"({values['kv_heads']}) must divide heads ({values['heads']})")
    if values["top_k"] > values["experts"]:
        raise fail("top_k", f"({values['top_k']}) must not exceed experts ({values['experts']})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Hugging Face config.json ---------------------------------------------------------------------


def _hf_name(data: object, path: Path) -> str:
    """A model name for a config.json: its ``_name_or_path``, else its folder, else the file stem."""
    if isinstance(data, dict) and isinstance(data.get("_name_or_path"), str) and data["_name_or_path"].strip():
        return data["_name_or_path"].strip().rstrip("/").split("/")[-1]
    if path.name == "config.json" and path.parent.name:
        return path.parent.name
    return path.stem


class _HFReader:
    """Reads keys of one Hugging Face config, recording the source of each ModelConfig field."""

    def __init__(self, data: dict, file: str, model_type: str) -> None:
        self.data, self.file, self.model_type = data, file, model_type
        self.sources: dict[str, str] = {}

    def error(self, key: str, why: str) -> WorkloadError:
        return WorkloadError(f"{self.file}: key {key!r} {why}")

    def int(self, field: str, key: str, default: int | None = None, minimum: int = 1, default_is: str = "") -> int:
        """A required (or defaulted) integer >= minimum."""
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, f"missing (needed for model_type {self.model_type!r})")
            self.sources[field] = f"{self.file}: {key} absent, Hugging Face default {default_is or default}"
            return default
        if not _is_int(value) or value < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise self.error(key, f"must be a {kind} integer, got {value!r}")
        self.sources[field] = f"{self.file}: {key} = {value}"
        return value

    def opt_int(self, field: str, key: str, default: int | None) -> int | None:
        """An optional positive integer; absent -> ``default``, null -> None."""
        if key not in self.data:
            self.sources[field] = f"{self.file}: {key} absent, Hugging Face default {default}"
            return default
        if self.data[key] is None:
            self.sources[field] = f"{self.file}: {key} = null"
            return None
        return self.int(field, key)

    def bool(self, field: str, key: str, default: bool) -> bool:
        """An optional boolean."""
        value = self.data.get(key)
        if value is None:
            self.sources[field] = f"{self.file}: {key} absent, Hugging Face default {str(default).lower()}"
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        self.sources[field] = f"{self.file}: {key} = {str(value).lower()}"
        return value

    def text(self, key: str, default: str) -> str:
        """An optional string."""
        value = self.data.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, str):
            raise self.error(key, f"must be text, got {value!r}")
        return value

    def number(self, field: str, key: str, default: float) -> float:
        """An optional positive number."""
        value = self.data.get(key)
        if value is None:
            self.sources[field] = f"{self.file}: {key} absent, Hugging Face default {default}"
            return float(default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.error(key, f"must be a positive number, got {value!r}")
        self.sources[field] = f"{self.file}: {key} = {value}"
        return float(value)

    def note(self, field: str, text: str) -> None:
        """Record a source that is not one key (derived or fixed by the family)."""
        self.sources[field] = text


def from_hf_config(data: dict, name: str, file: str = "config.json") -> ModelConfig:
    """A ModelConfig from a parsed Hugging Face config.json (model_type bert, gpt2, llama, mistral, mixtral)."""
    if not isinstance(data, dict):
        raise WorkloadError(f"{file}: a Hugging Face config must be a JSON object, got {type(data).__name__}")
    model_type = data.get("model_type")
    if model_type is None:
        raise WorkloadError(f"{file}: key 'model_type' missing (supported: {', '.join(HF_MODEL_TYPES)})")
    if model_type not in HF_MODEL_TYPES:
        close = difflib.get_close_matches(str(model_type), HF_MODEL_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WorkloadError(
            f"{file}: key 'model_type' is {model_type!r}{hint}; supported: {', '.join(HF_MODEL_TYPES)}"
        )
    r = _HFReader(data, file, model_type)
    build = {"bert": _hf_bert, "gpt2": _hf_gpt2}.get(model_type, _hf_llama_like)
    values = build(r)
    values["name"] = name
    values["family"] = model_type
    r.note("family", f"{file}: model_type = {model_type}")
    if values["heads"] % values["kv_heads"]:
        key = "num_key_value_heads"
        raise r.error(key, f"({values['kv_heads']}) must divide the number of heads ({values['heads']})")

    def fail(key: str | None, why: str) -> WorkloadError:
        return WorkloadError(f"{file}: {why if key is None else f'field {key!r} {why}'}")

    _check_fields(values, fail)
    return ModelConfig(**values, sources=r.sources, description=f"from {file} (Hugging Face model_type {model_type})")


def _split_heads(r: _HFReader, hidden: int, heads: int, heads_key: str) -> int:
    """head_dim = hidden / heads, which must divide."""
    if hidden % heads:
        raise r.error(heads_key, f"({heads}) must divide the hidden size ({hidden}) when head_dim is not given")
    r.note("head_dim", f"{r.file}: hidden / {heads_key} = {hidden} / {heads}")
    return hidden // heads


def _gelu_or_relu(r: _HFReader, key: str, default: str) -> str:
    """ffn_type of a 2-matrix FFN from its activation name."""
    act = r.text(key, default)
    if act in _HF_GELU:
        kind = "gelu"
    elif act == "relu":
        kind = "relu"
    else:
        raise r.error(key, f"is {act!r}; supported: {', '.join(_HF_GELU)}, relu")
    r.note("ffn_type", f"{r.file}: {key} = {act} (2-matrix FFN)")
    return kind


def _dense_fixed(r: _HFReader, bias: bool, family_note: str) -> dict[str, Any]:
    """Fields every dense HF family here fixes in its modeling code."""
    r.note("experts", "dense model")
    r.note("top_k", "dense model")
    r.note("bias", f"{family_note}: projections {'have' if bias else 'have no'} biases")
    return {"experts": 1, "top_k": 1, "bias": bias}


def _hf_bert(r: _HFReader) -> dict[str, Any]:
    hidden = r.int("hidden", "hidden_size")
    heads = r.int("heads", "num_attention_heads")
    kind = r.text("position_embedding_type", "absolute")
    if kind not in ("absolute", "relative_key", "relative_key_query"):
        raise r.error("position_embedding_type", f"is {kind!r}; supported: absolute, relative_key, relative_key_query")
    r.note("position", f"{r.file}: position_embedding_type = {kind}")
    r.note("kv_heads", "multi-head attention: kv_heads = num_attention_heads")
    r.note("norm", "modeling_bert: post-LN LayerNorm with bias")
    r.note("rope_theta", "not RoPE")
    r.note("sliding_window", "full attention")
    values = {
        "hidden": hidden,
        "layers": r.int("layers", "num_hidden_layers"),
        "heads": heads,
        "kv_heads": heads,
        "head_dim": _split_heads(r, hidden, heads, "num_attention_heads"),
        "ffn": r.int("ffn", "intermediate_size"),
        "vocab": r.int("vocab", "vocab_size"),
        "max_seq": r.int("max_seq", "max_position_embeddings"),
        "ffn_type": _gelu_or_relu(r, "hidden_act", "gelu"),
        "norm": "layernorm",
        "position": "learned" if kind == "absolute" else "relative",
        "causal": r.bool("causal", "is_decoder", False),
        "tie_embeddings": r.bool("tie_embeddings", "tie_word_embeddings", True),
        "type_vocab": r.int("type_vocab", "type_vocab_size", default=2, minimum=0),
        "rope_theta": None,
        "sliding_window": None,
    }
    return values | _dense_fixed(r, True, "modeling_bert")


def _hf_gpt2(r: _HFReader) -> dict[str, Any]:
    hidden = r.int("hidden", "n_embd")
    heads = r.int("heads", "n_head")
    ffn = r.opt_int("ffn", "n_inner", None)
    if ffn is None:
        ffn = 4 * hidden
        r.note("ffn", f"{r.file}: n_inner null or absent -> 4 * n_embd = {ffn}")
    r.note("kv_heads", "multi-head attention: kv_heads = n_head")
    r.note("norm", "modeling_gpt2: pre-LN LayerNorm with bias")
    r.note("position", "modeling_gpt2: learned position table (wpe)")
    r.note("causal", "decoder-only LM (causal mask)")
    r.note("type_vocab", "no token types")
    r.note("rope_theta", "not RoPE")
    r.note("sliding_window", "full attention")
    values = {
        "hidden": hidden,
        "layers": r.int("layers", "n_layer"),
        "heads": heads,
        "kv_heads": heads,
        "head_dim": _split_heads(r, hidden, heads, "n_head"),
        "ffn": ffn,
        "vocab": r.int("vocab", "vocab_size"),
        "max_seq": r.int("max_seq", "n_positions"),
        "ffn_type": _gelu_or_relu(r, "activation_function", "gelu_new"),
        "norm": "layernorm",
        "position": "learned",
        "causal": True,
        "tie_embeddings": r.bool("tie_embeddings", "tie_word_embeddings", True),
        "type_vocab": 0,
        "rope_theta": None,
        "sliding_window": None,
    }
    return values | _dense_fixed(r, True, "modeling_gpt2")


def _hf_llama_like(r: _HFReader) -> dict[str, Any]:
    """llama, mistral and mixtral: RMSNorm, RoPE, gated SiLU FFN, GQA."""
    mt = r.model_type
    hidden = r.int("hidden", "hidden_size")
    heads = r.int("heads", "num_attention_heads")
    kv_heads = r.int("kv_heads", "num_key_value_heads", default=heads, default_is=f"num_attention_heads = {heads}")
    if r.data.get("head_dim") is None:
        head_dim = _split_heads(r, hidden, heads, "num_attention_heads")
    else:
        head_dim = r.int("head_dim", "head_dim")
    act = r.text("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise r.error("hidden_act", f"is {act!r}; only silu (SwiGLU) is supported for model_type {mt!r}")
    r.note("ffn_type", f"{r.file}: hidden_act = {act}, gated MLP (gate, up, down) = SwiGLU")
    r.note("norm", f"modeling_{mt}: RMSNorm (weight only)")
    r.note("position", f"modeling_{mt}: rotary position embedding")
    r.note("causal", "decoder-only LM (causal mask)")
    r.note("type_vocab", "no token types")
    values = {
        "hidden": hidden,
        "layers": r.int("layers", "num_hidden_layers"),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "ffn": r.int("ffn", "intermediate_size"),
        "vocab": r.int("vocab", "vocab_size"),
        "max_seq": r.int("max_seq", "max_position_embeddings"),
        "ffn_type": "swiglu",
        "norm": "rmsnorm",
        "position": "rope",
        "causal": True,
        "tie_embeddings": r.bool("tie_embeddings", "tie_word_embeddings", False),
        "type_vocab": 0,
        "rope_theta": r.number("rope_theta", "rope_theta", 1e6 if mt == "mixtral" else 10000.0),
        "bias": r.bool("bias", "attention_bias", False),
    }
    if mt == "llama":
        values["sliding_window"] = None
        r.note("sliding_window", "full attention")
    else:
        values["sliding_window"] = r.opt_int("sliding_window", "sliding_window", 4096 if mt == "mistral" else None)
    if mt == "mixtral":
        values["experts"] = r.int("experts", "num_local_experts")
        values["top_k"] = r.int("top_k", "num_experts_per_tok")
        if values["top_k"] > values["experts"]:
            raise r.error(
                "num_experts_per_tok", f"({values['top_k']}) must not exceed num_local_experts ({values['experts']})"
            )
    else:
        values["experts"], values["top_k"] = 1, 1
        r.note("experts", "dense model")
        r.note("top_k", "dense model")
    return values


# --- parameter counts -----------------------------------------------------------------------------


def _norm_size(cfg: ModelConfig) -> int:
    """Parameters of one norm: LayerNorm has weight and bias, RMSNorm a weight only."""
    return 2 * cfg.hidden if cfg.norm == "layernorm" else cfg.hidden


def _ffn_matrices(cfg: ModelConfig) -> int:
    """Weight matrices of one FFN (expert): 3 for SwiGLU (gate, up, down), else 2."""
    return 3 if cfg.ffn_type == "swiglu" else 2


def _expert_params(cfg: ModelConfig) -> int:
    """Parameters of one FFN expert, biases included when ``cfg.bias``."""
    mats = _ffn_matrices(cfg)
    biases = ((mats - 1) * cfg.ffn + cfg.hidden) if cfg.bias else 0
    return mats * cfg.hidden * cfg.ffn + biases


def _router_params(cfg: ModelConfig) -> int:
    """The MoE router's hidden x experts matrix (0 for dense models)."""
    return cfg.hidden * cfg.experts if cfg.experts > 1 else 0


def param_count(cfg: ModelConfig) -> dict[str, int]:
    """Parameters broken down by part (see the module docstring); ``total`` sums them."""
    h, b = cfg.hidden, cfg.bias
    embeddings = cfg.vocab * h + cfg.type_vocab * h + (cfg.max_seq * h if cfg.position == "learned" else 0)
    attention = 2 * h * cfg.q_dim + 2 * h * cfg.kv_dim + ((cfg.q_dim + 2 * cfg.kv_dim + h) if b else 0)
    ffn = cfg.experts * _expert_params(cfg) + _router_params(cfg)
    norms = 2 * _norm_size(cfg)
    per_layer = attention + ffn + norms
    parts = {
        "embeddings": embeddings,
        "attention_per_layer": attention,
        "ffn_per_layer": ffn,
        "norms_per_layer": norms,
        "per_layer": per_layer,
        "layers": per_layer * cfg.layers,
        "final_norm": _norm_size(cfg),
        "lm_head": 0 if cfg.tie_embeddings else cfg.vocab * h,
        "pooler": h * h + h if cfg.family == "bert" else 0,
    }
    parts["total"] = sum(parts[k] for k in ("embeddings", "layers", "final_norm", "lm_head", "pooler"))
    return parts


def active_params(cfg: ModelConfig) -> int:
    """Parameters one token touches: the total less the experts it is not routed to (MoE)."""
    return param_count(cfg)["total"] - cfg.layers * (cfg.experts - cfg.top_k) * _expert_params(cfg)


def matmul_params(cfg: ModelConfig) -> int:
    """Weights multiplied per token (2 FLOPs each): q, k, v, o, top_k experts' FFN, router, LM head.

    Biases, norms and embedding lookups are not matmuls. The LM head counts even when tied, but
    only for causal (decoder) models: an encoder's output is its hidden states.
    """
    h = cfg.hidden
    attention = 2 * h * cfg.q_dim + 2 * h * cfg.kv_dim
    ffn = cfg.top_k * _ffn_matrices(cfg) * h * cfg.ffn + _router_params(cfg)
    lm_head = cfg.vocab * h if cfg.causal else 0
    return cfg.layers * (attention + ffn) + lm_head


def kv_bytes_per_token(cfg: ModelConfig, kv_bytes: float = 2) -> float:
    """KV-cache bytes one token adds: 2 (K and V) x layers x kv_heads x head_dim x bytes per value."""
    return 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * kv_bytes


def model_summary(cfg: ModelConfig) -> dict[str, Any]:
    """The one-row summary ``einsim models`` prints."""
    return {
        "name": cfg.name,
        "family": cfg.family,
        "params": param_count(cfg)["total"],
        "active_params": active_params(cfg),
        "layers": cfg.layers,
        "hidden": cfg.hidden,
        "heads": cfg.heads,
        "kv_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "ffn": cfg.ffn,
        "ffn_type": cfg.ffn_type,
        "experts": cfg.experts,
        "top_k": cfg.top_k,
        "vocab": cfg.vocab,
        "max_seq": cfg.max_seq,
    }
