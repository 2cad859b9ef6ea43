"""Loading architecture YAML: validation errors name file, line and key; YAML pitfalls caught."""

import pytest

from arch import (
    Architecture,
    ArchError,
    ComputeArray,
    Memory,
    Op,
    YamlError,
    arch_from_dict,
    load_arch,
    load_yaml,
)
from arch.yamlio import load_yaml_text

GOOD = """\
name: tiny
clocks:
  core: 1 GHz
memories:
  - name: dram
    capacity: unbounded
    ports:
      - name: rw
        bandwidth: 16 GB/s
  - name: sram
    capacity: 64 KiB
    word_bits: 16
    read_energy: 2 pJ
    partitions:
      input: 16 KiB
      weight: 16 KiB
      output: 32 KiB
compute:
  - name: pe
    rows: 8
    cols: 8
    dataflow: os
    ops:
      mac: {cycles: 1, energy: 17.16 pJ}
      add: {cycles: 1, energy: 8.34 pJ}
      exp: {lower_to: {mac: 6, add: 1}}
"""


def write(tmp_path, text, name="arch.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def replace_line(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


def error_of(tmp_path, text) -> ArchError:
    p = write(tmp_path, text)
    with pytest.raises(ArchError) as exc:
        load_arch(p)
    return exc.value


def test_good_file_loads(tmp_path):
    a = load_arch(write(tmp_path, GOOD))
    assert isinstance(a, Architecture)
    assert a.memories[0].capacity is None
    assert a.memories[0].ports[0].bandwidth.bytes_per_cycle(1e9) == pytest.approx(16.0)
    assert a.memories[1].capacity == 65536
    assert a.memories[1].partitions == {"input": 16384, "weight": 16384, "output": 32768}
    assert a.memories[1].read_pj_per_word == 2.0
    assert a.clock_hz(a.unit()) == 1e9
    assert load_arch(str(write(tmp_path, GOOD, "b.yml"))).name == "tiny"


def test_exp_lowered_to_six_macs_and_an_add(tmp_path):
    unit = load_arch(write(tmp_path, GOOD)).unit("pe")
    cycles, energy = unit.op_cost("exp")
    assert cycles == 7
    assert energy == pytest.approx(6 * 17.16 + 8.34)
    with pytest.raises(ValueError, match="no op 'div'"):
        unit.op_cost("div")


def test_unknown_key_names_file_line_path_and_suggests(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "    rows: 8", "    rowz: 8"))
    assert e.line == 20 and e.path == "compute[0].rowz"
    assert str(e) == f"{tmp_path / 'arch.yaml'}:20: compute[0].rowz: unknown key 'rowz', did you mean 'rows'?"


def test_unknown_top_level_key_without_close_match(tmp_path):
    e = error_of(tmp_path, GOOD + "flavour: vanilla\n")
    assert e.line == 27 and e.path == "flavour"
    assert e.problem == "unknown key 'flavour'"


def test_unknown_key_in_nested_port(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "        bandwidth: 16 GB/s", "        bandwith: 16 GB/s"))
    assert (e.line, e.path) == (9, "memories[0].ports[0].bandwith")
    assert "did you mean 'bandwidth'?" in e.problem


def test_duplicate_key_reports_its_line(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "    cols: 8\n", "    cols: 8\n    rows: 16\n"))
    assert e.line == 22 and e.path == "compute[0].rows"
    assert "duplicate key 'rows'" in str(e) and "line 20" in str(e)


def test_duplicate_key_from_load_yaml_is_yaml_error(tmp_path):
    p = write(tmp_path, "a: 1\nb:\n  c: 2\n  c: 3\n", "x.yaml")
    with pytest.raises(YamlError) as exc:
        load_yaml(p)
    assert (exc.value.line, exc.value.path, exc.value.file) == (4, ("b", "c"), str(p))
    assert str(exc.value).startswith(f"{p}:4: b.c: duplicate key 'c'")


def test_yaml_syntax_error_has_line(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "    cols: 8", "    cols: [8"))
    assert e.line is not None and 21 <= e.line <= 23
    assert "invalid YAML" in e.problem


def test_load_yaml_text_line_map():
    data, lines = load_yaml_text("a:\n  - x: 1\n  - y: 2\n    z: 3\n")
    assert data == {"a": [{"x": 1}, {"y": 2, "z": 3}]}
    assert lines[("a",)] == 1 and lines[("a", 0)] == 2 and lines[("a", 1, "z")] == 4


def test_negative_size(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "capacity: 64 KiB", "capacity: -64 KiB"))
    assert (e.line, e.path) == (11, "memories[1].capacity")
    assert "must not be negative" in e.problem and "Value error" not in str(e)


def test_unitless_size(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "capacity: 64 KiB", "capacity: 65536"))
    assert str(e).endswith(":11: memories[1].capacity: size '65536' needs a unit, e.g. '65536 KiB'")


def test_unbounded_partition_is_refused(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "input: 16 KiB", "input: unbounded"))
    assert (e.line, e.path) == (15, "memories[1].partitions.input")


def test_partitions_larger_than_capacity(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "output: 32 KiB", "output: 64 KiB"))
    assert e.path == "memories[1].partitions" and e.line == 14
    assert "more than the capacity" in e.problem


def test_bad_partition_role(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "input: 16 KiB", "inputs: 16 KiB"))
    assert e.path == "memories[1].partitions.inputs" and e.line == 15
    assert "bad key 'inputs'" in e.problem and "'input'" in e.problem


def test_bad_dataflow_value(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "dataflow: os", "dataflow: xs"))
    assert (e.line, e.path) == (22, "compute[0].dataflow")
    assert e.problem == "must be 'os', 'ws' or 'is', got 'xs'"
    assert "pydantic" not in str(e) and "http" not in str(e)


def test_non_positive_rows(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "rows: 8", "rows: 0"))
    assert e.path == "compute[0].rows" and e.problem == "must be greater than 0, got 0"


def test_clock_reference_error(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "    dataflow: os", "    dataflow: os\n    clock: fast"))
    assert (e.line, e.path) == (23, "compute[0].clock")
    assert "uses clock 'fast'" in e.problem and "['core']" in e.problem


def test_lower_to_unknown_op(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "{mac: 6, add: 1}", "{mac: 6, mca: 1}"))
    assert e.path == "compute[0].ops.exp.lower_to.mca" and e.line == 26
    assert "'mca'" in e.problem


def test_lowering_cycle_is_refused():
    ops = {"mac": Op(), "a": Op(lower_to={"b": 1}), "b": Op(lower_to={"a": 2})}
    with pytest.raises(ValueError, match="lowers to itself"):
        ComputeArray(name="x", rows=1, cols=1, ops=ops)


def test_missing_required_key(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "    cols: 8\n", ""))
    assert e.path == "compute[0].cols" and e.problem == "missing required key 'cols'"
    assert e.line == 19  # the list item that lacks it


def test_duplicate_memory_names(tmp_path):
    e = error_of(tmp_path, replace_line(GOOD, "  - name: sram", "  - name: dram"))
    assert (e.path, e.line) == ("memories[1].name", 10)


def test_top_level_must_be_mapping(tmp_path):
    e = error_of(tmp_path, "- 1\n- 2\n")
    assert "must be a mapping" in e.problem and "got a list" in e.problem
    with pytest.raises(ArchError, match="empty document"):
        arch_from_dict(None, file="x.yaml")


def test_arch_from_dict_without_file():
    with pytest.raises(ArchError) as exc:
        arch_from_dict({"name": "x", "clocks": {"core": "1 GHz"}, "memories": [{"name": "m"}],
                        "compute": [{"name": "u", "rows": 1, "cols": 1, "dataflw": "os"}]})
    assert str(exc.value) == "compute[0].dataflw: unknown key 'dataflw', did you mean 'dataflow'?"


def test_unknown_preset_lists_available():
    with pytest.raises(ArchError) as exc:
        load_arch("tpu")
    msg = str(exc.value)
    assert "unknown architecture preset 'tpu'" in msg and "did you mean 'tpu-like'" in msg
    assert "edge-32x32" in msg and "tpu-like" in msg and "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(ArchError) as exc:
        load_arch(tmp_path / "nope.yaml")
    assert str(exc.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_unsupported_file_type(tmp_path):
    p = write(tmp_path, "x", "arch.json")
    with pytest.raises(ArchError, match="unsupported file type"):
        load_arch(p)


def test_models_are_frozen_and_memory_lookup(tmp_path):
    a = load_arch(write(tmp_path, GOOD))
    with pytest.raises(Exception):
        a.memories[1].capacity = 1  # type: ignore[misc]
    assert a.memory("sram").word_bits == 16
    with pytest.raises(ValueError, match="no memory 'l2'"):
        a.memory("l2")
    with pytest.raises(ValueError, match="no compute array 'vpu'"):
        a.unit("vpu")
    assert isinstance(a.memories[0], Memory)
