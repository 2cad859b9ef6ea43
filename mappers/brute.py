"""The brute-force oracle: the optimum of mappers.cost.evaluate over the whole mapspace.

Plain loops over mappers.space.enumerate_mappings; meant for small problems and tests. Ties are
broken by the mapping's YAML text, so the answer is deterministic.
"""

from __future__ import annotations

import time

from mappers.cost import evaluate
from mappers.space import OBJECTIVES, MapResult, enumerate_mappings, no_fit_error, objective_of
from mappers.view import MatmulView


def brute_all(view: MatmulView, arch, objectives=OBJECTIVES, padded: bool = False,
              bypass: bool = False) -> dict[str, MapResult]:
    """The optimum for every objective in ``objectives`` from one pass over the space
    (``padded``: with imperfect tiles; ``bypass``: with middle levels skipping operands; see mappers.space)."""
    start = time.perf_counter()
    memo: dict = {}
    best: dict = {}
    n = 0
    for mapping in enumerate_mappings(view, arch, padded=padded, bypass=bypass):
        cost = evaluate(view, mapping, arch, memo)
        n += 1
        for obj in objectives:
            value = objective_of(cost, obj)
            cur = best.get(obj)
            if cur is None or value < cur[0]:
                best[obj] = [value, mapping, cost, None]
            elif value == cur[0]:
                if cur[3] is None:
                    cur[3] = cur[1].to_yaml(view)
                text = mapping.to_yaml(view)
                if text < cur[3]:
                    best[obj] = [value, mapping, cost, text]
    if not n:
        raise no_fit_error(view, arch)
    secs = time.perf_counter() - start
    return {obj: MapResult(m, c, v, "OPTIMAL", v, n, secs) for obj, (v, m, c, _) in best.items()}


def brute_mapping(view: MatmulView, arch, objective: str = "edp", padded: bool = False,
                  bypass: bool = False) -> MapResult:
    """The optimum for one objective: "latency", "energy", "edp" or "lex"."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}' (expected one of {', '.join(OBJECTIVES)})")
    return brute_all(view, arch, (objective,), padded, bypass)[objective]
