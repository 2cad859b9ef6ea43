"""The architecture schema: what an architecture YAML may say, validated by pydantic.

Values with units arrive as strings ("16 MiB", "400 GiB/s", "940 MHz", "17.2 pJ") and are
normalised by the parsers in :mod:`arch.units`. Every model forbids unknown keys and is frozen,
so an Architecture is a safe value to cache and to share between processes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from arch.errors import ArchError
from arch.units import Bandwidth, Energy, parse_bandwidth, parse_bytes, parse_energy, parse_frequency


def _finite_bytes(v: object) -> int:
    """parse_bytes, refusing ``unbounded`` where a finite size is needed."""
    size = parse_bytes(v)
    if size is None:
        raise ValueError("must be a finite size here, not 'unbounded'")
    return size


def _or_none(parse):
    """A validator that lets an explicit null through (meaning unbounded) and parses the rest."""
    return lambda v: None if v is None else parse(v)


def _units(pattern: str, *examples: str) -> WithJsonSchema:
    """What the JSON Schema shows for a value with a unit: the string a user writes."""
    return WithJsonSchema({"type": "string", "pattern": pattern, "examples": list(examples)})


_NUM = r"^\s*[0-9][0-9_.]*([eE][-+]?[0-9]+)?\s*"
_SIZE = _units(_NUM + r"(B|bytes?|[KMGT]i?B)\s*$|^unbounded$", "512 KiB", "24 MiB", "unbounded")
_RATE = _units(_NUM + r"([KMGT]i?B|B|bytes?)/(s|cycle)\s*$|^unbounded$", "400 GiB/s", "64 B/cycle", "unbounded")
_FREQ = _units(_NUM + r"[kMG]?Hz\s*$", "940 MHz", "1 GHz")
_ENERGY = _units(_NUM + r"[fpn]J(/bit)?\s*$", "17.2 pJ", "3.9 pJ/bit")

Bytes = Annotated[int, BeforeValidator(_finite_bytes), _SIZE]
"""A size in bytes; YAML gives it with a unit ("512 KiB")."""
OptionalBytes = Annotated[int | None, BeforeValidator(_or_none(parse_bytes)), _SIZE]
"""A size in bytes or ``unbounded`` (None). The validator wraps the whole Optional: attached to
the int alone, "unbounded" -> None would fail int validation and never reach the None branch."""
Hertz = Annotated[float, BeforeValidator(parse_frequency), _FREQ]
BandwidthField = Annotated[Bandwidth, BeforeValidator(parse_bandwidth), _RATE]
OptionalBandwidth = Annotated[Bandwidth | None, BeforeValidator(_or_none(parse_bandwidth)), _RATE]
"""A bandwidth or ``unbounded`` (None); wraps the Optional for the same reason as OptionalBytes."""
EnergyField = Annotated[Energy, BeforeValidator(parse_energy), _ENERGY]

Role = Literal["input", "weight", "output"]
"""Operand roles of a matmul-like Einsum: A (input), B (weight), C (output)."""
ROLES: tuple[Role, ...] = ("input", "weight", "output")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Port(_Model):
    """A port of a memory level; transfers through it take bytes / bandwidth."""

    name: str
    bandwidth: OptionalBandwidth = None  # None: unbounded
    direction: Literal["read", "write", "both"] = "both"
    roles: tuple[Role, ...] = ROLES  # which operands it serves (SCALE-Sim has one per operand)


class Memory(_Model):
    """One memory level. ``memories`` lists them outermost (backing store) first.

    Energies are per access of one ``word_bits``-wide word (a ``pJ/bit`` value is scaled by
    the word width). ``partitions`` splits the capacity per operand role, as SCALE-Sim's
    separate ifmap/filter/ofmap SRAMs do; without it the capacity is shared.
    """

    name: str
    capacity: OptionalBytes = None  # None: unbounded (a backing store)
    word_bits: int = Field(8, gt=0)
    ports: tuple[Port, ...] = (Port(name="rw"),)
    read_energy: EnergyField = Energy(0.0)
    write_energy: EnergyField = Energy(0.0)
    double_buffered: bool = True
    partitions: dict[Role, Bytes] | None = None

    @model_validator(mode="after")
    def _check_partitions(self) -> "Memory":
        """Partitions split the capacity, so together they cannot exceed it."""
        if self.partitions and self.capacity is not None and sum(self.partitions.values()) > self.capacity:
            raise ArchError(f"partitions add up to {sum(self.partitions.values())} bytes, more than the capacity "
                            f"of {self.capacity} bytes", path=("partitions",))
        return self

    @property
    def read_pj_per_word(self) -> float:
        return self.read_energy.per_access(self.word_bits)

    @property
    def write_pj_per_word(self) -> float:
        return self.write_energy.per_access(self.word_bits)

    def port_for(self, role: Role, direction: Literal["read", "write"]) -> Port:
        """The port a transfer of ``role`` data in ``direction`` uses (first match wins)."""
        for port in self.ports:
            if role in port.roles and port.direction in (direction, "both"):
                return port
        raise ValueError(f"memory '{self.name}' has no {direction} port for {role} data")


class Op(_Model):
    """What one PE does for an op: its cycles and energy, or a lowering to other ops."""

    cycles: int = Field(1, ge=1)
    energy: EnergyField = Energy(0.0)
    lower_to: dict[str, int] | None = None  # e.g. exp: {mac: 6, add: 1}


class ComputeArray(_Model):
    """A systolic (2D) or vector (rows = 1) array of PEs."""

    name: str
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    dataflow: Literal["os", "ws", "is"] = "ws"
    clock: str = "core"  # a key of Architecture.clocks
    ops: dict[str, Op] = Field(default_factory=lambda: {"mac": Op()})
    overlap_folds: bool = False  # overlap fill/drain of consecutive folds
    dtype: Literal["int8", "fp8", "fp16", "bf16", "fp32"] = "bf16"  # the PEs' number type (area)

    @model_validator(mode="after")
    def _check_lowering(self) -> "ComputeArray":
        """Every ``lower_to`` names an op of this array, with a positive count, and no op lowers in a cycle."""
        for name, spec in self.ops.items():
            for sub, count in (spec.lower_to or {}).items():
                if sub not in self.ops:
                    raise ArchError(f"op '{name}' lowers to '{sub}', not an op of this array ({', '.join(sorted(self.ops))})",
                                    path=("ops", name, "lower_to", sub))
                if count < 1:
                    raise ArchError(f"op '{name}' lowers to {count} x '{sub}'; the count must be at least 1",
                                    path=("ops", name, "lower_to", sub))
        for name in self.ops:
            seen, todo = set(), [name]
            while todo:
                for sub in self.ops[todo.pop()].lower_to or {}:
                    if sub == name:
                        raise ArchError(f"op '{name}' lowers to itself through {sorted(seen | {sub})}",
                                        path=("ops", name, "lower_to"))
                    if sub not in seen:
                        seen.add(sub)
                        todo.append(sub)
        return self

    def op_cost(self, op: str, _depth: int = 0) -> tuple[int, float]:
        """(cycles, energy pJ) of one ``op`` on one PE, following ``lower_to`` chains."""
        if op not in self.ops:
            raise ValueError(f"compute array '{self.name}' has no op '{op}'")
        spec = self.ops[op]
        if spec.lower_to is None:
            return spec.cycles, spec.energy.per_access(1)
        if _depth > 8:
            raise ValueError(f"compute array '{self.name}': op '{op}' lowers in a cycle")
        cycles, energy = 0, 0.0
        for sub, count in spec.lower_to.items():
            c, e = self.op_cost(sub, _depth + 1)
            cycles, energy = cycles + count * c, energy + count * e
        return cycles, energy


class Link(_Model):
    """A link between two memory levels; transfers take the slower of link and port."""

    name: str
    src: str
    dst: str
    bandwidth: OptionalBandwidth = None
    energy: EnergyField = Energy(0.0)  # per bit if given in pJ/bit, else per byte moved


class Architecture(_Model):
    """A whole accelerator: clocks, memory levels (outermost first), compute arrays, links."""

    name: str
    description: str = ""
    clocks: dict[str, Hertz]
    memories: tuple[Memory, ...] = Field(min_length=1)
    compute: tuple[ComputeArray, ...] = Field(min_length=1)
    links: tuple[Link, ...] = ()
    sources: dict[str, str] = Field(default_factory=dict)  # dotted path -> citation / "assumed: why"

    @model_validator(mode="after")
    def _check_references(self) -> "Architecture":
        # ArchError (a ValueError) carries the offending key's path, which the loader turns into file:line.
        names = [m.name for m in self.memories]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ArchError(f"memory names must be unique, '{name}' is used twice", path=("memories", i, "name"))
        units = [u.name for u in self.compute]
        for i, name in enumerate(units):
            if name in units[:i]:
                raise ArchError(f"compute names must be unique, '{name}' is used twice", path=("compute", i, "name"))
        for i, unit in enumerate(self.compute):
            if unit.clock not in self.clocks:
                raise ArchError(f"compute '{unit.name}' uses clock '{unit.clock}', not in clocks {sorted(self.clocks)}",
                                path=("compute", i, "clock"))
        for i, link in enumerate(self.links):
            for key, end in (("src", link.src), ("dst", link.dst)):
                if end not in names:
                    raise ArchError(f"link '{link.name}' names memory '{end}', not in {names}", path=("links", i, key))
        return self

    def memory(self, name: str) -> Memory:
        for m in self.memories:
            if m.name == name:
                return m
        raise ValueError(f"no memory '{name}' in architecture '{self.name}' (memories: {[m.name for m in self.memories]})")

    def unit(self, name: str | None = None) -> ComputeArray:
        """The named compute array, or the first one."""
        if name is None:
            return self.compute[0]
        for u in self.compute:
            if u.name == name:
                return u
        raise ValueError(f"no compute array '{name}' in architecture '{self.name}' (compute: {[u.name for u in self.compute]})")

    def clock_hz(self, unit: ComputeArray) -> float:
        return self.clocks[unit.clock]

    def link_between(self, a: str, b: str) -> Link | None:
        return next((l for l in self.links if {l.src, l.dst} == {a, b}), None)
