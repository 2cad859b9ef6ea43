"""Shared test helpers: small architectures built in code."""

from __future__ import annotations

import pytest

from arch import arch_from_dict

# A 16x24x32 GEMM as a cascade YAML (for CLI tests that read workload files).
GEMM_CASCADE = """\
name: mm
ranks: {m: 16, n: 24, k: 32}
tensors:
  A: {ranks: [m, k]}
  B: {ranks: [k, n]}
  C: {ranks: [m, n]}
einsums:
  - {name: C, out: "C[m,n]", in: ["A[m,k]", "B[k,n]"], map: mul, reduce: sum}
"""

# A two-level, 8x8 architecture for sweep tests (as YAML text, since sweeps read files).
TINY_ARCH = """\
name: tiny
clocks: {core: 1 GHz}
memories:
  - name: dram
    ports: [{name: rw, bandwidth: 16 GB/s}]
    read_energy: 100 pJ
    write_energy: 100 pJ
  - name: buf
    capacity: 64 KiB
    read_energy: 5 pJ
    write_energy: 5 pJ
compute:
  - name: array
    rows: 8
    cols: 8
    dataflow: ws
    ops: {mac: {energy: 1 pJ}}
"""



def make_arch(rows: int = 8, cols: int = 8, dataflow: str = "os", *, dram_bw: str = "unbounded",
              buf_bw: str = "unbounded", capacity: str = "unbounded", double: bool = True,
              overlap: bool = False, split_ports: bool = False, extra_level: str | None = None):
    """DRAM → (optional middle level) → buffer → rows×cols array, 1 GHz, fp16-sized words."""
    dram_ports = ([{"name": "rd", "bandwidth": dram_bw, "direction": "read"},
                   {"name": "wr", "bandwidth": dram_bw, "direction": "write"}] if split_ports
                  else [{"name": "rw", "bandwidth": dram_bw}])
    memories = [{"name": "dram", "word_bits": 16, "ports": dram_ports, "read_energy": "100 pJ", "write_energy": "120 pJ"}]
    if extra_level:
        memories.append({"name": "l2", "capacity": extra_level, "word_bits": 16, "read_energy": "20 pJ",
                         "write_energy": "20 pJ", "ports": [{"name": "rw", "bandwidth": dram_bw}]})
    memories.append({"name": "buffer", "capacity": capacity, "word_bits": 16, "double_buffered": double,
                     "ports": [{"name": "rw", "bandwidth": buf_bw}], "read_energy": "6 pJ", "write_energy": "7 pJ"})
    return arch_from_dict({
        "name": "test",
        "clocks": {"core": "1 GHz"},
        "memories": memories,
        "compute": [{"name": "array", "rows": rows, "cols": cols, "dataflow": dataflow, "overlap_folds": overlap,
                     "ops": {"mac": {"cycles": 1, "energy": "1 pJ"}}}],
    })


@pytest.fixture
def arch_factory():
    return make_arch
