"""The brute-force oracle on arrays: the optimum of mappers.cost.evaluate over mappers.space, with numpy.

Same mapspace, same cost model and same optimum values as mappers.brute.brute_all, for problems
of real size (BERT, LLaMA GEMMs and attention) in seconds:

1. Tilings. Per rank, the divisor chains of space.rank_chains; a tiling is one chain per rank,
   numbered in itertools.product order (the order of space.valid_tilings), and must pass
   check_capacity's rule at every on-chip level (vectorized).
2. Loop orders. A level's order matters to evaluate only through, per role, the set of irrelevant
   ranks placed before the innermost relevant loop with trip > 1 (cost.boundary_reps). Orders
   with equal sets cost the same for every tiling, so each level keeps one order per such class:
   the first of space.level_orders. Every mapping has the cost of its tiling × classes.
3. Cost. Every term of evaluate is computed on arrays with the same floating-point operations in
   the same order (byte counts are exact integers; ``sum`` of floats is replayed as this Python
   does it), so values are bit-identical to evaluate's. The per-tile compute part calls
   compute_part_arrays, the array form of cost._compute_part, once per distinct innermost tile.
4. Pruning. Energy and latency never decrease when a reuse factor grows, so a tiling scored with
   every factor at its minimum over the classes is a lower bound for all its orders. Tilings are
   expanded in increasing bound order until the bound exceeds the best value found
   (``prune=False`` expands every tiling: plain enumeration).
5. Padded tiles (``padded=True``, two levels): the chains are space.tile_candidates, trips are
   ceil(extent / tile) and the last write-back is of the last, partial output tile, as in evaluate.
6. Bypass (``bypass=True``): one pass of the above per combination of bypass sets of the middle
   levels (the space is their union); each pass keeps a bypassed role out of that level's
   capacity and sends its tiles between the nearest levels that keep it, over that pair's port
   and link (Mapping.sources), as evaluate does.
7. Ties: the first mapping in space.enumerate_mappings order wins (brute_all picks the smallest
   YAML text instead: the same value, possibly another mapping). The winner is re-scored with the
   scalar evaluate, which must give the same value exactly (else AssertionError).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from functools import reduce
from itertools import combinations, permutations, product
from math import factorial, prod

import numpy as np

from mappers.brute import brute_all
from mappers.cost import ROLES, evaluate, port_rate
from mappers.systolic import array_accesses, fold_plan
from mappers.errors import OutOfTime
from mappers.mapping import bypass_sources
from mappers.space import (OBJECTIVES, MapResult, build_mapping, bypass_options, check_padded, level_orders,
                           no_fit_error, objective_of, rank_chains, tile_candidates)
from mappers.view import MatmulView

ENTRIES = 1 << 19  # tiling × class-combination entries scored at once
CHUNK = 1 << 18  # tilings checked for capacity at once
_BIG = np.iinfo(np.int64).max // 4
_ARRAY_MOVES = (("input", "read"), ("weight", "read"), ("output", "read"), ("output", "write"))


def pysum(terms: list) -> np.ndarray:
    """``sum(terms)`` of floats as this interpreter computes it, elementwise: left to right
    before Python 3.12, Neumaier-compensated since (CPython's builtin sum)."""
    total = np.asarray(terms[0], dtype=np.float64) + 0.0
    if sys.version_info < (3, 12):
        for x in terms[1:]:
            total = total + x
        return total
    comp = np.zeros_like(total)
    for x in terms[1:]:
        t = total + x
        comp = comp + np.where(np.abs(total) >= np.abs(x), (total - t) + x, (x - t) + total)
        total = t
    return np.where((comp != 0) & np.isfinite(comp), total + comp, total)


def transfer_cycles(nbytes: np.ndarray, rate: float) -> np.ndarray:
    """cost.transfer_cycles, elementwise."""
    if math.isinf(rate):
        return np.zeros(np.shape(nbytes), dtype=np.int64)
    return np.where(nbytes <= 0, 0, np.ceil(nbytes / rate - 1e-9)).astype(np.int64)


def _ax(x, nd: int):
    """``x`` (scalar or [T, ...]) with trailing unit axes up to ``nd`` dimensions."""
    return x if np.ndim(x) == 0 else x.reshape(x.shape + (1,) * (nd - x.ndim))


def compute_part_arrays(view: MatmulView, unit, memory, extents: np.ndarray, tiles: np.ndarray,
                        clock: float) -> tuple[np.ndarray, dict]:
    """cost._compute_part for many innermost tiles at once (one level of tiles, as brute_vec's
    innermost level sees them): [T] compute cycles and, per (role, direction), [T] array-side
    words, equal to the scalar ones (integers; the port-stall ceiling by the same float steps).

    A rank of extent E cut into tiles of t holds E // t full tiles and, when t does not divide E,
    one partial tile of E % t; every combination of full / partial per rank is one tile shape."""
    ranks = view.ranks
    group = {g: [ranks.index(r) for r in view.groups[g]] for g in ("batch", "m", "n", "k")}
    k_set = set(group["k"])
    full, rem = extents // tiles, extents % tiles  # [T, R]
    lanes = {move: port_rate(None, memory, *move, clock) for move in _ARRAY_MOVES}  # (port key, bytes/cycle)
    compute = np.zeros(len(tiles), dtype=np.int64)
    words = {move: np.zeros(len(tiles), dtype=np.int64) for move in _ARRAY_MOVES}
    ragged = [i for i in range(len(ranks)) if rem[:, i].any()]  # ranks with a partial tile somewhere
    for n_partial in range(len(ragged) + 1):
        for cut in combinations(ragged, n_partial):  # these ranks take their partial tile, the rest full
            rows = np.flatnonzero((rem[:, list(cut)] > 0).all(axis=1)) if cut else np.arange(len(tiles))
            if not len(rows):
                continue
            partial = np.isin(np.arange(len(ranks)), cut)
            sizes = np.where(partial, rem[rows], tiles[rows])
            counts = np.where(partial, 1, full[rows])
            count = counts.prod(axis=1)
            b, m, n, k = (sizes[:, group[g]].prod(axis=1) for g in ("batch", "m", "n", "k"))
            # A tile starts its partial sum when it is the first (full-size) tile on every k rank.
            if k_set & set(cut):
                n_first = np.zeros_like(count)
            else:
                n_first = counts[:, [i for i in range(len(ranks)) if i not in k_set]].prod(axis=1)
            plan = fold_plan(unit.dataflow, unit.rows, unit.cols, m, n, k)
            base = plan.cycles(unit.overlap_folds, b)
            for continues, n_tiles in ((False, n_first), (True, count - n_first)):
                acc = array_accesses(unit.dataflow, unit.rows, unit.cols, m, n, k, continues)
                moved = dict(zip(_ARRAY_MOVES, (acc.input_reads, acc.weight_reads, acc.output_reads, acc.output_writes)))
                per_lane: dict = {}  # cost.tile_duration: bytes per lane, then cost.busiest_port
                for move, w in moved.items():
                    per_lane[lanes[move]] = per_lane.get(lanes[move], 0) + b * w * view.elem_bytes[move[0]]
                busy: dict = {}
                for (key, rate), nbytes in per_lane.items():
                    busy[key] = busy.get(key, 0) + (0.0 if math.isinf(rate) else np.maximum(nbytes, 0.0) / rate)
                stall = np.zeros(len(rows), dtype=np.int64)
                for cycles in busy.values():
                    stall = np.maximum(stall, np.ceil(cycles - 1e-9).astype(np.int64))
                compute[rows] += n_tiles * np.maximum(base, stall)
                for move, w in moved.items():
                    words[move][rows] += n_tiles * b * w
    return compute, words


@dataclass
class _Tilings:
    """Per-tiling terms of a batch of valid tilings (T of them), everything but the loop orders."""

    flat: np.ndarray  # [T] tiling numbers
    tiles: np.ndarray  # [L, T, R] (level 0 = the extents)
    trips: np.ndarray  # [L-1, T, R]
    masks: np.ndarray  # [L-1, T] bit r set: rank r has trip > 1
    first_load: np.ndarray  # [T] cycles
    last_store: np.ndarray  # [T] cycles
    sub: dict  # lane -> [T] bytes of the first loads / last store (taken off the pipelined rest)
    compute: np.ndarray  # [T] cycles
    array_rd: np.ndarray  # [T] bytes the array reads from the innermost memory
    array_wr: np.ndarray  # [T] bytes it writes
    has: list  # per level j, role -> [T] bool: a relevant loop with trip > 1 at level j
    irr: list  # per level j, role -> [T] product of the irrelevant trips of level j
    pre: list  # per level j, role -> [T, C] product of the irrelevant trips before the innermost relevant loop
    valid: list  # per level j: [T, C] whether class c exists for this tiling


class _Space:
    """Everything about (view, arch, unit, bypass sets) that does not depend on the rest of the mapping."""

    def __init__(self, view: MatmulView, arch, unit_name: str | None, padded: bool = False,
                 skips: tuple[tuple[str, ...], ...] | None = None, compute_cache: "_Space | None" = None) -> None:
        check_padded(arch, padded, "brute_vec")
        self.view, self.arch = view, arch
        self.unit = arch.unit(unit_name)
        self.clock = arch.clock_hz(self.unit)
        self.mems = arch.memories
        self.L = L = len(self.mems)
        self.ranks = ranks = view.ranks
        self.R = len(ranks)
        self.extents = np.array([view.sizes[r] for r in ranks], dtype=np.int64)
        self.chains = [np.array(rank_chains(view.sizes[r], L, padded), dtype=np.int64).reshape(-1, L - 1) for r in ranks]
        self.shape = tuple(len(c) for c in self.chains)
        self.divs = [np.array(tile_candidates(view.sizes[r], padded), dtype=np.int64) for r in ranks]
        self.idx = {role: [ranks.index(r) for r in view.ranks_of(role)] for role in ROLES}
        self.irr_idx = {role: [i for i, r in enumerate(ranks) if r not in view.ranks_of(role)] for role in ROLES}
        self.rel_mask = {role: sum(1 << i for i in self.idx[role]) for role in ROLES}
        eb = view.elem_bytes
        self.full = {role: prod(view.sizes[r] for r in view.ranks_of(role)) * eb[role] for role in ROLES}
        # Bypass sets of levels 1 … L-1, and per role each kept level b > 0 -> the level a its tiles
        # cross from (Mapping.sources).
        self.skips = tuple(skips) if skips is not None else ((),) * (L - 1)
        self.src = bypass_sources([(), *self.skips])
        # Lane (port key, rate) of every boundary transfer, and the lanes in evaluate's insertion order.
        self.port: dict = {}
        self.lane_order: list = []
        for b in range(1, L):
            for role, direction in (("input", "read"), ("weight", "read"), ("output", "read"), ("output", "write")):
                if b not in self.src[role]:
                    continue
                lane = port_rate(arch, self.mems[self.src[role][b]], role, direction, self.clock, self.mems[b].name)
                self.port[b, role, direction] = lane
                if lane not in self.lane_order:
                    self.lane_order.append(lane)
        self.mac_energy = view.macs * self.unit.op_cost("mac")[1]
        self._classes()
        if compute_cache is not None:  # the compute part depends on the innermost tile only: share it
            self.cp_done, self.cp = compute_cache.cp_done, compute_cache.cp
        else:
            n_tiles = prod(len(d) for d in self.divs)
            self.cp_done = np.zeros(n_tiles, dtype=bool)
            self.cp = np.zeros((3, n_tiles), dtype=np.float64)  # compute cycles, array read bytes, write bytes

    def _classes(self) -> None:
        """Per active-rank mask: the order classes (irrelevant-before-innermost-relevant sets per
        role, as rank bitmasks) and the index in level_orders of each class's first order."""
        live = sum(1 << i for i, e in enumerate(self.extents) if e > 1)
        table: dict[int, dict] = {}
        for mask in range(1 << self.R):
            if mask & ~live:
                continue
            active = [i for i in range(self.R) if mask >> i & 1]
            first: dict = {}
            for n, perm in enumerate(permutations(active)):
                sig = []
                for role in ROLES:
                    rel = self.rel_mask[role]
                    last = max((p for p, i in enumerate(perm) if rel >> i & 1), default=-1)
                    sig.append(sum(1 << i for i in perm[: last + 1] if not rel >> i & 1))
                first.setdefault(tuple(sig), n)
            table[mask] = first
        self.C = max(len(f) for f in table.values())
        self.sig = np.zeros((1 << self.R, self.C, 3), dtype=np.int64)
        self.first = np.zeros((1 << self.R, self.C), dtype=np.int64)
        self.ncls = np.zeros(1 << self.R, dtype=np.int64)
        for mask, first in table.items():
            for c, (sig, n) in enumerate(first.items()):
                self.sig[mask, c], self.first[mask, c] = sig, n
            self.ncls[mask] = len(first)

    def orders_per_tiling(self, masks: np.ndarray) -> np.ndarray:
        """[T] how many mappings (loop-order combinations) each tiling has: ∏ over levels (active ranks)!."""
        active = ((masks[..., None] >> np.arange(self.R)) & 1).sum(-1)
        return np.array([factorial(i) for i in range(self.R + 1)], dtype=np.int64)[active].prod(axis=0)

    def tiles_of(self, flat: np.ndarray) -> np.ndarray:
        """[L, T, R] tiles of tilings numbered ``flat`` (level 0 holds the extents)."""
        which = np.unravel_index(flat, self.shape)
        out = np.empty((self.L, len(flat), self.R), dtype=np.int64)
        out[0] = self.extents
        for r, (chain, w) in enumerate(zip(self.chains, which)):
            out[1:, :, r] = chain[w].T
        return out

    def fitting(self, start: int, stop: int) -> np.ndarray:
        """Numbers in [start, stop) of the tilings that fit every on-chip memory (check_capacity)."""
        flat = np.arange(start, stop, dtype=np.int64)
        tiles = self.tiles_of(flat)
        ok = np.ones(len(flat), dtype=bool)
        for j in range(1, self.L):
            mem = self.mems[j]
            copies = 2 if mem.double_buffered else 1
            need = {role: copies * (np.prod(tiles[j][:, self.idx[role]], axis=1) * self.view.elem_bytes[role])
                    for role in self.view.tensors if role not in self.skips[j - 1]}
            if not need:
                continue
            if mem.partitions:
                for role, cap in mem.partitions.items():
                    if role in need:
                        ok &= ~(need[role] > cap)
            elif mem.capacity is not None:
                ok &= ~(pysum(list(need.values())) > mem.capacity)
        return flat[ok]

    def _compute_terms(self, inner: np.ndarray) -> np.ndarray:
        """[3, T] compute cycles and array-side bytes of innermost tiles ``inner`` [T, R]
        (compute_part_arrays, memoised per distinct tile)."""
        pos = tuple(np.searchsorted(d, inner[:, r]) for r, d in enumerate(self.divs))
        key = np.ravel_multi_index(pos, tuple(len(d) for d in self.divs))
        todo = np.unique(key[~self.cp_done[key]])
        if len(todo):
            tiles = np.stack([d[i] for d, i in zip(self.divs, np.unravel_index(todo, tuple(len(d) for d in self.divs)))],
                             axis=1)
            compute, words = compute_part_arrays(self.view, self.unit, self.mems[-1], self.extents, tiles, self.clock)
            eb = self.view.elem_bytes
            self.cp[0, todo] = compute
            self.cp[1, todo] = pysum([words[role, "read"] * eb[role] for role in ROLES])
            self.cp[2, todo] = words["output", "write"] * eb["output"]
            self.cp_done[todo] = True
        return self.cp[:, key]

    def tilings(self, flat: np.ndarray) -> _Tilings:
        """The per-tiling terms of the (valid) tilings numbered ``flat``."""
        L, eb = self.L, self.view.elem_bytes
        tiles = self.tiles_of(flat)
        trips = -(-tiles[:-1] // tiles[1:])
        masks = ((trips > 1) * (1 << np.arange(self.R))).sum(-1)
        first_load = np.zeros(len(flat), dtype=np.int64)
        last_store = np.zeros(len(flat), dtype=np.int64)
        sub = {lane: 0 for lane in self.lane_order}
        for b in range(1, L):
            per_port: dict = {}
            for role in ("input", "weight"):
                if b not in self.src[role]:
                    continue
                nbytes = np.prod(tiles[b][:, self.idx[role]], axis=1) * eb[role]
                lane = self.port[b, role, "read"]
                per_port[lane[0]] = per_port.get(lane[0], 0) + transfer_cycles(nbytes, lane[1])
                sub[lane] = sub[lane] + nbytes
            first_load += reduce(np.maximum, per_port.values(), 0)
        last = tiles[0] - (trips[0] - 1) * tiles[1]  # cost.last_tile_size at level 1 (partial only if padded)
        for b in sorted(self.src["output"], reverse=True):
            nbytes = np.prod((last if b == 1 else tiles[b])[:, self.idx["output"]], axis=1) * eb["output"]
            lane = self.port[b, "output", "write"]
            last_store += transfer_cycles(nbytes, lane[1])
            sub[lane] = sub[lane] + nbytes
        compute, array_rd, array_wr = self._compute_terms(tiles[-1])
        has, irr, pre, valid = [], [], [], []
        bits = 1 << np.arange(self.R)
        for j in range(L - 1):
            has.append({role: (masks[j] & self.rel_mask[role]) != 0 for role in ROLES})
            irr.append({role: np.prod(trips[j][:, self.irr_idx[role]], axis=1) for role in ROLES})
            sig = self.sig[masks[j]]  # [T, C, 3]
            pre.append({role: np.where(sig[:, :, k, None] & bits != 0, trips[j][:, None, :], 1).prod(-1)
                        for k, role in enumerate(ROLES)})
            valid.append(np.arange(self.C) < self.ncls[masks[j]][:, None])
        return _Tilings(flat, tiles, trips, masks, first_load, last_store, sub, compute.astype(np.int64),
                        array_rd, array_wr, has, irr, pre, valid)

    def score(self, t: _Tilings, pre: list) -> tuple[np.ndarray, np.ndarray]:
        """(latency, energy) of the tilings with loop classes given by ``pre`` (per level, role ->
        array broadcastable to [T, ...]): evaluate's formulas, operation for operation."""
        L, mems = self.L, self.mems
        nd = max(np.ndim(p) for lv in pre for p in lv.values())
        reps = {}
        for role in ROLES:  # cost.boundary_reps: the deepest level with a relevant loop decides
            rep, q = 1, 1
            for b in range(1, L):
                rep = np.where(_ax(t.has[b - 1][role], nd), q * pre[b - 1][role], rep)
                reps[b, role] = rep
                q = q * _ax(t.irr[b - 1][role], nd)
        port = dict.fromkeys(self.lane_order, 0)
        reads, writes, crossing = [0] * L, [0] * L, {}  # crossing: (a, b) -> bytes between levels a and b
        for b in range(1, L):
            moved = {("input", "read"): reps[b, "input"] * self.full["input"],
                     ("weight", "read"): reps[b, "weight"] * self.full["weight"],
                     ("output", "read"): (reps[b, "output"] - 1) * self.full["output"],
                     ("output", "write"): reps[b, "output"] * self.full["output"]}
            for (role, direction), nbytes in moved.items():
                if b not in self.src[role]:
                    continue
                a = self.src[role][b]
                lane = self.port[b, role, direction]
                port[lane] = port[lane] + nbytes
                outer, inner = (a, b) if direction == "read" else (b, a)
                reads[outer] = reads[outer] + nbytes
                writes[inner] = writes[inner] + nbytes
                crossing[a, b] = crossing.get((a, b), 0) + nbytes
        reads[-1] = reads[-1] + _ax(t.array_rd, nd)
        writes[-1] = writes[-1] + _ax(t.array_wr, nd)
        per_port: dict = {}  # cost.port_cycles: each lane's bytes at its rate, summed per port
        for lane in self.lane_order:
            key, rate = lane
            v = port[lane] - _ax(t.sub[lane], nd)
            per_port[key] = per_port.get(key, 0) + (0.0 if math.isinf(rate) else np.maximum(v, 0.0) / rate)
        rest = list(per_port.values())
        compute = _ax(t.compute, nd).astype(np.float64)
        middle = reduce(np.maximum, rest, compute) if mems[-1].double_buffered else compute + pysum(rest)
        latency = _ax(t.first_load, nd) + np.ceil(middle - 1e-9).astype(np.int64) + _ax(t.last_store, nd)
        terms = []
        for m, rd, wr in zip(mems, reads, writes):
            word_bytes = m.word_bits / 8
            terms += [rd / word_bytes * m.read_pj_per_word, wr / word_bytes * m.write_pj_per_word]
        names = [m.name for m in mems]
        for link in self.arch.links:
            moved = crossing.get(tuple(sorted((names.index(link.src), names.index(link.dst)))), 0.0)
            terms.append(moved * (8 * link.energy.pj if link.energy.per_bit else link.energy.pj))
        terms.append(self.mac_energy)
        return latency, pysum(terms)

    def bounds(self, t: _Tilings) -> tuple[np.ndarray, np.ndarray]:
        """Per tiling, (latency, energy) lower bounds over all its loop orders: every level's
        factor at its minimum over the classes (evaluate is monotone in the reuse factors)."""
        pre = [{role: np.where(t.valid[j], p, _BIG).min(axis=1) for role, p in lv.items()} for j, lv in enumerate(t.pre)]
        return self.score(t, pre)

    def expand(self, t: _Tilings) -> tuple[np.ndarray, np.ndarray]:
        """(latency, energy) [T, C^(L-1)] of every tiling × class combination (C order over
        levels); combinations of classes a tiling lacks get _BIG / inf."""
        L, C = self.L, self.C
        shape = lambda j: (len(t.flat),) + (1,) * j + (C,) + (1,) * (L - 2 - j)  # noqa: E731
        pre = [{role: p.reshape(shape(j)) for role, p in lv.items()} for j, lv in enumerate(t.pre)]
        latency, energy = self.score(t, pre)
        valid = reduce(np.logical_and, [v.reshape(shape(j)) for j, v in enumerate(t.valid)])
        full = (len(t.flat),) + (C,) * (L - 1)
        latency = np.where(valid, np.broadcast_to(latency, full), _BIG).reshape(len(t.flat), -1)
        energy = np.where(valid, np.broadcast_to(energy, full), np.inf).reshape(len(t.flat), -1)
        return latency, energy

    def mapping(self, flat: int, combo: int):
        """The Mapping of tiling ``flat`` with class combination ``combo`` (the first order of each class)."""
        tiles = self.tiles_of(np.array([flat]))[:, 0]
        digits = np.unravel_index(combo, (self.C,) * (self.L - 1))
        orders = []
        for j in range(self.L - 1):
            trips = {r: int(-(-tiles[j][i] // tiles[j + 1][i])) for i, r in enumerate(self.ranks)}
            mask = sum(1 << i for i, r in enumerate(self.ranks) if trips[r] > 1)
            orders.append(level_orders(self.view, trips)[self.first[mask, digits[j]]])
        levels = [{r: int(tiles[j][i]) for i, r in enumerate(self.ranks)} for j in range(1, self.L)]
        return build_mapping(self.view, self.arch, levels, orders, self.unit.name, list(self.skips))


def _values(objective: str, latency: np.ndarray, energy: np.ndarray) -> tuple:
    """The objective's value arrays, most significant first (lex has two)."""
    if objective == "latency":
        return (latency,)
    if objective == "energy":
        return (energy,)
    if objective == "edp":
        return (energy * latency,)
    return (latency, energy)


def _batch_best(objective: str, t: _Tilings, latency: np.ndarray, energy: np.ndarray, ncombo: int):
    """(value tuple, (tiling number, combination)) of the batch's best, first in space order among equals."""
    keep = np.ones(latency.shape, dtype=bool)
    best = []
    for v in _values(objective, latency, energy):
        vmin = np.where(keep, v, np.inf if v.dtype.kind == "f" else _BIG).min()
        keep &= v == vmin
        best.append(vmin.item())
    rows, cols = np.nonzero(keep)
    order = t.flat[rows] * ncombo + cols
    k = int(np.argmin(order))
    return tuple(best), (int(t.flat[rows[k]]), int(cols[k]))


def _beyond(bound: tuple, best: tuple) -> bool:
    """Whether a lower bound is above the best value (with 1e-12 slack on floats)."""
    for b, v in zip(bound, best):
        slack = abs(v) * 1e-12 if isinstance(v, float) else 0
        if b > v + slack:
            return True
        if b < v:
            return False
    return False


def brute_vec_all(view: MatmulView, arch, objectives=OBJECTIVES, unit_name: str | None = None,
                  prune: bool = True, padded: bool = False, bypass: bool = False,
                  deadline: float | None = None) -> dict[str, MapResult]:
    """The optimum for every objective in ``objectives`` ("latency", "energy", "edp", "lex") over
    the whole mapspace (``padded``: with imperfect tiles; ``bypass``: with middle levels skipping
    operands); see the module docstring. ``evaluated`` is the space's mapping count. Past
    ``deadline`` (a time.perf_counter() value) it stops between batches with OutOfTime."""
    for obj in objectives:
        if obj not in OBJECTIVES:
            raise ValueError(f"unknown objective '{obj}' (expected one of {', '.join(OBJECTIVES)})")
    start = time.perf_counter()
    if len(arch.memories) < 2:  # one mapping only
        return brute_all(view, arch, objectives)
    best: dict = {}  # objective -> (value, Mapping), the first combination of bypass sets wins ties
    n, first = 0, None
    for skips in product(*bypass_options(arch, bypass)):
        sp = _Space(view, arch, unit_name, padded, skips, compute_cache=first)
        first = first or sp
        found, count = _best_of_space(sp, objectives, prune, {obj: v for obj, (v, _) in best.items()}, deadline)
        n += count
        for obj, (value, mapping) in found.items():
            if obj not in best or value < best[obj][0]:
                best[obj] = (value, mapping)
    if not n:
        raise no_fit_error(view, arch)
    out = {}
    for obj, (value, mapping) in best.items():
        cost = evaluate(view, mapping, arch)
        got = objective_of(cost, obj)
        if (got if obj == "lex" else (got,)) != value:
            raise AssertionError(f"brute_vec: vectorized {obj} {value} != evaluate's {got} for\n{mapping.describe(view)}")
        out[obj] = MapResult(mapping, cost, got, "OPTIMAL", got, n, 0.0)
    secs = time.perf_counter() - start
    return {obj: MapResult(r.mapping, r.cost, r.objective_value, r.status, r.bound, r.evaluated, secs)
            for obj, r in out.items()}


def _best_of_space(sp: _Space, objectives, prune: bool, cut: dict, deadline: float | None = None) -> tuple[dict, int]:
    """Per objective, (best value tuple, its Mapping) over the tilings of ``sp`` that fit, and how
    many mappings they hold ({} and 0 when none fits). With ``prune``, tilings bounded above
    ``cut[objective]`` (the best of another bypass combination) are skipped, and an objective
    nothing here can match is left out. Past ``deadline``: OutOfTime."""

    def check_clock() -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime

    ncombo = sp.C ** (sp.L - 1)
    per_batch = max(1, ENTRIES // ncombo)
    flats, lat_lb, e_lb = [], [], []
    n = 0
    total = prod(sp.shape)
    for s in range(0, total, CHUNK):
        for f in np.array_split(sp.fitting(s, min(total, s + CHUNK)), max(1, -(-CHUNK // per_batch))):
            check_clock()
            if not len(f):
                continue
            t = sp.tilings(f)
            n += int(sp.orders_per_tiling(t.masks).sum())
            flats.append(f)
            if prune:
                lat, en = sp.bounds(t)
                lat_lb.append(lat)
                e_lb.append(en)
    if not flats:
        return {}, 0
    flat = np.concatenate(flats)
    out = {}
    for obj in objectives:
        if prune:
            lb = _values(obj, np.concatenate(lat_lb), np.concatenate(e_lb))
            order = np.lexsort(lb[::-1])
        else:
            order = np.arange(len(flat))
        best, where = None, None
        i, size = 0, min(per_batch, 64) if prune else per_batch
        while i < len(order):
            idx = order[i: i + size]
            bound = min((v for v in (best, cut.get(obj)) if v is not None), default=None)
            if prune and bound is not None and _beyond(tuple(v[idx[0]].item() for v in lb), bound):
                break
            check_clock()
            t = sp.tilings(flat[idx])
            value, at = _batch_best(obj, t, *sp.expand(t), ncombo)
            if best is None or value < best or (value == best and at < where):
                best, where = value, at
            i, size = i + size, min(per_batch, size * 2)
        if best is not None:
            out[obj] = (best, sp.mapping(*where))
    return out, n


def brute_vec_mapping(view: MatmulView, arch, objective: str = "edp", unit_name: str | None = None,
                      padded: bool = False, bypass: bool = False, deadline: float | None = None) -> MapResult:
    """The optimum for one objective (see brute_vec_all)."""
    return brute_vec_all(view, arch, (objective,), unit_name, padded=padded, bypass=bypass, deadline=deadline)[objective]
