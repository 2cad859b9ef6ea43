"""``evaluate``: map every Einsum of a workload onto an architecture and simulate it.

Multiply-accumulate Einsums go to a systolic array (mappers.view / mappers.greedy); every other
Einsum streams through a vector unit (mappers.vector). Einsums run one after another; a
Program's segment that repeats (identical layers) is simulated once and counted ``repeat`` times.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from mappers import MappingError, check_mapping, default_mapping, energy_breakdown, evaluate as model_cost, matmul_view
from mappers.mapping import LevelMapping, Mapping
from mappers.search import search_mapping
from mappers.space import OBJECTIVES, check_padded
from mappers.vector import gather_view, vector_cost, vector_mapping, vector_unit, vector_view
from sim.engine import simulate, simulate_vector
from sim.inputs import resolve_arch, resolve_mappings, resolve_workload
from sim.result import EinsumResult, RunResult

MAPPERS = ("greedy", "cpsat", "search")
CPSAT_MAX_RANKS = 8  # more ranks: CP-SAT's reuse booleans grow as ranks² × levels; search instead
CPSAT_MAX_TABLE_ROWS = 200_000  # more tiles to enumerate: building the tables alone takes too long


def evaluate(arch, workload, *, mappings=None, trace: bool = False, cache: dict | None = None, mapper: str = "greedy",
             objective: str = "edp", time_limit_s: float = 10, padded: bool = False, bypass: bool = False,
             **lowering) -> RunResult:
    """Simulate ``workload`` on ``arch``, Einsum after Einsum.

    ``arch``: an Architecture, a preset name or a YAML / SCALE-Sim .cfg path. ``workload``: a
    Cascade, a Program, ``gemm:M,N,K``, a zoo model name or Hugging Face config.json (with
    ``lowering`` keywords such as phase, batch, seq, kv_len, attention), a cascade YAML or a
    SCALE-Sim topology CSV. ``mappings``: None (the default mappers), a Mapping, a
    {einsum: Mapping} dict or a mapping YAML path. ``cache``: a dict that keeps default GEMM
    mappings across calls (keyed by shape and the architecture's parameters, so one dict may
    serve many architectures, as a sweep's worker does); None: a fresh one per call.
    ``mapper``: how GEMM Einsums without a given mapping are mapped: "greedy" (default_mapping),
    "cpsat" (cpsat_mapping for ``objective`` within ``time_limit_s``; see ``_solve_gemm`` for when
    it falls back to "search") or "search" (search_mapping); the mapping's notes name the mapper.
    ``padded`` (two memory levels) and ``bypass`` (three or more) widen cpsat's and search's
    mapspace with imperfect tiles and with middle levels that skip operands (mappers.space).
    """
    if mapper not in MAPPERS:
        raise MappingError(f"unknown mapper '{mapper}' (expected one of {', '.join(MAPPERS)})")
    if objective not in OBJECTIVES:
        raise MappingError(f"unknown objective '{objective}' (expected one of {', '.join(OBJECTIVES)})")
    how = (mapper, objective, time_limit_s, padded, bypass)
    arch = resolve_arch(arch)
    segments = resolve_workload(workload, **lowering)
    given = resolve_mappings(mappings)
    scope = arch_key(arch) if cache is not None else ""  # one shared dict may serve many architectures
    cache = {} if cache is None else cache
    results, views = [], []
    for seg in segments:
        for einsum in seg.cascade.einsums:
            if einsum.name in seg.views:
                views.append(f"{seg.name}.{einsum.name}" if seg.name else einsum.name)
                continue
            results.append(_one(arch, seg, einsum, given.get(einsum.name), cache, scope, trace, how))
    units = {r.unit for r in results}
    clocks = {arch.clock_hz(arch.unit(u)) for u in units}
    if len(clocks) > 1:
        raise MappingError(f"units {sorted(units)} run on different clocks; mixed clock domains are not supported yet")
    clock = clocks.pop() if clocks else next(iter(arch.clocks.values()))
    name = segments[0].cascade.name if len(segments) == 1 else getattr(workload, "name", str(workload))
    return RunResult(name, arch.name, clock, tuple(results), tuple(views))


def _one(arch, seg, einsum, mapping: Mapping | None, cache: dict, scope: str, trace: bool,
         how: tuple = ("greedy", "edp", 10)) -> EinsumResult:
    """Map (unless given), check, model and simulate one Einsum of segment ``seg``."""
    cascade = seg.cascade
    try:
        view = None if einsum.name in seg.gathers else matmul_view(cascade, einsum)
    except MappingError:
        view = None
    if view is not None:
        mapping = mapping or _cached_gemm_mapping(view, arch, cache, scope, how)
        check_mapping(mapping, view, arch)
        stats, cost = simulate(view, mapping, arch, trace=trace), model_cost(view, mapping, arch)
    else:
        vview = vector_view(cascade, einsum)
        if einsum.name in seg.gathers:
            vview = gather_view(vview, seg.selectors)
        mapping = mapping or vector_mapping(vview, arch, vector_unit(vview, arch))
        stats, cost = simulate_vector(vview, mapping, arch, trace=trace), vector_cost(vview, mapping, arch)
    unit = arch.unit(mapping.unit)
    energy = energy_breakdown(arch, unit, stats.traffic, stats.crossing, stats.ops)
    return EinsumResult(einsum.name, unit.name, unit.rows * unit.cols, mapping, stats, cost, energy, seg.repeat, seg.name)


def arch_key(arch) -> str:
    """A hash of every architecture parameter a mapping may depend on (all but name, description, sources)."""
    dump = arch.model_dump(mode="json", exclude={"name", "description", "sources"})
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:32]


def _cached_gemm_mapping(view, arch, cache: dict, scope: str, how: tuple = ("greedy", "edp", 10)) -> Mapping:
    """The mapping of ``how`` = (mapper, objective, time limit), solved once per GEMM shape (and
    architecture ``scope``) and renamed for Einsums of the same shape."""
    key = (scope, tuple((g, tuple(view.sizes[r] for r in view.groups[g])) for g in ("batch", "m", "n", "k")),
           tuple(sorted(view.elem_bytes.items())))
    if how[0] != "greedy":  # greedy keeps the old key, so caches filled before stay valid
        key += how
    if key not in cache:
        cache[key] = (_solve_gemm(view, arch, _matmul_unit(arch), *how), view.ranks)
    mapping, ranks = cache[key]
    rename = dict(zip(ranks, view.ranks))
    levels = tuple(LevelMapping(lv.memory, {rename[r]: t for r, t in lv.tile.items()}, tuple(rename[r] for r in lv.order),
                                lv.bypass) for lv in mapping.levels)
    return Mapping(view.einsum, mapping.unit, mapping.dataflow, levels, dict(mapping.notes))


def _solve_gemm(view, arch, unit: str, mapper: str = "greedy", objective: str = "edp", time_limit_s: float = 10,
                padded: bool = False, bypass: bool = False) -> Mapping:
    """One GEMM's mapping by ``mapper``, with {"mapper": …, "status": …, "bound": …} in its notes.

    "cpsat" falls back to search_mapping (notes: mapper "search", fallback "<why>") when its
    tables would enumerate more than CPSAT_MAX_TABLE_ROWS tiles on three or more levels (cpsat
    enumerates large two-level spaces itself: notes "enumerated") or the view has more than
    CPSAT_MAX_RANKS ranks (building them alone would take too long), when the model cannot be
    built exactly (NotImplementedError: a cost term without a closed form; Overflow/TypeError: a
    bound beyond int64 that ortools rejects before cpsat's own check) or when CP-SAT returns no
    solution (time limit, or a model it rejects, e.g. int64 overflow). A problem with no fitting
    tile at all still raises MappingError."""
    if mapper == "greedy":
        return default_mapping(view, arch, unit)  # no notes, as before: no notes means greedy
    check_padded(arch, padded, "--padded")  # before cpsat, whose refusal would send it to search
    fallback = ""
    if mapper == "cpsat":
        from mappers.cpsat import cpsat_mapping, table_rows

        rows = table_rows(view, arch, padded, bypass)
        if len(view.ranks) > CPSAT_MAX_RANKS or (rows > CPSAT_MAX_TABLE_ROWS and len(arch.memories) > 2):
            fallback = f"{len(view.ranks)} ranks, {rows} table rows"
        else:
            try:
                r = cpsat_mapping(view, arch, objective, time_limit_s, unit_name=unit, padded=padded, bypass=bypass)
                notes = {"mapper": "cpsat", "status": r.status, "bound": _plain(r.bound)}
                if r.evaluated:  # a two-level space cpsat enumerated rather than loaded into tables
                    notes["enumerated"] = r.evaluated
                return replace(r.mapping, notes=notes)
            except (NotImplementedError, OverflowError, TypeError) as err:  # not modelled, or beyond int64
                fallback = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
            except MappingError as err:
                if not str(err).startswith("cpsat mapper:"):
                    raise  # nothing fits: the user must hear it
                fallback = str(err)
    r = search_mapping(view, arch, objective, unit_name=unit, padded=padded, bypass=bypass)
    notes = {"mapper": "search", "status": r.status, "evaluated": r.evaluated}
    return replace(r.mapping, notes=notes | ({"fallback": fallback} if fallback else {}))


def _plain(x):
    """A bound as plain YAML-friendly numbers."""
    return [float(v) for v in x] if isinstance(x, tuple) else (None if x is None else float(x))


def _matmul_unit(arch) -> str:
    """The unit GEMMs run on: the first two-dimensional array with a MAC, else the first unit."""
    return next((u.name for u in arch.compute if u.rows > 1 and "mac" in u.ops), arch.compute[0].name)
