"""``evaluate``: map every Einsum of a workload onto an architecture and simulate it."""

from __future__ import annotations

from mappers import check_mapping, default_mapping, energy_breakdown, evaluate as model_cost, matmul_view
from mappers.mapping import Mapping
from sim.engine import simulate
from sim.inputs import resolve_arch, resolve_mappings, resolve_workload
from sim.result import EinsumResult, RunResult


def evaluate(arch, workload, *, mappings=None, trace: bool = False) -> RunResult:
    """Simulate ``workload`` on ``arch``, Einsum after Einsum.

    ``arch``: an Architecture, a preset name or a YAML / SCALE-Sim .cfg path. ``workload``: a
    Cascade, ``gemm:M,N,K``, a cascade YAML or a SCALE-Sim topology CSV. ``mappings``: None
    (the default mapper), a Mapping, a {einsum: Mapping} dict or a mapping YAML path.
    """
    arch = resolve_arch(arch)
    cascade = resolve_workload(workload)
    given = resolve_mappings(mappings)
    results = []
    for einsum in cascade.einsums:
        view = matmul_view(cascade, einsum)
        mapping: Mapping = given.get(einsum.name) or default_mapping(view, arch)
        check_mapping(mapping, view, arch)
        unit = arch.unit(mapping.unit)
        stats = simulate(view, mapping, arch, trace=trace)
        energy = energy_breakdown(arch, unit, stats.traffic, stats.crossing, stats.macs)
        results.append(EinsumResult(einsum.name, unit.name, unit.rows * unit.cols, mapping, stats,
                                    model_cost(view, mapping, arch), energy))
    clock = arch.clock_hz(arch.unit(results[0].unit)) if results else next(iter(arch.clocks.values()))
    return RunResult(cascade.name, arch.name, clock, tuple(results))
