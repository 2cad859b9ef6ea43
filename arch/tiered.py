"""The tiered-memory system schema: sockets with a peak compute rate and memory tiers (SRAM, HBM, DDR).

For machines whose story is *where the bytes live*: an SN40L-like dataflow chip (SRAM / HBM /
DDR, a whole decoder layer as one streaming kernel) and DGX-like GPU nodes (HBM, with host
memory behind a slow link). Loaded from ``arch/tiered/<name>.yaml`` (``kind: tiered``).
Values nobody publishes are ``null`` with an ``unknown:`` source; whatever needs one asks for it
by name (``TieredArch.need``), and ``with_values`` supplies it, so a sweep can vary it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arch.errors import ArchError
from arch.schema import Bytes, OptionalBandwidth


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Model):
    """One memory tier of a socket: capacity and bandwidth per socket (``null``: unknown)."""

    name: str
    capacity: Bytes
    bandwidth: OptionalBandwidth = None


class Network(_Model):
    """The links between sockets that collectives use: bandwidth per socket and latency per step."""

    bandwidth: OptionalBandwidth = None
    latency_us: float | None = Field(None, ge=0)


class Launch(_Model):
    """Kernel launch cost: host software-orchestrated or on-chip hardware-orchestrated."""

    mode: Literal["software", "hardware"] = "software"
    software_us: float | None = Field(None, ge=0)
    hardware_us: float | None = Field(None, ge=0)


class TieredArch(_Model):
    """A node of ``sockets`` identical sockets; ``tiers`` fastest first, the first holding the
    streaming pipeline's stage buffers; ``load_bandwidth`` is the node's aggregate copy rate from
    the last tier into the second (DDR to HBM, or host memory to GPU memory)."""

    kind: Literal["tiered"]
    name: str
    description: str = ""
    sockets: int = Field(gt=0)
    peak_tflops: float = Field(gt=0)  # dense bf16, per socket
    compute_units: int | None = Field(None, gt=0)
    memory_units: int | None = Field(None, gt=0)
    tiers: tuple[Tier, ...] = Field(min_length=2)
    load_bandwidth: OptionalBandwidth = None
    network: Network = Network()
    launch: Launch = Launch()
    fused_layers: bool = False
    sources: dict[str, str] = Field(default_factory=dict)

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise ArchError(f"'{self.name}' has no tier '{name}' (tiers: {', '.join(t.name for t in self.tiers)})")

    def need(self, path: str) -> Any:
        """The value at dotted ``path`` (``launch.software_us``, ``tiers.hbm.bandwidth``), or a
        one-line error saying it is unknown and how to give it."""
        _walk(self.model_dump(), path, self.name)  # a one-line error for a path that does not exist
        parts = path.split(".")
        value = getattr(self.tier(parts[1]), parts[2]) if parts[0] == "tiers" else _get(self, parts)
        if value is None:
            why = self.sources.get(path, "not given")
            raise ArchError(f"'{self.name}': {path} is unknown ({why}); give a value, e.g. "
                            f"with_values(arch, {{'{path}': ...}}) or a sweep axis")
        return value

    def bytes_per_s(self, bandwidth) -> float:
        return bandwidth.bytes_per_cycle(1.0)


def with_values(arch: TieredArch, values: dict[str, Any]) -> TieredArch:
    """A copy of ``arch`` with dotted ``values`` set (``"launch.software_us": 10``,
    ``"tiers.hbm.bandwidth": "2 TB/s"``, ``"sockets": 16``), validated like YAML."""
    data = arch.model_dump(mode="json")
    for path, v in values.items():
        node, key = _walk(data, path, arch.name)
        node[key] = v
    data["sources"] = {**arch.sources, **{k: "given: a value set for this run" for k in values}}
    try:
        return TieredArch.model_validate(_units_as_text(data))
    except ValidationError as e:
        from arch.loader import _to_arch_error

        raise _to_arch_error(e, None, {}, TieredArch) from None


def _get(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        obj = getattr(obj, part)
    return obj


def _walk(data: dict, path: str, arch_name: str) -> tuple[dict, str]:
    """The dict holding the last key of dotted ``path`` in a dumped TieredArch (tiers by name)."""
    parts, node, i = path.split("."), data, 0
    while i < len(parts) - 1:
        if parts[i] == "tiers":
            node = next((t for t in data["tiers"] if t["name"] == parts[i + 1]), None)
            if node is None:
                raise ArchError(f"'{arch_name}' has no tier '{parts[i + 1]}'", path=path)
            i += 2
            continue
        if not isinstance(node.get(parts[i]), dict):
            raise ArchError(f"'{arch_name}' has no setting '{path}'", path=path)
        node, i = node[parts[i]], i + 1
    if parts[-1] not in node:
        raise ArchError(f"'{arch_name}' has no setting '{path}'", path=path)
    return node, parts[-1]


def _units_as_text(data: Any) -> Any:
    """model_dump's parsed sizes and bandwidths back into the strings the schema reads."""
    if isinstance(data, dict):
        if set(data) == {"value", "per"}:
            return f"{data['value']} B/{data['per']}"
        return {k: f"{v} B" if k == "capacity" and isinstance(v, int) else _units_as_text(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_units_as_text(v) for v in data]
    return data


def list_tiered() -> list[tuple[str, str]]:
    """(name, description) of every shipped tiered-memory preset."""
    from arch.loader import list_presets

    return list_presets("tiered")


def load_tiered(source: str | Path | TieredArch) -> TieredArch:
    """The TieredArch named by a preset name (sn40l, dgx-a100, dgx-h100) or a YAML path."""
    from arch.loader import load_preset_model

    return load_preset_model(source, "tiered", TieredArch, "tiered-memory")

