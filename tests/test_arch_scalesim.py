"""SCALE-Sim importers: .cfg (v3 and v2) to Architecture, topology CSVs to GEMM shapes."""

import pytest

from arch import ArchError, load_arch
from arch.scalesim import load_scalesim_cfg, read_topology_csv

V3 = """\
[general]
run_name = my_run

[architecture_presets]
ArrayHeight: 32           ; R
ArrayWidth: 16            ; C
IfmapSramSzkB: 512        ; kB = k words of 1 byte
FilterSramSzkB: 256
OfmapSramSzkB: 128
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 64
Dataflow: ws
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 20
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""

V2 = """\
[general]
run_name = "old_run"

[architecture_presets]
arrayheight:    8
ArrayWidth:     8
IfmapSramSzkB:    64
FilterSramSzkB:   64
OfmapSramSzkB:    32
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 12
Dataflow : OS
MemoryBanks: 1

[run_presets]
InterfaceBandwidth: USER
"""


def write(tmp_path, text, name="my.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return p


def bw(memory, role, direction):
    port = memory.port_for(role, direction)
    return None if port.bandwidth is None else port.bandwidth.bytes_per_cycle(1e9)


def test_v3_user_mode(tmp_path):
    a = load_arch(write(tmp_path, V3))
    assert a.name == "my_run"
    u = a.unit()
    assert (u.rows, u.cols, u.dataflow, u.overlap_folds) == (32, 16, "ws", False)
    assert a.clock_hz(u) == 1e9
    dram, sram = a.memories
    assert dram.capacity is None and dram.word_bits == 8
    assert [p.roles for p in dram.ports] == [("input",), ("weight",), ("output",)]
    assert (bw(dram, "input", "read"), bw(dram, "weight", "read"), bw(dram, "output", "write")) == (10, 20, 64)
    assert sram.partitions == {"input": 512 * 1024, "weight": 256 * 1024, "output": 128 * 1024}
    assert sram.capacity == 896 * 1024 and sram.word_bits == 8
    assert bw(sram, "input", "read") is None
    assert a.sources["clocks.core"].startswith("assumed: SCALE-Sim has no clock")
    assert a.sources["compute[0].rows"] == f"{tmp_path / 'my.cfg'}:5 ArrayHeight"


def test_v3_calc_mode_is_unbounded(tmp_path):
    a = load_scalesim_cfg(write(tmp_path, V3.replace("InterfaceBandwidth: USER", "InterfaceBandwidth: calc")))
    dram = a.memories[0]
    assert all(p.bandwidth is None for p in dram.ports)


def test_v2_without_layout_uses_bandwidth_for_all(tmp_path):
    a = load_arch(write(tmp_path, V2))
    assert a.name == "old_run"
    dram, sram = a.memories
    assert (bw(dram, "input", "read"), bw(dram, "weight", "read"), bw(dram, "output", "write")) == (12, 12, 12)
    assert a.unit().dataflow == "os" and a.unit().rows == 8
    assert sram.capacity == 160 * 1024
    assert "v2" in a.sources["memories[0].ports[0].bandwidth"]


def test_bad_value_names_file_line_and_key(tmp_path):
    p = write(tmp_path, V3.replace("ArrayHeight: 32", "ArrayHeight: abc"))
    with pytest.raises(ArchError) as exc:
        load_arch(p)
    assert str(exc.value) == f"{p}:5: architecture_presets.ArrayHeight: must be a positive integer, got 'abc'"


def test_bad_dataflow_and_mode(tmp_path):
    with pytest.raises(ArchError, match=r":14: architecture_presets.Dataflow: must be one of os, ws, is, got 'xs'"):
        load_arch(write(tmp_path, V3.replace("Dataflow: ws", "Dataflow: xs")))
    with pytest.raises(ArchError, match=r":33: run_presets.InterfaceBandwidth: must be one of user, calc"):
        load_arch(write(tmp_path, V3.replace("InterfaceBandwidth: USER", "InterfaceBandwidth: MAYBE")))


def test_missing_key_and_duplicate_key(tmp_path):
    with pytest.raises(ArchError, match=r":4: architecture_presets.ArrayWidth: missing key"):
        load_arch(write(tmp_path, V3.replace("ArrayWidth: 16            ; C\n", "")))
    with pytest.raises(ArchError, match=r":6: architecture_presets.arraywidth: duplicate key 'arraywidth' \(first at line 5\)"):
        load_arch(write(tmp_path, V3.replace("ArrayHeight: 32", "ArrayWidth: 32\narraywidth: 3")))


def test_negative_bandwidth(tmp_path):
    with pytest.raises(ArchError, match=r":21: layout.IfmapSRAMBankBandwidth: must be a positive number, got '-3'"):
        load_arch(write(tmp_path, V3.replace("IfmapSRAMBankBandwidth: 10", "IfmapSRAMBankBandwidth: -3")))


def test_gemm_topology(tmp_path):
    p = write(tmp_path, "Layer, M, N, K,\nQKT, 1024, 1024, 64,\n\nLinear1,1024,4800,1600,\n", "gemm.csv")
    assert read_topology_csv(p) == [("QKT", 1024, 1024, 64), ("Linear1", 1024, 4800, 1600)]


def test_conv_topology_im2col(tmp_path):
    text = (
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        "Conv1, 224, 224, 11, 11, 3, 96, 4,\n"
        "Conv2, 31, 31, 5, 5, 96, 256, 1,\n"
    )
    layers = read_topology_csv(write(tmp_path, text, "alexnet.csv"))
    assert layers == [("Conv1", 54 * 54, 96, 11 * 11 * 3), ("Conv2", 27 * 27, 256, 5 * 5 * 96)]


def test_malformed_rows_report_line(tmp_path):
    p = write(tmp_path, "Layer, M, N, K,\nA, 1, 2, 3,\nB, 4, x, 6,\n", "bad.csv")
    with pytest.raises(ArchError) as exc:
        read_topology_csv(p)
    assert str(exc.value) == f"{p}:3: N must be a positive integer, got 'x'"
    p = write(tmp_path, "Layer, M, N, K,\nA, 1, 2,\n", "short.csv")
    with pytest.raises(ArchError, match=r"short.csv:2: row has 3 values, the header has 4"):
        read_topology_csv(p)


def test_depthwise_and_bad_header_and_big_filter(tmp_path):
    head = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    with pytest.raises(ArchError, match=r"dw.csv:3: layer 'Conv_DP1': depthwise layers are not supported yet"):
        read_topology_csv(write(tmp_path, head + "C1, 8, 8, 3, 3, 4, 4, 1,\nConv_DP1, 8, 8, 3, 3, 4, 1, 1,\n", "dw.csv"))
    with pytest.raises(ArchError, match=r"h.csv:1: unrecognised header"):
        read_topology_csv(write(tmp_path, "a, b, c,\n", "h.csv"))
    with pytest.raises(ArchError, match=r"f.csv:2: layer 'C1': filter 9x9 is larger than the ifmap 8x8"):
        read_topology_csv(write(tmp_path, head + "C1, 8, 8, 9, 9, 4, 4, 1,\n", "f.csv"))
