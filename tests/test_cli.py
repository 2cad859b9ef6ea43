"""The einsim command line: documented JSON keys, traces, imports, and bad input handled in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import GEMM_CASCADE
from sim.cli import main

GOOD_ARCH = """\
name: small
clocks: {core: 1 GHz}
memories:
  - name: dram
    ports: [{name: rw, bandwidth: 16 GB/s}]
  - name: buf
    capacity: 64 KiB
compute:
  - name: array
    rows: 8
    cols: 8
    dataflow: ws
"""



def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_json_has_documented_keys(capsys):
    rc, out, _ = run_cli(capsys, "run", "--arch", "tpu-like", "--workload", "gemm:512,768,768", "--json")
    assert rc == 0
    data = json.loads(out)
    for key in ("latency_cycles", "latency_s", "energy_pj", "macs", "utilization", "traffic_bytes"):
        assert key in data
    assert data["macs"] == 512 * 768 * 768
    assert data["utilization"]["mxu"] == pytest.approx(data["macs"] / (data["latency_cycles"] * 128 * 128))
    assert set(data["traffic_bytes"]) == {"hbm", "buffer"}
    assert data["latency_s"] == pytest.approx(data["latency_cycles"] / 940e6)
    assert data["latency_cycles"] >= data["roofline_cycles"]


def test_table_and_mapping_output(capsys):
    rc, out, _ = run_cli(capsys, "run", "--arch", "edge-32x32", "--workload", "gemm:64,64,64:int8", "--show-mapping")
    assert rc == 0
    assert "latency" in out and "compute tile on pe_array" in out


def test_presets_lists_both(capsys):
    rc, out, _ = run_cli(capsys, "presets")
    assert rc == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"tpu-like", "edge-32x32"} <= set(names)


def test_trace_file_is_chrome_json(capsys, tmp_path):
    trace = tmp_path / "t.json"
    rc, _, _ = run_cli(capsys, "run", "--arch", write(tmp_path, "a.yaml", GOOD_ARCH), "--workload", "gemm:64,64,64",
                       "--trace", str(trace))
    assert rc == 0
    events = json.loads(trace.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert any(e["name"] == "C tile" for e in spans) and any(e["name"].startswith("load ") for e in spans)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)


def test_cascade_yaml_and_mapping_roundtrip(capsys, tmp_path):
    arch = write(tmp_path, "a.yaml", GOOD_ARCH)
    cascade = write(tmp_path, "mm.yaml", GEMM_CASCADE)
    rc, out, _ = run_cli(capsys, "run", "--arch", arch, "--workload", cascade, "--json")
    assert rc == 0
    first = json.loads(out)
    mapping = first["einsums"][0]["mapping"]
    import yaml

    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping))
    rc, out, _ = run_cli(capsys, "run", "--arch", arch, "--workload", cascade, "--mapping", str(path), "--json")
    assert rc == 0
    assert json.loads(out)["latency_cycles"] == first["latency_cycles"]


def test_scalesim_config_and_topology(capsys, tmp_path):
    cfg = write(tmp_path, "s.cfg", """\
        [general]
        run_name = t
        [architecture_presets]
        ArrayHeight: 8
        ArrayWidth: 8
        IfmapSramSzkB: 64
        FilterSramSzkB: 64
        OfmapSramSzkB: 64
        IfmapOffset: 0
        FilterOffset: 10000000
        OfmapOffset: 20000000
        Bandwidth: 10
        Dataflow: os
        MemoryBanks: 1
        [run_presets]
        InterfaceBandwidth: CALC
        """)
    csv = write(tmp_path, "t.csv", "Layer, M, N, K,\nqkv, 16, 24, 32,\nffn, 16, 64, 24,\n")
    rc, out, _ = run_cli(capsys, "run", "--arch", cfg, "--workload", csv, "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["macs"] == 16 * 24 * 32 + 16 * 64 * 24
    assert [e["einsum"] for e in data["einsums"]] == ["qkv", "ffn"]
    # CALC: no stalls, and whole GEMMs fit, so latency is SCALE-Sim's closed form (+1: its off-by-one)
    assert data["latency_cycles"] == 2 * 3 * (32 + 14) + 2 * 8 * (24 + 14)


# ---- bad input: one line, naming what and where, exit code 2, no traceback -------------------

ARCH_CASES = {
    "unknown key": (GOOD_ARCH.replace("    cols: 8", "    cols: 8\n    colz: 8"), ["a.yaml:12", "colz", "unknown key"]),
    "duplicate key": (GOOD_ARCH.replace("    cols: 8", "    cols: 8\n    cols: 16"), ["a.yaml:12", "duplicate key", "cols"]),
    "negative size": (GOOD_ARCH.replace("64 KiB", "-64 KiB"), ["a.yaml:7", "capacity"]),
    "unit-less size": (GOOD_ARCH.replace("64 KiB", "65536"), ["a.yaml:7", "needs a unit"]),
    "bad dataflow": (GOOD_ARCH.replace("dataflow: ws", "dataflow: xs"), ["a.yaml:12", "dataflow"]),
    "bad bandwidth": (GOOD_ARCH.replace("16 GB/s", "16 GB"), ["a.yaml:5", "bandwidth"]),
    "undefined clock": (GOOD_ARCH.replace("    rows: 8", "    clock: fast\n    rows: 8"), ["a.yaml", "clock", "fast"]),
    "yaml syntax": (GOOD_ARCH.replace("name: small", "name: [small"), ["a.yaml"]),
    "buffer too small": (GOOD_ARCH.replace("64 KiB", "8 B"), ["buf", "holds 8 B", "need 12 B"]),
}


@pytest.mark.parametrize("case", sorted(ARCH_CASES))
def test_bad_architecture(case, capsys, tmp_path):
    text, fragments = ARCH_CASES[case]
    rc, out, err = run_cli(capsys, "run", "--arch", write(tmp_path, "a.yaml", text), "--workload", "gemm:64,64,64")
    assert_one_line_error(rc, out, err, fragments)


CASCADE_CASES = {
    "cycle": (GEMM_CASCADE.replace(
        "  - {name: C,", '  - {name: A, out: "A[m,k]", in: ["C[m,n]", "B[k,n]"], map: mul, reduce: sum}\n  - {name: C,'),
        ["cycle"]),
    "undefined tensor": (GEMM_CASCADE.replace('"B[k,n]"]', '"Z[k,n]"]'), ["mm.yaml:", "Z"]),
    "unknown einsum key": (GEMM_CASCADE.replace("reduce: sum", "reduc: sum"), ["mm.yaml:", "reduc"]),
    "shape mismatch": (GEMM_CASCADE.replace("B: {ranks: [k, n]}", "B: {ranks: [k, m]}"), ["mm.yaml:"]),
    "no unit has the op": (GEMM_CASCADE.replace("map: mul, reduce: sum", "map: add, reduce: sum"),
                           ["einsum 'C'", "needs op 'add'", "unit 'array' has only mac"]),
}


@pytest.mark.parametrize("case", sorted(CASCADE_CASES))
def test_bad_cascade(case, capsys, tmp_path):
    text, fragments = CASCADE_CASES[case]
    arch = write(tmp_path, "a.yaml", GOOD_ARCH)  # one array with only a MAC
    rc, out, err = run_cli(capsys, "run", "--arch", arch, "--workload", write(tmp_path, "mm.yaml", text))
    assert_one_line_error(rc, out, err, fragments)


@pytest.mark.parametrize("argv, fragments", [
    (["run", "--arch", "no-such-preset", "--workload", "gemm:8,8,8"], ["no-such-preset", "tpu-like"]),
    (["run", "--arch", "missing/arch.yaml", "--workload", "gemm:8,8,8"], ["missing/arch.yaml"]),
    (["run", "--arch", "tpu-like", "--workload", "gemm:8,8"], ["gemm:M,N,K"]),
    (["run", "--arch", "tpu-like", "--workload", "gemm:8,x,8"], ["gemm:M,N,K"]),
    (["run", "--arch", "tpu-like", "--workload", "gemm:0,8,8"], ["gemm:M,N,K"]),
    (["run", "--arch", "tpu-like", "--workload", "conv:8,8,8"], ["conv"]),
    (["run", "--arch", "tpu-like", "--workload", "bert"], ["unknown model 'bert'", "bert-base"]),
    (["run", "--arch", "tpu-like", "--workload", "gemm:8,8,8", "--phase", "decode"], ["--phase", "only to models"]),
    (["run", "--arch", "tpu-like", "--workload", "llama2-7b", "--batch", "0"], ["--batch", "positive integer"]),
    (["run", "--arch", "tpu-like"], ["--workload"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_command_line(argv, fragments, capsys):
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse exits itself
        rc = exit_.code
    out = capsys.readouterr()
    assert_one_line_error(rc, out.out, out.err, fragments)


def test_bad_mapping_file(capsys, tmp_path):
    path = write(tmp_path, "m.yaml", "einsum: C\nunit: mxu\ndataflow: ws\nlevels: []\ncolour: red\n")
    rc, out, err = run_cli(capsys, "run", "--arch", "tpu-like", "--workload", "gemm:8,8,8", "--mapping", path)
    assert_one_line_error(rc, out, err, ["m.yaml", "colour"])


def test_bad_topology_csv(capsys, tmp_path):
    csv = write(tmp_path, "t.csv", "Layer, M, N, K,\nqkv, 16, twenty, 32,\n")
    rc, out, err = run_cli(capsys, "run", "--arch", "tpu-like", "--workload", csv)
    assert_one_line_error(rc, out, err, ["t.csv:2"])


def test_console_script_exit_code_and_no_traceback(tmp_path):
    bad = write(tmp_path, "a.yaml", ARCH_CASES["unknown key"][0])
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "run", "--arch", bad, "--workload", "gemm:8,8,8"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def assert_one_line_error(rc, out, err, fragments):
    assert rc == 2, (rc, out, err)
    assert out == ""
    assert err.startswith("einsim: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
