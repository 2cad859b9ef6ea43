"""Presets load, and every value in them has a source (a citation or 'assumed: why')."""

from importlib import resources

import pytest

from arch import list_presets, load_arch, load_yaml
from arch.errors import dotted

PRESETS = ["edge-32x32", "flat", "flat-edge", "fusemax", "tpu-like", "unfused"]
LABELS = {"name", "description", "sources"}  # names and prose, not claims about hardware


def preset_data(name):
    path = resources.files("arch").joinpath("presets", f"{name}.yaml")
    data, _ = load_yaml(str(path))
    return data


def leaves(node, path=()):
    """Every leaf value's key path, skipping labels."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in LABELS:
                continue
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path


def prefixes(path):
    return [dotted(path[:n]) for n in range(len(path), 0, -1)]


def test_list_presets_has_both_with_descriptions():
    presets = list_presets()
    assert [n for n, _ in presets] == PRESETS
    assert all(desc and "\n" not in desc for _, desc in presets)


@pytest.mark.parametrize("name", PRESETS)
def test_every_value_has_a_source(name):
    data = preset_data(name)
    sources = data["sources"]
    paths = list(leaves(data))
    assert len(paths) > 15
    missing = [dotted(p) for p in paths if not any(pre in sources for pre in prefixes(p))]
    assert missing == []
    assert all(isinstance(v, str) and len(v) > 10 for v in sources.values())


@pytest.mark.parametrize("name", PRESETS)
def test_no_stale_sources(name):
    data = preset_data(name)
    known = {pre for p in leaves(data) for pre in prefixes(p)}
    assert sorted(set(data["sources"]) - known) == []


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_is_named_after_its_file(name):
    a = load_arch(name)
    assert a.name == name
    assert a.sources == preset_data(name)["sources"]
    assert a.memories[0].capacity is None or a.memories[0].capacity > a.memories[1].capacity
    for m in a.memories:
        for role in ("input", "weight", "output"):
            m.port_for(role, "read")
            m.port_for(role, "write")


def test_tpu_like_values():
    a = load_arch("tpu-like")
    mxu = a.unit()
    assert (mxu.rows, mxu.cols, mxu.dataflow) == (128, 128, "ws")
    assert a.clock_hz(mxu) == 940e6
    hbm, buf = a.memories
    assert buf.capacity == 24 * 2**20
    assert hbm.port_for("input", "read").bandwidth.bytes_per_cycle(940e6) == pytest.approx(450e9 / 940e6)
    assert hbm.read_pj_per_word == pytest.approx(3.9 * 256)
    assert buf.read_pj_per_word == 485.0 and buf.write_pj_per_word == 451.0
    # stall-free ws feed: rows input words + cols partial sums + a weight row per cycle, bf16
    assert buf.port_for("input", "read").bandwidth.bytes_per_cycle(940e6) >= (128 + 128 + 128) * 2


def test_edge_values():
    a = load_arch("edge-32x32")
    u = a.unit()
    assert (u.rows, u.cols, u.dataflow) == (32, 32, "os")
    dram, sram = a.memories
    assert dram.capacity is None and sram.capacity == 512 * 1024
    assert dram.port_for("weight", "read").bandwidth.bytes_per_cycle(1e9) == pytest.approx(25.6)
    assert u.op_cost("mac") == (1, pytest.approx(0.3))
