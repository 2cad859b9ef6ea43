"""Whole models end to end: lowering -> mapping -> simulation, and the CLI around it."""

from __future__ import annotations

import json

import pytest

from sim import evaluate
from sim.cli import main
from workloads import Dtypes, lower
from workloads.zoo import list_models, load_model, param_count


@pytest.fixture(scope="module")
def llama_decode():
    program = lower(load_model("llama2-7b"), "decode", kv_len=64, batch=2)
    return program, evaluate("tpu-like", program)


def test_simulated_macs_equal_the_programs_and_layers_repeat(llama_decode):
    program, result = llama_decode
    assert result.macs == program.macs() == program.op_counts()["mac"]
    layer = [e for e in result.einsums if e.segment == "layer"]
    assert layer and all(e.repeat == 32 for e in layer)
    assert result.latency_cycles == sum(e.repeat * e.sim.latency_cycles for e in result.einsums)
    assert result.latency_cycles >= result.to_dict()["roofline_cycles"]


def test_decode_reads_every_weight_and_the_cache_once(llama_decode):
    program, result = llama_decode
    hbm = result.traffic_by_tensor["hbm"]
    cfg = load_model("llama2-7b")
    per_layer = 2 * (cfg.hidden * cfg.q_dim * 2 + cfg.hidden * cfg.kv_dim * 2 + 3 * cfg.hidden * cfg.ffn)
    layer_weights = sum(hbm[w]["read"] for w in ("wq", "wk", "wv", "wo", "w_up", "w_gate", "w_down"))
    assert layer_weights == 32 * per_layer  # decode GEMVs stream each weight exactly once
    # the cached keys are read in place once (keys_past is a view, not a copy)
    assert "layer.keys_past" in result.views
    cache = 2 * 64 * cfg.kv_dim * 2 * 32  # batch 2, kv_len 64, bf16, 32 layers
    assert hbm["keys"]["read"] >= cache and hbm["keys"]["read"] < 1.1 * cache + 2 * 2 * cfg.kv_dim * 2 * 32 * 2


def test_embedding_lookup_is_priced_as_a_gather(llama_decode):
    _, result = llama_decode
    embed = next(e for e in result.einsums if e.einsum == "embed_tok")
    assert embed.sim.ops == {} and embed.sim.macs == 0
    cfg = load_model("llama2-7b")
    rows = 2 * 1 * cfg.hidden * 2  # batch 2, one new token, bf16
    assert embed.sim.traffic["hbm"]["wte"]["read"] == rows  # the selected rows, not the table
    assert embed.sim.traffic["hbm"].get("tokens", {"read": 0})["read"] == 0


def test_int8_weights_halve_weight_traffic():
    cfg = load_model("gpt2-small")
    bf16 = evaluate("tpu-like", lower(cfg, "decode", kv_len=32))
    int8 = evaluate("tpu-like", lower(cfg, "decode", kv_len=32, dtypes=Dtypes(weights="int8")))
    assert int8.traffic_by_tensor["hbm"]["wq"]["read"] * 2 == bf16.traffic_by_tensor["hbm"]["wq"]["read"]


def test_moe_prefill_runs_and_counts_active_experts():
    program = lower(load_model("mixtral-8x7b"), "prefill", seq=32)
    result = evaluate("tpu-like", program)
    assert result.macs == program.macs()
    assert {"moe_dispatch", "moe_combine"} <= {e.einsum for e in result.einsums}


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_decode_and_prefill_of_a_zoo_model(capsys):
    rc, out, _ = run_cli(capsys, "run", "--workload", "llama2-7b", "--phase", "decode", "--kv-len", "128",
                         "--batch", "8", "--arch", "tpu-like", "--json")
    assert rc == 0
    decode = json.loads(out)
    rc, out, _ = run_cli(capsys, "run", "--workload", "llama2-7b", "--phase", "prefill", "--seq", "128",
                         "--arch", "tpu-like", "--json")
    assert rc == 0
    prefill = json.loads(out)
    assert decode["macs"] == lower(load_model("llama2-7b"), "decode", kv_len=128, batch=8).macs()
    assert prefill["macs"] == lower(load_model("llama2-7b"), "prefill", seq=128).macs()


def test_cli_runs_a_hugging_face_config(capsys, tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_attention_heads": 8,
           "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 512}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    rc, out, _ = run_cli(capsys, "run", "--workload", str(path), "--arch", "edge-32x32", "--phase", "prefill",
                         "--seq", "64", "--json")
    assert rc == 0
    assert json.loads(out)["macs"] == lower(load_model(str(path)), "prefill", seq=64).macs()


@pytest.mark.parametrize("text, fragment", [
    ('{"model_type": "llama", "hidden_size": 64', "bad.json:1"),
    ('{"model_type": "llama"}', "hidden_size"),
    ('{"model_type": "t5", "d_model": 512}', "model_type"),
    ('[1, 2]', "bad.json"),
])
def test_cli_malformed_config_is_one_line(capsys, tmp_path, text, fragment):
    path = tmp_path / "bad.json"
    path.write_text(text)
    rc, out, err = run_cli(capsys, "run", "--workload", str(path), "--arch", "tpu-like")
    assert rc == 2 and out == ""
    assert err.startswith("einsim: error: ") and err.count("\n") == 1 and fragment in err, err


def test_cli_models_lists_the_zoo(capsys):
    rc, out, _ = run_cli(capsys, "models")
    assert rc == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == set(list_models())
    assert f"{param_count(load_model('llama2-70b'))['total'] / 1e9:.3f}B" in rows["llama2-70b"]
