"""``evaluate``: map every Einsum of a workload onto an architecture and simulate it.

Multiply-accumulate Einsums go to a systolic array (mappers.view / mappers.greedy); every other
Einsum streams through a vector unit (mappers.vector). Einsums run one after another; a
Program's segment that repeats (identical layers) is simulated once and counted ``repeat`` times.
"""

from __future__ import annotations

import hashlib
import json

from mappers import MappingError, check_mapping, default_mapping, energy_breakdown, evaluate as model_cost, matmul_view
from mappers.mapping import LevelMapping, Mapping
from mappers.vector import gather_view, vector_cost, vector_mapping, vector_unit, vector_view
from sim.engine import simulate, simulate_vector
from sim.inputs import resolve_arch, resolve_mappings, resolve_workload
from sim.result import EinsumResult, RunResult


def evaluate(arch, workload, *, mappings=None, trace: bool = False, cache: dict | None = None, **lowering) -> RunResult:
    """Simulate ``workload`` on ``arch``, Einsum after Einsum.

    ``arch``: an Architecture, a preset name or a YAML / SCALE-Sim .cfg path. ``workload``: a
    Cascade, a Program, ``gemm:M,N,K``, a zoo model name or Hugging Face config.json (with
    ``lowering`` keywords such as phase, batch, seq, kv_len, attention), a cascade YAML or a
    SCALE-Sim topology CSV. ``mappings``: None (the default mappers), a Mapping, a
    {einsum: Mapping} dict or a mapping YAML path. ``cache``: a dict that keeps default GEMM
    mappings across calls (keyed by shape and the architecture's parameters, so one dict may
    serve many architectures, as a sweep's worker does); None: a fresh one per call.
    """
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
            results.append(_one(arch, seg, einsum, given.get(einsum.name), cache, scope, trace))
    units = {r.unit for r in results}
    clocks = {arch.clock_hz(arch.unit(u)) for u in units}
    if len(clocks) > 1:
        raise MappingError(f"units {sorted(units)} run on different clocks; mixed clock domains are not supported yet")
    clock = clocks.pop() if clocks else next(iter(arch.clocks.values()))
    name = segments[0].cascade.name if len(segments) == 1 else getattr(workload, "name", str(workload))
    return RunResult(name, arch.name, clock, tuple(results), tuple(views))


def _one(arch, seg, einsum, mapping: Mapping | None, cache: dict, scope: str, trace: bool) -> EinsumResult:
    """Map (unless given), check, model and simulate one Einsum of segment ``seg``."""
    cascade = seg.cascade
    try:
        view = None if einsum.name in seg.gathers else matmul_view(cascade, einsum)
    except MappingError:
        view = None
    if view is not None:
        mapping = mapping or _cached_gemm_mapping(view, arch, cache, scope)
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


def _cached_gemm_mapping(view, arch, cache: dict, scope: str) -> Mapping:
    """The default mapping, solved once per GEMM shape (and architecture ``scope``) and renamed
    for Einsums of the same shape."""
    key = (scope, tuple((g, tuple(view.sizes[r] for r in view.groups[g])) for g in ("batch", "m", "n", "k")),
           tuple(sorted(view.elem_bytes.items())))
    if key not in cache:
        cache[key] = (default_mapping(view, arch, _matmul_unit(arch)), view.ranks)
    mapping, ranks = cache[key]
    rename = dict(zip(ranks, view.ranks))
    levels = tuple(LevelMapping(lv.memory, {rename[r]: t for r, t in lv.tile.items()}, tuple(rename[r] for r in lv.order))
                   for lv in mapping.levels)
    return Mapping(view.einsum, mapping.unit, mapping.dataflow, levels)


def _matmul_unit(arch) -> str:
    """The unit GEMMs run on: the first two-dimensional array with a MAC, else the first unit."""
    return next((u.name for u in arch.compute if u.rows > 1 and "mac" in u.ops), arch.compute[0].name)
