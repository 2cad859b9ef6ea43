"""Silicon area of an architecture, per component, so sweeps can trade latency, energy and area.

A first-order model with every constant sourced. All constants are for 45 nm (the node of
Horowitz's energy and area tables and of the Accelergy tables the FuseMax artifact uses);
another node scales area by (node / 45)², which is Dennard-ideal and flatters nodes below
about 20 nm, where SRAM and I/O shrink far less than logic — say so when you report it.

- A PE: one multiplier and one accumulating adder of its number type (Horowitz, ISSCC 2014,
  Fig. 1.1.9 area table, 45 nm) plus pipeline registers and local wiring (``PE_OVERHEAD``).
- SRAM: bits × a 45 nm 6T cell area ÷ array efficiency, × a factor per extra port.
- The backing store (outermost memory, DRAM/HBM) is off chip: only its PHY counts, by its
  bandwidth (unbounded ports count nothing).
"""

from __future__ import annotations

# (multiplier µm², adder µm²) per PE number type, 45 nm. Horowitz, "Computing's Energy Problem
# (and what we can do about it)", ISSCC 2014, area table: 8b mult 282, 32b int add 137,
# 16b FP mult 1640, 16b FP add 1360, 32b FP mult 7700, 32b FP add 4184 µm². Accumulators are
# wider than inputs (int8 -> int32, fp16/bf16 -> fp32).
MAC_UM2 = {
    "int8": (282.0, 137.0),
    "fp8": (282.0, 1360.0),  # assumed: an 8-bit multiplier with an fp16 accumulator
    "fp16": (1640.0, 4184.0),
    "bf16": (1640.0, 4184.0),  # assumed: as fp16 (Horowitz has no bf16 figure; bf16's multiplier is smaller)
    "fp32": (7700.0, 4184.0),
}
PE_OVERHEAD = 1.3  # assumed: +30 % for operand/partial-sum registers and wiring around the datapath
SRAM_CELL_UM2 = 0.346  # Mistry et al., "A 45nm Logic Technology...", IEDM 2007: 0.346 µm² 6T bitcell
SRAM_ARRAY_EFFICIENCY = 0.7  # assumed: cells take 70 % of a macro (decoders, sense amps, I/O the rest)
SRAM_EXTRA_PORT = 0.5  # assumed: each port beyond the first adds 50 % (8T/10T cells, extra bit lines)
PHY_MM2_PER_GBPS = 0.06  # assumed: an HBM2 PHY of about 15 mm² per 256 GB/s stack, scaled by bandwidth
REFERENCE_NODE_NM = 45.0


def _scale(node_nm: float) -> float:
    return (node_nm / REFERENCE_NODE_NM) ** 2


def pe_area_mm2(dtype: str, node_nm: float = REFERENCE_NODE_NM) -> float:
    """Area of one PE (multiplier + accumulator + overhead)."""
    mult, add = MAC_UM2[dtype]
    return (mult + add) * PE_OVERHEAD * 1e-6 * _scale(node_nm)


def sram_area_mm2(capacity_bytes: int, ports: int = 1, node_nm: float = REFERENCE_NODE_NM) -> float:
    """Area of an SRAM of ``capacity_bytes`` with ``ports`` ports."""
    bits = capacity_bytes * 8
    return bits * SRAM_CELL_UM2 / SRAM_ARRAY_EFFICIENCY * (1 + SRAM_EXTRA_PORT * (ports - 1)) * 1e-6 * _scale(node_nm)


def phy_area_mm2(bytes_per_s: float, node_nm: float = REFERENCE_NODE_NM) -> float:
    """Area of the PHY that drives an off-chip memory at ``bytes_per_s``."""
    return bytes_per_s / 1e9 * PHY_MM2_PER_GBPS * _scale(node_nm)


def area_breakdown(arch, node_nm: float = REFERENCE_NODE_NM) -> dict[str, float]:
    """mm² per component (compute units, on-chip memories, the backing store's PHY) and ``total``."""
    out: dict[str, float] = {}
    for unit in arch.compute:
        out[unit.name] = unit.rows * unit.cols * pe_area_mm2(unit.dtype, node_nm)
    backing, *on_chip = arch.memories
    for mem in on_chip:
        if mem.capacity is not None:
            out[mem.name] = sram_area_mm2(mem.capacity, len(mem.ports), node_nm)
    clock = max(arch.clocks.values())
    rates = [p.bandwidth.bytes_per_cycle(clock) * clock for p in backing.ports if p.bandwidth is not None]
    out[f"{backing.name}_phy"] = phy_area_mm2(sum(rates), node_nm)  # an unbounded port has no PHY to price
    out["total"] = sum(out.values())
    return out
