"""The Mapping of one Einsum onto an architecture: tiles per memory level, loop orders, spatial axes.

``levels[j]`` belongs to ``arch.memories[j]`` (outermost first). ``levels[j].tile`` is the
tile of every rank that memory j holds (level 0 holds the whole tensor); ``levels[j].order``
lists, outermost first, the loops that walk the tiles of level j+1 inside one tile of level j.
The innermost level's tile is what the compute array executes, folding it onto its rows and
columns as its dataflow dictates (``spatial``). A middle level may ``bypass`` roles: it holds no
tile of them, and their tiles cross directly between the nearest levels that keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

import yaml

from arch.schema import ROLES
from mappers.errors import MappingError
from mappers.view import MatmulView

SPATIAL = {"os": ("m", "n"), "ws": ("k", "n"), "is": ("k", "m")}
"""Which rank group each dataflow places on the array's (rows, cols)."""


@dataclass(frozen=True)
class LevelMapping:
    """What one memory level holds (``tile``) and how it walks the next level's tiles (``order``).

    ``bypass`` lists the roles (in ROLES order) whose tiles this level does not hold; only
    middle levels may bypass."""

    memory: str
    tile: dict[str, int]
    order: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()


def kept_levels(bypass: list[tuple[str, ...]], role: str) -> list[int]:
    """Levels that hold ``role``'s tiles, given each level's bypass set (outermost first); the
    outermost and innermost levels always hold every role."""
    last = len(bypass) - 1
    return [j for j, skip in enumerate(bypass) if j in (0, last) or role not in skip]


def bypass_sources(bypass: list[tuple[str, ...]]) -> dict[str, dict[int, int]]:
    """Per role, kept level b > 0 -> the kept level a its tiles cross from, given each level's
    bypass set (outermost first): the rule Mapping.sources applies to a mapping."""
    out = {}
    for role in ROLES:
        kept = kept_levels(bypass, role)
        out[role] = dict(zip(kept[1:], kept))
    return out


@dataclass(frozen=True)
class Mapping:
    """A loop nest for one Einsum: a LevelMapping per memory level, bound to a compute unit."""

    einsum: str
    unit: str
    dataflow: str
    levels: tuple[LevelMapping, ...]
    notes: dict[str, str] = field(default_factory=dict)

    def trips(self, j: int) -> dict[str, int]:
        """Trip count per rank of the loops at level j (over level j+1's tiles)."""
        if j >= len(self.levels) - 1:
            return {}
        outer, inner = self.levels[j].tile, self.levels[j + 1].tile
        return {r: ceil(outer[r] / inner[r]) for r in outer}

    @property
    def compute_tile(self) -> dict[str, int]:
        return self.levels[-1].tile

    def kept(self, role: str) -> list[int]:
        """Levels that hold ``role``'s tiles, outermost first (always the outermost and innermost)."""
        return kept_levels([lv.bypass for lv in self.levels], role)

    def kept_pairs(self, role: str) -> list[tuple[int, int]]:
        """(a, b) for each kept level b > 0 of ``role`` and the kept level a its tiles cross from."""
        kept = self.kept(role)
        return list(zip(kept, kept[1:]))

    def sources(self) -> dict[str, dict[int, int]]:
        """Per role, kept level b > 0 -> the level a its tiles cross from (b - 1 without bypass)."""
        return bypass_sources([lv.bypass for lv in self.levels])

    def to_dict(self, view: MatmulView | None = None) -> dict:
        """Plain-data form (for YAML); ``spatial`` and ``trips`` are written for the reader."""
        levels = []
        for j, lv in enumerate(self.levels):
            entry: dict = {"memory": lv.memory, "tile": dict(lv.tile)}
            if lv.bypass:
                entry["bypass"] = list(lv.bypass)
            if j < len(self.levels) - 1:
                entry["order"] = list(lv.order)
                entry["trips"] = {r: self.trips(j)[r] for r in lv.order}
            levels.append(entry)
        d: dict = {"einsum": self.einsum, "unit": self.unit, "dataflow": self.dataflow}
        if view is not None and self.dataflow in SPATIAL:
            rows, cols = SPATIAL[self.dataflow]
            d["spatial"] = {"rows": list(view.groups[rows]), "cols": list(view.groups[cols])}
        d["levels"] = levels
        if self.notes:
            d["notes"] = dict(self.notes)
        return d

    def to_yaml(self, view: MatmulView | None = None) -> str:
        return yaml.safe_dump(self.to_dict(view), sort_keys=False, default_flow_style=None)

    def describe(self, view=None) -> str:
        """A readable loop nest, outermost loop first."""
        if self.dataflow in SPATIAL and view is not None:
            rows, cols = SPATIAL[self.dataflow]
            lines = [f"# {self.einsum} on {self.unit} ({self.dataflow}: rows <- {','.join(view.groups[rows]) or '-'}, "
                     f"cols <- {','.join(view.groups[cols]) or '-'})"]
        else:
            lines = [f"# {self.einsum} on {self.unit} ({self.dataflow})"]
        indent = ""
        for j, lv in enumerate(self.levels):
            tile = " ".join(f"{r}={t}" for r, t in lv.tile.items())
            bypass = f" (bypass: {', '.join(lv.bypass)})" if lv.bypass else ""
            lines.append(f"{indent}# {lv.memory} holds {tile}{bypass}")
            for r in lv.order:
                t = self.trips(j)[r]
                if t > 1:
                    lines.append(f"{indent}for {r}{j} in range({t}):")
                    indent += "  "
        lines.append(f"{indent}compute tile on {self.unit}")
        return "\n".join(lines)


_LEVEL_KEYS = {"memory", "tile", "order", "trips", "bypass"}
_TOP_KEYS = {"einsum", "unit", "dataflow", "spatial", "levels", "notes"}


def mapping_from_dict(d: dict) -> Mapping:
    """Read a mapping written by :meth:`Mapping.to_dict`; ``spatial`` and ``trips`` are checked later."""
    if not isinstance(d, dict):
        raise MappingError("mapping: expected a mapping with keys einsum, unit, dataflow, levels")
    unknown = set(d) - _TOP_KEYS
    if unknown:
        raise MappingError(f"mapping: unknown key '{sorted(unknown)[0]}' (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("einsum", "unit", "dataflow", "levels"):
        if key not in d:
            raise MappingError(f"mapping: missing key '{key}'")
    levels = []
    for j, lv in enumerate(d["levels"]):
        if not isinstance(lv, dict) or "memory" not in lv or "tile" not in lv:
            raise MappingError(f"mapping: levels[{j}] needs 'memory' and 'tile'")
        bad = set(lv) - _LEVEL_KEYS
        if bad:
            raise MappingError(f"mapping: levels[{j}]: unknown key '{sorted(bad)[0]}'")
        tile = lv["tile"]
        if not isinstance(tile, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in tile.values()):
            raise MappingError(f"mapping: levels[{j}].tile must map ranks to positive integers")
        bypass = lv.get("bypass", [])
        if not isinstance(bypass, list) or not all(isinstance(r, str) for r in bypass):
            raise MappingError(f"mapping: levels[{j}].bypass must be a list of roles ({', '.join(ROLES)})")
        levels.append(LevelMapping(str(lv["memory"]), {str(k): v for k, v in tile.items()}, tuple(lv.get("order", ())),
                                   tuple(bypass)))
    m = Mapping(str(d["einsum"]), str(d["unit"]), str(d["dataflow"]), tuple(levels), dict(d.get("notes", {})))
    for j, lv in enumerate(d["levels"]):
        if "trips" in lv and lv["trips"] != {r: m.trips(j).get(r) for r in lv["trips"]}:
            raise MappingError(f"mapping: levels[{j}].trips {lv['trips']} disagree with the tiles (expected {m.trips(j)})")
    return m


def footprint_bytes(view: MatmulView, tile: dict[str, int]) -> dict[str, float]:
    """Bytes of each operand's tile."""
    return {role: view.tile_bytes(role, tile) for role in view.tensors}


def check_mapping(mapping: Mapping, view: MatmulView, arch) -> None:
    """Raise MappingError (one line) unless ``mapping`` is a valid mapping of ``view`` on ``arch``."""
    where = f"mapping of '{view.einsum}'"
    if mapping.einsum != view.einsum:
        raise MappingError(f"{where}: it names einsum '{mapping.einsum}'")
    units = {u.name: u for u in arch.compute}
    if mapping.unit not in units:
        raise MappingError(f"{where}: unknown compute unit '{mapping.unit}' (have {', '.join(units)})")
    unit = units[mapping.unit]
    if mapping.dataflow != unit.dataflow:
        raise MappingError(f"{where}: dataflow '{mapping.dataflow}' but unit '{unit.name}' is '{unit.dataflow}'")
    names = [m.name for m in arch.memories]
    if [lv.memory for lv in mapping.levels] != names:
        raise MappingError(f"{where}: levels must be {names} (outermost first), got {[lv.memory for lv in mapping.levels]}")
    ranks = set(view.ranks)
    for j, lv in enumerate(mapping.levels):
        if set(lv.tile) != ranks:
            raise MappingError(f"{where}: level '{lv.memory}' tile must give every rank {sorted(ranks)}, got {sorted(lv.tile)}")
        outer = view.sizes if j == 0 else mapping.levels[j - 1].tile
        for r in view.ranks:
            if not 1 <= lv.tile[r] <= outer[r]:
                raise MappingError(f"{where}: level '{lv.memory}' tile {r}={lv.tile[r]} must be between 1 and {outer[r]}")
            if len(names) > 2 and outer[r] % lv.tile[r]:
                raise MappingError(f"{where}: level '{lv.memory}' tile {r}={lv.tile[r]} must divide {outer[r]} "
                                   "(uneven tiles are supported only with two memory levels)")
        if j < len(mapping.levels) - 1 and sorted(lv.order) != sorted(ranks):
            raise MappingError(f"{where}: level '{lv.memory}' order must list every rank {sorted(ranks)} once, got {list(lv.order)}")
        check_bypass(lv, j, len(mapping.levels), where)
    if mapping.levels[0].tile != view.sizes:
        raise MappingError(f"{where}: the outermost level must hold the whole tensors {view.sizes}")
    for j, memory in enumerate(arch.memories[1:], start=1):
        check_capacity(view, memory, mapping.levels[j].tile, where, mapping.levels[j].bypass)


def check_bypass(lv: LevelMapping, j: int, depth: int, where: str) -> None:
    """Raise MappingError unless level j's bypass lists known roles once, in ROLES order, at a middle level."""
    if not lv.bypass:
        return
    unknown = [r for r in lv.bypass if r not in ROLES]
    if unknown:
        raise MappingError(f"{where}: level '{lv.memory}' bypasses unknown role '{unknown[0]}' (roles: {', '.join(ROLES)})")
    if j == 0 or j == depth - 1:
        which = "outermost level holds whole tensors" if j == 0 else "innermost level feeds the compute array"
        raise MappingError(f"{where}: level '{lv.memory}' cannot bypass {', '.join(lv.bypass)}: the {which}; "
                           "only middle levels may bypass")
    if list(lv.bypass) != [r for r in ROLES if r in lv.bypass]:
        raise MappingError(f"{where}: level '{lv.memory}' bypass {list(lv.bypass)} must list each role once, "
                           f"in the order {', '.join(ROLES)}")


def check_capacity(view: MatmulView, memory, tile: dict[str, int], where: str, bypass: tuple[str, ...] = ()) -> None:
    """Raise MappingError naming the level and the bytes needed if ``tile`` (less the ``bypass``ed
    roles, which the level does not hold) does not fit."""
    copies = 2 if memory.double_buffered else 1
    need = {role: copies * b for role, b in footprint_bytes(view, tile).items() if role not in bypass}
    if memory.partitions:
        for role, cap in memory.partitions.items():
            if role in need and need[role] > cap:
                raise MappingError(f"{where}: {role} tile needs {need[role]:.0f} B in '{memory.name}' but its partition holds {cap} B")
    elif memory.capacity is not None and sum(need.values()) > memory.capacity:
        raise MappingError(f"{where}: tiles need {sum(need.values()):.0f} B in '{memory.name}' "
                           f"({'double-buffered' if copies == 2 else 'single-buffered'}) but it holds {memory.capacity} B")
