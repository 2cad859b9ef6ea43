"""The sweep spec: a base architecture, axes over its parameters, workloads, objectives, constraints.

```yaml
base: tpu-like                           # preset, architecture YAML (relative to the spec) or .cfg
axes:                                    # dotted paths into the architecture's YAML form
  compute.mxu.rows: [64, 128, 256]       # list items by their name ...
  memories[1].capacity: [4 MiB, 8 MiB]   # ... or by index
combine: grid                            # grid | zip | {random: N, seed: S} (seed 0 if left out)
tie:                                     # a path that takes an axis's value (block style: [ ] in a
  compute[0].cols: compute.mxu.rows      # key is not valid YAML inside { })
workloads:                               # cartesian over list values; always crossed with the points
  - gemm:512,768,768                     # anything evaluate takes (own line: commas split [ ])
  - {model: llama2-7b, phase: decode, kv_len: [1024, 4096], batch: 8, segment: layer}
objectives: [latency_s, energy_pj, area_mm2]   # default [latency_s, energy_pj]
constraints: ["area_mm2 <= 400"]              # metric OP number; area ones skip points before running
```

``load_spec`` validates the whole spec before anything runs: the base loads, every axis path
exists, every design point builds a valid Architecture, every workload lowers, every metric
named is one a run produces, and area constraints (decidable without simulating) leave some
point to run. Every problem is one :class:`SweepSpecError` line, ``file:line: key: problem``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import itertools
import json
import math
import operator
import random
import re
from dataclasses import dataclass
from pathlib import Path

SPEC_KEYS = ("name", "description", "base", "axes", "combine", "tie", "workloads", "objectives", "constraints")
"""Top-level keys of a sweep spec."""

LOWERING_KEYS = ("model", "phase", "batch", "seq", "kv_len", "new_tokens", "attention", "m0", "segment")
"""Keys of a model workload entry (a list value makes it an axis)."""

WORKLOAD_COLUMNS = ("workload", "spec", *LOWERING_KEYS)
"""Store columns that describe a run's workload (effective values, e.g. the default seq)."""

METRICS = ("latency_s", "latency_cycles", "energy_pj", "macs", "area_mm2", "clock_hz", "roofline_cycles", "events",
           "model.latency_cycles", "model.energy_pj")
"""Scalar metrics of a run; besides these, util.*, traffic.*, energy.*, ops.*, stall.* and area.*."""

DEFAULT_OBJECTIVES = ("latency_s", "energy_pj")

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|==|<|>)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
_PATH_TOKEN = re.compile(r"(?:^|\.)([^.\[\]]+)|\[(\d+)\]")


class SweepError(ValueError):
    """A sweep cannot run (bad spec, an OUT in the way, a missing executor); the message is one line."""


class SweepSpecError(SweepError):
    """A bad sweep spec; the message is one line, ``file:line: key: problem``."""


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its path as written, the key path it resolves to, and its values."""

    path: str
    loc: tuple
    values: tuple


@dataclass(frozen=True)
class Tie:
    """A parameter that takes the value of an axis (``compute[0].cols`` follows ``compute[0].rows``)."""

    path: str
    loc: tuple
    axis: str


@dataclass(frozen=True)
class Constraint:
    """``metric OP number``; a run that breaks it is infeasible (or skipped, for area)."""

    text: str
    metric: str
    op: str
    value: float

    def holds(self, metrics: dict) -> bool | None:
        """Whether ``metrics`` satisfy it; None when the metric is missing."""
        got = metrics.get(self.metric)
        return None if got is None else bool(_OPS[self.op](got, self.value))

    @property
    def before_running(self) -> bool:
        """Area needs no simulation, so area constraints are decided before any point runs."""
        return self.metric == "area_mm2" or self.metric.startswith("area.")


@dataclass(frozen=True)
class Workload:
    """One workload instance: ``key`` says how to build it (hashed into point ids), ``columns`` what it was."""

    index: int
    key: dict
    columns: dict


@dataclass(frozen=True)
class DesignPoint:
    """One architecture of the sweep: its parameters (axes and ties), area, and why it is skipped if it is."""

    index: int
    params: dict  # path as written -> value as written
    overrides: tuple  # (loc, value) pairs applied to the base dict
    columns: dict  # store columns: "<path>" (number where numeric) and "<path>:text"
    area: dict  # {"area_mm2": total, "area.<part>": mm2}, empty without arch.area
    skip: str | None = None


@dataclass(frozen=True)
class Run:
    """One (design point, workload) pair: a row of the results store."""

    point_id: str
    ord: int
    point: DesignPoint
    workload: Workload


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: everything a run needs, and the canonical data a resume compares."""

    source: str
    text: str  # what OUT/spec.yaml holds
    data: dict  # the spec as plain data (base as given, or its dict form)
    base_dict: dict
    base_key: str  # hash of the base architecture's dict form
    axes: tuple[Axis, ...]
    ties: tuple[Tie, ...]
    combine: object
    workloads: tuple[Workload, ...]
    objectives: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    points: tuple[DesignPoint, ...]
    version: str

    def runs(self) -> list[Run]:
        """Every (design point, workload) pair in a fixed order, with its stable point id."""
        n = len(self.workloads)
        return [Run(point_id(p.params, w.key, self.version), p.index * n + w.index, p, w)
                for p in self.points for w in self.workloads]

    def arch_dict(self, point: DesignPoint) -> dict:
        """The architecture dict of ``point``: the base with its overrides applied."""
        return apply_overrides(self.base_dict, point.overrides)

    @property
    def param_paths(self) -> tuple[str, ...]:
        """Axis paths then tied paths, the parameter columns of the store."""
        return tuple(a.path for a in self.axes) + tuple(t.path for t in self.ties)


def einsim_version() -> str:
    """The installed einsim version (part of every point id: a new version means new results)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("einsim")
    except PackageNotFoundError:
        return "unknown"


def point_id(params: dict, workload: dict, version: str) -> str:
    """A stable hash of a point's parameters, its workload and the einsim version."""
    text = json.dumps({"params": params, "workload": workload, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def apply_overrides(base: dict, overrides) -> dict:
    """A deep copy of ``base`` with each (loc, value) set."""
    data = copy.deepcopy(base)
    for loc, value in overrides:
        node = data
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = copy.deepcopy(value)
    return data


# --- loading -------------------------------------------------------------------------------------


class _Where:
    """Turns a key path of the spec into ``file:line: key`` for error messages."""

    def __init__(self, source: str, lines: dict) -> None:
        self.source, self.lines = source, lines

    def line(self, path: tuple) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def fail(self, path: tuple, key: str, problem: str) -> SweepSpecError:
        line = self.line(path)
        where = f"{self.source}:{line}" if line else self.source
        return SweepSpecError(": ".join(p for p in (where, key, problem) if p))


def load_spec(spec, *, root: Path | None = None) -> SweepSpec:
    """Validate a spec (a YAML path, a dict, or a SweepSpec) whole; SweepSpecError on the first problem."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        data, lines, source, text = spec, {}, "<spec>", None
        root = root or Path.cwd()
    else:
        from arch import YamlError, load_yaml

        path = Path(spec)
        if not path.is_file():
            raise SweepSpecError(f"{path}: no such file")
        try:
            data, lines = load_yaml(path)
        except YamlError as err:
            raise SweepSpecError(str(err)) from None
        source, text, root = str(path), path.read_text(encoding="utf-8-sig"), path.resolve().parent
    where = _Where(source, lines)
    if not isinstance(data, dict):
        raise where.fail((), "", "a sweep spec must be a mapping with keys base, axes, workloads, ...")
    for key in data:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.fail((key,), str(key), f"unknown key{hint}; known: {', '.join(SPEC_KEYS)}")
    for key in ("base", "workloads"):
        if key not in data:
            raise where.fail((), key, "missing")
    base_given, base_dict = _load_base(data["base"], where, root)
    axes = _axes(data.get("axes"), base_dict, where)
    ties = _ties(data.get("tie"), axes, base_dict, where)
    combine = _combine(data.get("combine", "grid"), axes, where)
    workloads = _workloads(data["workloads"], where, root)
    area_fn = _area_function()
    known = _known_metrics(base_dict, area_fn)
    objectives = _objectives(data.get("objectives"), known, area_fn, where)
    constraints = _constraints(data.get("constraints"), known, area_fn, where)
    points = _points(axes, ties, combine, base_dict, area_fn, constraints, where)
    canonical = {**data, "base": base_given}
    version = einsim_version()
    if text is None:
        import yaml

        text = yaml.safe_dump(_plain(canonical), sort_keys=False)
    return SweepSpec(source, text, _plain(canonical), base_dict, _hash(base_dict), axes, ties, combine, workloads,
                     objectives, constraints, points, version)


def _plain(data):
    """``data`` as JSON-safe plain data (tuples to lists), for spec.yaml and resume comparisons."""
    return json.loads(json.dumps(data, default=str))


def _hash(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load_base(base, where: _Where, root: Path) -> tuple[object, dict]:
    """(base as recorded, base architecture dict form) from a preset name, YAML path, .cfg, dict or Architecture."""
    from arch import ArchError, Architecture, YamlError, arch_from_dict, load_arch, load_yaml

    if isinstance(base, Architecture):
        form = arch_to_dict(base)
        return form, form
    if isinstance(base, dict):
        try:
            arch_from_dict(base)
        except ArchError as err:
            raise where.fail(("base",), "base", str(err)) from None
        return base, copy.deepcopy(base)
    if not isinstance(base, (str, Path)) or not str(base).strip():
        raise where.fail(("base",), "base", f"must be a preset name or an architecture YAML path, got {base!r}")
    text = str(base)
    suffix = Path(text).suffix.lower()
    source: str | Path = text
    if suffix in (".yaml", ".yml", ".cfg") or "/" in text:
        path = Path(text)
        if not path.is_absolute() and (root / path).exists():
            path = root / path
        source = path
    try:
        arch = load_arch(source)
        if suffix in (".yaml", ".yml"):
            form, _ = load_yaml(source)
        elif suffix == ".cfg" or "/" in text:
            form = arch_to_dict(arch)
        else:
            from importlib import resources

            form, _ = load_yaml(str(resources.files("arch").joinpath("presets", f"{text}.yaml")))
    except (ArchError, YamlError) as err:
        raise where.fail(("base",), "base", str(err)) from None
    except OSError as err:
        raise where.fail(("base",), "base", f"{err.strerror or err}: {err.filename}") from None
    return text, form


def arch_to_dict(arch) -> dict:
    """An Architecture in its YAML dict form (quantities as text with units), as arch_from_dict reads it."""
    return _form(arch, type(arch), ())


@functools.cache
def _unit_kinds() -> dict:
    """{validator function: 'bytes' | 'hz'} for the schema's unit-carrying int and float fields."""
    from typing import get_args

    from arch import schema

    kinds = {}
    for alias, kind in ((schema.Bytes, "bytes"), (schema.OptionalBytes, "bytes"), (schema.Hertz, "hz")):
        for meta in get_args(alias)[1:]:
            if getattr(meta, "func", None) is not None:
                kinds[meta.func] = kind
    return kinds


def _inner(ann, pos: int) -> tuple[object, tuple]:
    """(type, metadata) of a container annotation's element (``pos`` 0: items, -1: dict values)."""
    import types
    from typing import Annotated, Union, get_args, get_origin

    if get_origin(ann) in (Union, types.UnionType):
        ann = next((a for a in get_args(ann) if a is not type(None)), ann)
    args = [a for a in get_args(ann) if a is not Ellipsis]
    if not args:
        return None, ()
    inner = args[pos]
    return (get_args(inner)[0], tuple(inner.__metadata__)) if get_origin(inner) is Annotated else (inner, ())


def _form(value, ann, meta: tuple):
    """One schema value in YAML form: sizes as 'N B', clocks as 'x Hz', bandwidths and energies as text."""
    from pydantic import BaseModel

    from arch.units import Bandwidth, Energy

    kind = next((k for m in meta for f, k in _unit_kinds().items() if getattr(m, "func", None) is f), None)
    if value is None:
        return None
    if kind == "bytes":
        return f"{value} B"
    if kind == "hz":
        return f"{value!r} Hz"
    if isinstance(value, Bandwidth):
        return f"{value.value!r} B/{value.per}"
    if isinstance(value, Energy):
        return f"{value.pj!r} pJ" + ("/bit" if value.per_bit else "")
    if isinstance(value, BaseModel):
        return {n: _form(getattr(value, n), f.annotation, tuple(f.metadata)) for n, f in type(value).model_fields.items()}
    if isinstance(value, dict):
        inner = _inner(ann, -1)
        return {k: _form(v, *inner) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        inner = _inner(ann, 0)
        return [_form(v, *inner) for v in value]
    return value


# --- axes ----------------------------------------------------------------------------------------


def parse_path(path: str) -> list[str | int] | None:
    """``memories.hbm.ports[0].bandwidth`` -> ['memories', 'hbm', 'ports', 0, 'bandwidth']; None if malformed."""
    tokens: list[str | int] = []
    pos = 0
    for m in _PATH_TOKEN.finditer(path):
        if m.start() != pos:
            return None
        tokens.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return tokens if tokens and pos == len(path) else None


def resolve_path(base: dict, path: str) -> tuple:
    """The key path (strings and list indices) that ``path`` names in ``base``; KeyError(why) if none."""
    from arch.loader import _model_at

    tokens = parse_path(path)
    if tokens is None:
        raise KeyError(f"malformed path '{path}'; write e.g. compute.mxu.rows or compute[0].rows")
    node, loc = base, ()
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(node, list):
            if isinstance(tok, int):
                if tok >= len(node):
                    raise KeyError(f"unknown path '{path}'")
                idx = tok
            else:
                idx = next((j for j, item in enumerate(node) if isinstance(item, dict) and item.get("name") == tok), None)
                if idx is None:
                    raise KeyError(f"unknown path '{path}'")
            node, loc = node[idx], loc + (idx,)
        elif isinstance(node, dict) and isinstance(tok, str):
            if tok in node:
                node, loc = node[tok], loc + (tok,)
            else:
                model = _model_at(loc)
                if last and model is not None and tok in model.model_fields:
                    return loc + (tok,)  # a schema field the base leaves at its default
                raise KeyError(f"unknown path '{path}'")
        else:
            raise KeyError(f"unknown path '{path}'")
    return loc


def _leaf_paths(node, prefix: str = "") -> list[str]:
    """Every path into ``node`` as users write it (list items by name where they have one)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            if prefix == "" and k in ("sources", "description"):
                continue
            out += _leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            name = item.get("name") if isinstance(item, dict) else None
            out += _leaf_paths(item, f"{prefix}.{name}" if isinstance(name, str) else f"{prefix}[{i}]")
    return out


def _axes(raw, base: dict, where: _Where) -> tuple[Axis, ...]:
    """The axes, each resolved against the base and checked for a non-empty list of distinct values."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise where.fail(("axes",), "axes", "must map parameter paths to lists of values")
    axes: list[Axis] = []
    for path, values in raw.items():
        at = ("axes", path)
        if not isinstance(path, str):
            raise where.fail(at, "axes", f"a path must be text, got {path!r}")
        try:
            loc = resolve_path(base, path)
        except KeyError as err:
            close = difflib.get_close_matches(path, _leaf_paths(base), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.fail(at, "axes", f"{err.args[0]}{hint}") from None
        if loc and loc[-1] == "name" or loc[:1] in (("sources",), ("description",)):
            raise where.fail(at, "axes", f"'{path}' is a label, not a parameter to sweep")
        if not isinstance(values, list):
            raise where.fail(at, "axes", f"'{path}' must be a list of values, e.g. [64, 128], got {values!r}")
        if not values:
            raise where.fail(at, "axes", f"'{path}' has an empty list of values")
        for i, v in enumerate(values):
            if v in values[:i]:
                raise where.fail(at + (i,), "axes", f"'{path}' lists {v!r} twice")
        for other in axes:
            if other.loc == loc:
                raise where.fail(at, "axes", f"'{path}' and '{other.path}' name the same parameter")
        axes.append(Axis(path, loc, tuple(values)))
    return tuple(axes)


def _ties(raw, axes: tuple[Axis, ...], base: dict, where: _Where) -> tuple[Tie, ...]:
    """Tied parameters: each names a path of the base and the axis whose value it takes."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise where.fail(("tie",), "tie", "must map a path to the axis whose value it takes, e.g. {compute[0].cols: compute[0].rows}")
    by_path = {a.path: a for a in axes}
    ties: list[Tie] = []
    for path, axis in raw.items():
        at = ("tie", path)
        try:
            loc = resolve_path(base, str(path))
        except KeyError as err:
            close = difflib.get_close_matches(str(path), _leaf_paths(base), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.fail(at, "tie", f"{err.args[0]}{hint}") from None
        target = by_path.get(str(axis))
        if target is None:
            try:
                target_loc = resolve_path(base, str(axis))
            except KeyError:
                target_loc = None
            target = next((a for a in axes if a.loc == target_loc), None)
        if target is None:
            close = difflib.get_close_matches(str(axis), list(by_path), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.fail(at, "tie", f"'{path}' follows '{axis}', which is not an axis{hint}")
        if any(a.loc == loc for a in axes) or any(t.loc == loc for t in ties):
            raise where.fail(at, "tie", f"'{path}' is already swept; it cannot also follow '{axis}'")
        ties.append(Tie(str(path), loc, target.path))
    return tuple(ties)


def _combine(raw, axes: tuple[Axis, ...], where: _Where):
    """grid, zip (equal lengths) or {random: N, seed: S}."""
    at = ("combine",)
    if raw in ("grid", "zip"):
        if raw == "zip" and axes:
            first = axes[0]
            for a in axes[1:]:
                if len(a.values) != len(first.values):
                    raise where.fail(at, "combine", f"zip needs axes of equal length: '{first.path}' has "
                                     f"{len(first.values)} values, '{a.path}' has {len(a.values)}")
        return raw
    if isinstance(raw, dict) and "random" in raw:
        for key in raw:
            if key not in ("random", "seed"):
                raise where.fail(at + (key,), "combine", f"unknown key '{key}'; random sampling takes random and seed")
        n, seed = raw["random"], raw.get("seed", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise where.fail(at + ("random",), "combine.random", f"must be a positive integer, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise where.fail(at + ("seed",), "combine.seed", f"must be an integer, got {seed!r}")
        return {"random": n, "seed": seed}
    raise where.fail(at, "combine", f"must be grid, zip or {{random: N, seed: S}}, got {raw!r}")


def combinations(axes: tuple[Axis, ...], combine) -> list[tuple[int, ...]]:
    """Index tuples (one value index per axis) of the design points, in a fixed order."""
    if not axes:
        return [()]
    sizes = [len(a.values) for a in axes]
    if combine == "zip":
        return [(i,) * len(axes) for i in range(sizes[0])]
    if combine == "grid":
        return list(itertools.product(*(range(n) for n in sizes)))
    total = math.prod(sizes)
    picks = sorted(random.Random(combine["seed"]).sample(range(total), min(combine["random"], total)))
    out = []
    for flat in picks:  # mixed radix, first axis most significant (the grid's order)
        idx = []
        for n in reversed(sizes):
            flat, r = divmod(flat, n)
            idx.append(r)
        out.append(tuple(reversed(idx)))
    return out


def _text(value) -> str:
    """A parameter value as text: strings as written, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _numeric(arch, loc: tuple) -> tuple[float | int | None, str]:
    """(number, unit tag) of the parsed value at ``loc``; (None, 'text') where it is not a number."""
    from arch.units import Bandwidth, Energy

    node = arch
    for part in loc:
        node = node[part] if isinstance(part, int) or isinstance(node, dict) else getattr(node, part)
    if node is None:
        return None, "none"
    if isinstance(node, bool):
        return None, "text"
    if isinstance(node, (int, float)):
        return node, ""
    if isinstance(node, Bandwidth):
        return node.value, f"B/{node.per}"
    if isinstance(node, Energy):
        return node.pj, "pJ/bit" if node.per_bit else "pJ"
    return None, "text"


def _points(axes, ties, combine, base: dict, area_fn, constraints, where: _Where) -> tuple[DesignPoint, ...]:
    """Every design point, each built through arch_from_dict (the first invalid one is the error)."""
    from arch import ArchError, arch_from_dict

    params_all = [*((a.path, a.loc) for a in axes), *((t.path, t.loc) for t in ties)]
    raw: list[tuple[dict, tuple, dict, dict]] = []
    kinds: dict[str, set] = {p: set() for p, _ in params_all}
    for idx in combinations(axes, combine):
        params = {a.path: a.values[i] for a, i in zip(axes, idx)}
        params.update({t.path: params[t.axis] for t in ties})
        overrides = tuple((loc, params[p]) for p, loc in params_all)
        try:
            arch = arch_from_dict(apply_overrides(base, overrides))
        except ArchError as err:
            raise _point_error(err, axes, ties, idx, where) from None
        numbers = {}
        for p, loc in params_all:
            numbers[p], tag = _numeric(arch, loc)
            kinds[p].add(tag)
        area = _area(area_fn, arch, params, where)
        raw.append((params, overrides, numbers, area))
    numeric = {p for p, tags in kinds.items() if "text" not in tags and len(tags - {"none"}) == 1}
    points = []
    for n, (params, overrides, numbers, area) in enumerate(raw):
        columns = {}
        for p in params:
            columns[p] = numbers[p] if p in numeric else _text(params[p])
            columns[f"{p}:text"] = _text(params[p])
        broken = [c for c in constraints if c.before_running and c.holds(area) is False]
        skip = "; ".join(f"violates '{c.text}' ({c.metric} = {area[c.metric]:.6g})" for c in broken) or None
        points.append(DesignPoint(n, params, overrides, columns, area, skip))
    if points and all(p.skip for p in points):
        raise _unsatisfiable(points, constraints, where)
    return tuple(points)


def _point_error(err, axes, ties, idx, where: _Where) -> SweepSpecError:
    """The error for a design point that is not a valid architecture, naming the axis value to blame."""
    loc = tuple(err.loc or ())
    if not loc and err.path:
        loc = tuple(parse_path(err.path) or ())
    follows = {t.loc: t.axis for t in ties}
    for a, i in zip(axes, idx):
        locs = [a.loc] + [t_loc for t_loc, ax in follows.items() if ax == a.path]
        if any(loc[:len(l)] == l or l[:len(loc)] == loc for l in locs if loc):
            return where.fail(("axes", a.path, i), "axes",
                              f"'{a.path}' value {a.values[i]!r} makes an invalid architecture: {err}")
    point = ", ".join(f"{a.path}={a.values[i]!r}" for a, i in zip(axes, idx))
    return where.fail(("axes",), "axes", f"the point {{{point}}} is not a valid architecture: {err}")


def _area_function():
    """arch.area.area_breakdown if this einsim has it, else None (imported lazily)."""
    try:
        from arch.area import area_breakdown
    except ModuleNotFoundError as err:
        if err.name in ("arch.area",):
            return None
        raise
    return area_breakdown


def _area(area_fn, arch, params: dict, where: _Where) -> dict:
    """{"area_mm2": total, "area.<part>": mm2} of one design point ({} without arch.area)."""
    if area_fn is None:
        return {}
    try:
        parts = area_fn(arch)
    except Exception as err:  # area models may refuse an architecture; say which point
        point = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the base"
        raise where.fail(("axes",), "axes", f"area of {{{point}}}: {' '.join(str(err).split()) or type(err).__name__}") from None
    out = {"area_mm2": float(parts["total"])}
    out.update({f"area.{k}": float(v) for k, v in sorted(parts.items()) if k != "total"})
    return out


def _unsatisfiable(points, constraints, where: _Where) -> SweepSpecError:
    """The error for area constraints that leave no design point to run."""
    decided = [(i, c) for i, c in enumerate(constraints) if c.before_running]
    for i, c in decided:
        if all(c.holds(p.area) is False for p in points):
            values = [p.area[c.metric] for p in points]
            what = c.metric.replace("_mm2", "").replace(".", " ")
            extreme = (f"smallest {what} {min(values):.6g} mm2" if c.op in ("<", "<=") else
                       f"largest {what} {max(values):.6g} mm2" if c.op in (">", ">=") else
                       f"{what} from {min(values):.6g} to {max(values):.6g} mm2")
            return where.fail(("constraints", i), f"constraints[{i}]",
                              f"constraint '{c.text}' excludes every design point ({extreme})")
    texts = ", ".join(f"'{c.text}'" for _, c in decided)
    return where.fail(("constraints",), "constraints", f"constraints {texts} together exclude every design point")


# --- workloads -----------------------------------------------------------------------------------


def _workloads(raw, where: _Where, root: Path) -> tuple[Workload, ...]:
    """Workload instances: strings as evaluate takes them, model dicts expanded over their list values."""
    if not isinstance(raw, list) or not raw:
        raise where.fail(("workloads",), "workloads", "must be a non-empty list (e.g. [gemm:512,768,768])")
    out: list[Workload] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(raw):
        key = f"workloads[{i}]"
        if isinstance(entry, str) and ":" in entry and i + 1 < len(raw) and isinstance(raw[i + 1], int):
            raise where.fail(("workloads", i), key, f"'{entry}' is followed by the number {raw[i + 1]}: commas inside "
                             "[...] split a spec; write it as a list item on its own line ('- gemm:64,64,64') or quote it")
        for instance in _expand_workload(entry, ("workloads", i), key, where, root):
            columns = _check_workload(instance, ("workloads", i), key, where)
            ident = json.dumps(instance, sort_keys=True)
            if ident in seen:
                raise where.fail(("workloads", i), key, f"repeats the workload of {seen[ident]}")
            seen[ident] = key
            out.append(Workload(len(out), instance, columns))
    return tuple(out)


def _expand_workload(entry, at: tuple, key: str, where: _Where, root: Path) -> list[dict]:
    """The instances of one entry: {'spec': text} for strings, one dict per combination of list values."""
    from sim.inputs import _is_model

    if isinstance(entry, str):
        text = _relative(entry, root)
        if _is_model(text):
            return [{"model": text}]
        return [{"spec": text}]
    if not isinstance(entry, dict):
        raise where.fail(at, key, f"must be a workload spec such as gemm:512,768,768 or a mapping with 'model', got {entry!r}")
    for k in entry:
        if k not in LOWERING_KEYS:
            close = difflib.get_close_matches(str(k), LOWERING_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.fail(at + (k,), f"{key}.{k}", f"unknown key{hint}; known: {', '.join(LOWERING_KEYS)}")
    if "model" not in entry:
        raise where.fail(at, key, "needs 'model' (or write a spec such as gemm:512,768,768)")
    lists = []
    for k, v in entry.items():
        values = v if isinstance(v, list) else [v]
        if not values:
            raise where.fail(at + (k,), f"{key}.{k}", "has an empty list of values")
        for j, x in enumerate(values):
            if isinstance(x, (list, dict)):
                raise where.fail(at + (k,), f"{key}.{k}", f"values must be scalars, got {x!r}")
            if x in values[:j]:
                raise where.fail(at + (k,), f"{key}.{k}", f"lists {x!r} twice")
        if k == "model":
            values = [_relative(str(x), root) for x in values]
        lists.append([(k, x) for x in values])
    return [dict(combo) for combo in itertools.product(*lists)]


def _relative(text: str, root: Path) -> str:
    """A relative file path resolved against the spec's folder when the file lies there."""
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json", ".csv") and not path.is_absolute() and (root / path).exists():
        return str(root / path)
    return text


def build_workload(key: dict):
    """The workload evaluate takes for an instance key: its spec text, or a lowered Program (one segment if asked)."""
    if "spec" in key:
        return key["spec"]
    from sim.inputs import lower_model
    from workloads import Program
    from workloads.program import Segment

    options = {k: v for k, v in key.items() if k not in ("model", "segment")}
    program = lower_model(key["model"], **options)
    if key.get("segment") is None:
        return program
    seg = program.segment(key["segment"])
    return Program(f"{program.name}.{seg.name}", (Segment(seg.name, seg.cascade, 1),), program.meta)


def _check_workload(instance: dict, at: tuple, key: str, where: _Where) -> dict:
    """Build one instance (so bad models, phases and sizes fail now) and return its store columns."""
    from sim.errors import InputError
    from workloads import WorkloadError

    columns = {c: None for c in WORKLOAD_COLUMNS}
    try:
        if "spec" in instance:
            from sim.inputs import resolve_workload

            segments = resolve_workload(instance["spec"])
            columns.update(spec=instance["spec"], workload=segments[0].cascade.name if len(segments) == 1 else instance["spec"])
            return columns
        workload = build_workload({k: v for k, v in instance.items() if k != "segment"})
    except (WorkloadError, InputError) as err:
        sub = "model" if "unknown model" in str(err) or "no such file" in str(err) else None
        name = f"{key}.{sub}" if sub else key
        raise where.fail(at + ((sub,) if sub else ()), name, str(err)) from None
    except (OSError, ValueError) as err:
        raise where.fail(at, key, str(err)) from None
    segment = instance.get("segment")
    names = [s.name for s in workload.segments]
    if segment is not None and segment not in names:
        close = difflib.get_close_matches(str(segment), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise where.fail(at + ("segment",), f"{key}.segment", f"unknown segment {segment!r}{hint}; {workload.name} has {', '.join(names)}")
    meta = workload.meta
    columns.update(workload=f"{workload.name}.{segment}" if segment else workload.name, model=meta.get("model"),
                   phase=meta.get("phase"), batch=meta.get("batch"), seq=meta.get("seq"), kv_len=meta.get("kv_len"),
                   new_tokens=meta.get("new_tokens"), attention=meta.get("attention"),
                   m0=instance.get("m0"), segment=segment)
    return columns


# --- metrics -------------------------------------------------------------------------------------


def _known_metrics(base: dict, area_fn) -> list[str]:
    """Metric names a run on (a point of) ``base`` produces, for checking objectives and constraints."""
    from arch import arch_from_dict

    arch = arch_from_dict(base)
    names = [m for m in METRICS if m != "area_mm2" or area_fn is not None]
    names += ["stall.load", "stall.buffer_bandwidth"]
    for u in arch.compute:
        names.append(f"util.{u.name}")
        names += [f"energy.{u.name}.{op}" for op in u.ops] + [f"ops.{u.name}.{op}" for op in u.ops]
    for m in arch.memories:
        names += [f"traffic.{m.name}", f"energy.{m.name}.read", f"energy.{m.name}.write"]
        names += [f"util.{m.name}.{p.name}" for p in m.ports]
    names += [f"energy.{l.name}.transfer" for l in arch.links]
    if area_fn is not None:
        try:
            names += [f"area.{k}" for k in area_fn(arch) if k != "total"]
        except Exception:  # reported per point by _area
            pass
    return names


def _check_metric(metric: str, known: list[str], area_fn, at: tuple, key: str, where: _Where, what: str) -> None:
    if metric in known:
        return
    if area_fn is None and (metric == "area_mm2" or metric.startswith("area.")):
        raise where.fail(at, key, f"{what} names '{metric}', which needs arch.area (area_breakdown); this einsim has none")
    close = difflib.get_close_matches(metric, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise where.fail(at, key, f"{what} names unknown metric '{metric}'{hint}; metrics: {', '.join(known[:12])}, ...")


def _objectives(raw, known, area_fn, where: _Where) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_OBJECTIVES
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise where.fail(("objectives",), "objectives", "must be a non-empty list of metric names, e.g. [latency_s, energy_pj]")
    for i, m in enumerate(raw):
        _check_metric(m, known, area_fn, ("objectives", i), f"objectives[{i}]", where, "objective")
    return tuple(raw)


def _constraints(raw, known, area_fn, where: _Where) -> tuple[Constraint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.fail(("constraints",), "constraints", "must be a list such as [\"area_mm2 <= 400\"]")
    out = []
    for i, text in enumerate(raw):
        at, key = ("constraints", i), f"constraints[{i}]"
        m = _CONSTRAINT.match(text) if isinstance(text, str) else None
        if m is None:
            raise where.fail(at, key, f"{text!r} is not 'metric OP number' with OP one of <=, <, >=, >, ==")
        _check_metric(m.group(1), known, area_fn, at, key, where, f"constraint '{text.strip()}'")
        out.append(Constraint(text.strip(), m.group(1), m.group(2), float(m.group(3))))
    return tuple(out)
