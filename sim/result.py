"""Frozen result objects of a simulation run, with JSON, table and DataFrame views."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from mappers.cost import Cost
from mappers.mapping import Mapping
from sim.engine import SimStats


@dataclass(frozen=True)
class EinsumResult:
    """One Einsum: its mapping, what the simulator measured and what the model predicted."""

    einsum: str
    unit: str
    pes: int
    mapping: Mapping
    sim: SimStats
    model: Cost
    energy_breakdown: dict[str, float]  # from the simulated traffic and ops, for one execution
    repeat: int = 1  # how many times it runs (identical layers are simulated once)
    segment: str = ""


def _scaled(d: dict, k: int) -> dict:
    return {key: v * k for key, v in d.items()}


def _add_nested(into: dict, src: dict, k: int) -> None:
    for mem, per in src.items():
        for tensor, d in per.items():
            slot = into.setdefault(mem, {}).setdefault(tensor, {"read": 0.0, "write": 0.0})
            slot["read"] += k * d["read"]
            slot["write"] += k * d["write"]


@dataclass(frozen=True)
class RunResult:
    """A workload on an architecture: Einsums run one after another, each simulated once and
    counted ``repeat`` times in every total."""

    workload: str
    arch: str
    clock_hz: float
    einsums: tuple[EinsumResult, ...]
    views: tuple[str, ...] = ()  # Einsums not simulated: copies a real kernel never makes

    @property
    def latency_cycles(self) -> int:
        return sum(e.repeat * e.sim.latency_cycles for e in self.einsums)

    @property
    def latency_s(self) -> float:
        return self.latency_cycles / self.clock_hz

    @property
    def macs(self) -> int:
        return sum(e.repeat * e.sim.macs for e in self.einsums)

    @property
    def ops(self) -> dict[str, int]:
        """Unit ops executed, as ``unit.op`` -> count."""
        total: Counter = Counter()
        for e in self.einsums:
            total.update({f"{e.unit}.{op}": e.repeat * n for op, n in e.sim.ops.items()})
        return dict(sorted(total.items()))

    @property
    def energy_breakdown(self) -> dict[str, float]:
        total: Counter = Counter()
        for e in self.einsums:
            total.update(_scaled(e.energy_breakdown, e.repeat))
        return dict(sorted(total.items()))

    @property
    def energy_pj(self) -> float:
        return sum(self.energy_breakdown.values())

    @property
    def traffic_by_tensor(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict = {}
        for e in self.einsums:
            _add_nested(out, e.sim.traffic, e.repeat)
        return out

    @property
    def traffic_bytes(self) -> dict[str, float]:
        return {mem: sum(d["read"] + d["write"] for d in per.values()) for mem, per in self.traffic_by_tensor.items()}

    @property
    def utilization(self) -> dict[str, float]:
        """Compute units: useful PE-cycles / (cycles × PEs) — for a systolic array its MACs, for a
        vector unit its stall-free op cycles; memory ports: busy cycles / cycles."""
        cycles = self.latency_cycles or 1
        out: dict[str, float] = {}
        for unit in sorted({e.unit for e in self.einsums}):
            pes = next(e.pes for e in self.einsums if e.unit == unit)
            busy_pe_cycles = sum(e.repeat * _pe_cycles(e) for e in self.einsums if e.unit == unit)
            out[unit] = busy_pe_cycles / (cycles * pes)
        busy: Counter = Counter()
        for e in self.einsums:
            busy.update(_scaled(e.sim.port_busy, e.repeat))
        out.update({port: b / cycles for port, b in sorted(busy.items())})
        return out

    @property
    def stall_cycles(self) -> dict[str, int]:
        total: Counter = Counter()
        for e in self.einsums:
            total.update(_scaled(e.sim.stall_cycles, e.repeat))
        return dict(total)

    def to_dict(self) -> dict:
        """Everything as plain data; the keys of ``einsim run --json``."""
        return {
            "workload": self.workload,
            "arch": self.arch,
            "clock_hz": self.clock_hz,
            "latency_cycles": self.latency_cycles,
            "latency_s": self.latency_s,
            "energy_pj": self.energy_pj,
            "energy_breakdown": self.energy_breakdown,
            "macs": self.macs,
            "ops": self.ops,
            "utilization": self.utilization,
            "traffic_bytes": self.traffic_bytes,
            "traffic_by_tensor": self.traffic_by_tensor,
            "stall_cycles": self.stall_cycles,
            "roofline_cycles": sum(e.repeat * e.model.bound_cycles for e in self.einsums),
            "events": sum(e.sim.events for e in self.einsums),
            "views_not_simulated": list(self.views),
            "model": {
                "latency_cycles": sum(e.repeat * e.model.latency_cycles for e in self.einsums),
                "energy_pj": sum(e.repeat * e.model.energy_pj for e in self.einsums),
            },
            "einsums": [
                {
                    "einsum": e.einsum,
                    "segment": e.segment,
                    "repeat": e.repeat,
                    "unit": e.unit,
                    "latency_cycles": e.sim.latency_cycles,
                    "model_latency_cycles": e.model.latency_cycles,
                    "stall_free_cycles": e.sim.stall_free_cycles,
                    "macs": e.sim.macs,
                    "energy_pj": sum(e.energy_breakdown.values()),
                    "mapping": e.mapping.to_dict(),
                }
                for e in self.einsums
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dataframe(self):
        """One row per Einsum (pandas imported lazily)."""
        import pandas as pd

        rows = []
        for e in self.einsums:
            row = {"segment": e.segment, "repeat": e.repeat, "einsum": e.einsum, "unit": e.unit, "latency_cycles": e.sim.latency_cycles,
                   "model_latency_cycles": e.model.latency_cycles, "macs": e.sim.macs,
                   "energy_pj": sum(e.energy_breakdown.values())}
            for mem, per in e.sim.traffic.items():
                row[f"{mem}_bytes"] = sum(d["read"] + d["write"] for d in per.values())
            rows.append(row)
        return pd.DataFrame(rows)

    def table(self) -> str:
        """A readable summary for the terminal."""
        lines = [f"{self.workload} on {self.arch}",
                 f"  latency      {self.latency_cycles:,} cycles = {self.latency_s * 1e3:.6g} ms"
                 f"  (model {self.to_dict()['model']['latency_cycles']:,}; roofline {self.to_dict()['roofline_cycles']:,})",
                 f"  MACs         {self.macs:,}",
                 f"  energy       {self.energy_pj / 1e6:,.6g} uJ"]
        for key, pj in self.energy_breakdown.items():
            lines.append(f"    {key:<22} {pj / 1e6:,.6g} uJ")
        lines.append("  utilization")
        for key, frac in self.utilization.items():
            lines.append(f"    {key:<22} {frac:.3f}")
        lines.append("  traffic")
        for mem, b in self.traffic_bytes.items():
            lines.append(f"    {mem:<22} {b:,.0f} B")
        stalls = {k: v for k, v in self.stall_cycles.items() if v}
        if stalls:
            lines.append("  stalls       " + ", ".join(f"{k} {v:,}" for k, v in stalls.items()))
        return "\n".join(lines)


def _pe_cycles(e: EinsumResult) -> float:
    """Useful PE-cycles of one execution: MACs on an array, stall-free lane-cycles on a vector unit."""
    return e.sim.macs if e.sim.macs else e.sim.stall_free_cycles * e.pes
