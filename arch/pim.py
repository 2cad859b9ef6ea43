"""The PIM system schema: DRAM-PIM channels doing the matrix-vector work, a host ASIC doing the rest.

A PIM-GPT-like system (``kind: pim-system``) names a DRAM device preset with a PIM block
(``arch/dram/<name>.yaml``: bank-level MAC units, their lanes, clock and command timing), how many
channels it uses, and the host ASIC: its clock, lanes and the cycles its element operations take.
Values nobody publishes are ``null`` with an ``unknown:`` source; runs that need one ask for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arch.errors import ArchError
from arch.schema import Hertz


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Asic(_Model):
    """The host ASIC: ``lanes`` element operations per cycle, each basic op taking ``op_cycles``."""

    clock: Hertz
    lanes: int | None = Field(None, gt=0)
    op_cycles: dict[Literal["add", "mul", "max", "exp", "reciprocal", "rsqrt"], float]


class PimSystem(_Model):
    """PIM channels (a DRAM-PIM device preset, ``channels`` of it) and the ASIC driving them."""

    kind: Literal["pim-system"]
    name: str
    description: str = ""
    dram: str  # a DRAM preset with a pim block (arch/dram/)
    channels: int = Field(gt=0)
    asic: Asic
    sources: dict[str, str] = Field(default_factory=dict)

    def need_lanes(self) -> int:
        if self.asic.lanes is None:
            raise ArchError(f"'{self.name}': asic.lanes is unknown ({self.sources.get('asic.lanes', 'not given')}); "
                            "give a value, e.g. pim_with(system, lanes=...)")
        return self.asic.lanes


def list_pim_systems() -> list[tuple[str, str]]:
    from arch.loader import list_presets

    return list_presets("pim")


def load_pim_system(source: str | Path | PimSystem) -> PimSystem:
    """The PimSystem named by a preset (``pim-gpt``) or a YAML path."""
    from arch.loader import load_preset_model

    return load_preset_model(source, "pim", PimSystem, "PIM system")


def pim_with(system: PimSystem, *, lanes: int | None = None, clock_hz: float | None = None,
             channels: int | None = None) -> PimSystem:
    """A copy with the ASIC's lanes or clock, or the channel count, set (for sweeps)."""
    asic = system.asic.model_copy(update={k: v for k, v in (("lanes", lanes), ("clock", clock_hz)) if v is not None})
    update = {"asic": asic, **({"channels": channels} if channels is not None else {})}
    return system.model_copy(update=update)
