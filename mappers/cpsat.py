"""The optimal per-Einsum mapper: an exact integer CP-SAT model of mappers.cost.evaluate.

It searches the space of mappers.space (perfect divisor tiles, one loop order per outer level;
optionally padded tiles or bypass at middle levels) and encodes the cost model term by term, so
its optimum is the brute-force oracle's:

- tiles: one divisor-domain variable per (level, rank); trips link them (t_j = trip_j · t_{j+1});
- every term that depends on one level's tile only (compute cycles with the fold closed form and
  port stalls, array-side bytes and energy, the first tile's loads, the last write-back, the
  bytes those two take from the ports) is a precomputed TABLE bound by AddAllowedAssignments;
- loop orders are rank positions per level; the reuse rule is reified booleans → per-boundary
  rep multipliers → bytes per tensor per boundary (integers);
- latency = first_load + max(compute, ⌈rest_p / rate_p⌉ …) + last_store (or compute + ⌈Σ rest_p / rate_p⌉
  single-buffered), rest_p = the boundary bytes on port p less the first loads and last store
  (array-side traffic is inside compute, as in evaluate); the ceilings are exact integer
  inequalities with rate_p = num/den (the rate's decimal value);
- energy in integer units of 1/Q pJ (Q = common denominator of the pJ-per-byte values);
- padded (two levels): tile domains are space.tile_candidates and trip = ⌈extent / tile⌉ is a
  table column rather than a product constraint;
- bypass: a boolean per (middle level, role) says the level keeps the role; the tables of a level
  and of the levels inside it carry those booleans as columns (capacity, and which level a first
  load or last write-back crosses from); a boundary term (a → b) counts when a and b keep the role
  and no level between them does;
- EDP = energy × latency in one solve, its domains cut by bounds from the tables and by a quick
  search's mapping.

Two-level spaces too large for the tables (padded BERT-sized GEMMs: 10^5 rows, minutes for
CP-SAT to load) hold one tile level and one loop order; they are enumerated exactly instead
(mappers.brute_vec, seconds), under the same time limit.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations, product
from math import prod

from mappers.cost import evaluate, last_tile_size, port_rate, transfer_cycles
from mappers.errors import MappingError, OutOfTime
from arch.schema import ROLES
from mappers.space import (BYPASS_SETS, MapResult, build_mapping, canonical_order, check_padded, fits, no_fit_error,
                           objective_of, tile_candidates)
from mappers.view import MatmulView

INT_LIMIT = 2**62  # keep every variable's bound below this (int64 safety)
KILLABLE_ROWS = 20_000  # tables this large can take CP-SAT minutes to load, past its own time limit
ENUMERATE_ROWS = 20_000  # two-level spaces with more table rows are enumerated (brute_vec) instead


def table_rows(view: MatmulView, arch, padded: bool = False, bypass: bool = False) -> int:
    """How many rows the per-level tables enumerate before the capacity check: per level the
    product of every rank's tile candidates, times 8 per middle level at or above it with ``bypass``."""
    depth = len(arch.memories)
    tiles = prod(len(tile_candidates(n, padded)) for n in view.sizes.values())
    return sum(tiles * len(BYPASS_SETS) ** (min(lv, depth - 2) if bypass else 0) for lv in range(1, depth))


def _exact(x: float) -> Fraction:
    """A float as the rational it stands for: the decimal it prints as (16.0 → 16, 12.8 → 64/5),
    or, when that needs a huge denominator because the float is a ratio (450 GB/s ÷ 940 MHz =
    478.7234…), the nearest fraction with a small one (22500/47), which keeps CP-SAT in int64."""
    printed = Fraction(repr(float(x)))
    if printed.denominator <= 10**6:
        return printed
    return Fraction(float(x)).limit_denominator(10**6)


def _check_int64(view: MatmulView, what: str, bound: int) -> None:
    """CP-SAT variables are int64: a bound past INT_LIMIT gets one clear line, not a TypeError."""
    if bound >= INT_LIMIT:
        raise MappingError(f"cpsat mapper: '{view.einsum}' is too large for int64 bounds ({what} ≤ {bound})")


def _as_int(x: float, what: str) -> int:
    if x != int(x):
        raise MappingError(f"cpsat mapper: {what} = {x} bytes is not integral")
    return int(x)


@dataclass
class _Table:
    """One level's allowed tiles and the per-tile terms attached to them."""

    level: int
    rows: list[tuple[int, ...]] = field(default_factory=list)  # tile values in view rank order
    feats: dict[str, list[int]] = field(default_factory=dict)  # feature name -> value per row


class _Problem:
    """Everything solver-independent: tables, port rates, energy coefficients."""

    def __init__(self, view: MatmulView, arch, unit_name: str | None = None, padded: bool = False,
                 bypass: bool = False, deadline: float | None = None) -> None:
        self.view, self.arch = view, arch
        self.deadline = deadline  # time.perf_counter() past which building the tables gives up (OutOfTime)
        self.unit = arch.unit(unit_name)
        self.clock = arch.clock_hz(self.unit)
        self.mems = arch.memories
        self.L = len(self.mems)
        self.ranks = view.ranks
        check_padded(arch, padded, "cpsat mapper")
        self.padded = padded
        self.middle = list(range(1, self.L - 1)) if bypass else []  # levels that may bypass roles
        self.divs = {r: tile_candidates(view.sizes[r], padded) for r in self.ranks}
        self.trips = {r: sorted({-(-view.sizes[r] // t) for t in self.divs[r]}) for r in self.ranks}
        self.lanes: set = set()  # (port key, Fraction bytes/cycle or None when unbounded) in use
        mems = self.mems
        # Energy per byte, exact.
        coef: dict[str, Fraction] = {}
        for m in mems:
            coef[f"{m.name}.read"] = _exact(m.read_pj_per_word) / Fraction(m.word_bits, 8)
            coef[f"{m.name}.write"] = _exact(m.write_pj_per_word) / Fraction(m.word_bits, 8)
        # Level pairs (a, b) a role's tiles may cross: adjacent ones, any a < b with bypass.
        self.pairs = [(a, b) for b in range(1, self.L) for a in range(b) if a == b - 1 or self.middle]
        self.link_e: dict[tuple[int, int], Fraction] = {}
        for a, b in self.pairs:
            link = arch.link_between(mems[a].name, mems[b].name)
            self.link_e[a, b] = Fraction(0) if link is None else \
                (8 * _exact(link.energy.pj) if link.energy.per_bit else _exact(link.energy.pj))
        mac = _exact(self.unit.op_cost("mac")[1])
        self.Q = math.lcm(*(c.denominator for c in list(coef.values()) + list(self.link_e.values()) + [mac]))
        self.coef = coef
        self.full = {role: _as_int(prod(view.sizes[r] for r in view.ranks_of(role)) * view.elem_bytes[role], role)
                     for role in ("input", "weight", "output")}
        # Boundary terms: (a, b, role, kind, lane, energy per byte as Fraction), counted when
        # the role's tiles cross from level a to level b (always, without bypass); kind: "rd"
        # R·|T|, "rd-1" ·|T|, "wr" R·|T|, R the reps of boundary b.
        self.terms = []
        for a, b in self.pairs:
            outer, inner = mems[a], mems[b]
            le = self.link_e[a, b]
            for role in ("input", "weight"):
                lane = self._lane(outer, role, "read", inner.name)
                self.terms.append((a, b, role, "rd", lane, coef[f"{outer.name}.read"] + coef[f"{inner.name}.write"] + le))
            lane = self._lane(outer, "output", "read", inner.name)
            self.terms.append((a, b, "output", "rd-1", lane, coef[f"{outer.name}.read"] + coef[f"{inner.name}.write"] + le))
            lane = self._lane(outer, "output", "write", inner.name)
            self.terms.append((a, b, "output", "wr", lane, coef[f"{outer.name}.write"] + coef[f"{inner.name}.read"] + le))
        self.const_energy = view.macs * mac
        self.tables = [self._table(lv) for lv in range(1, self.L)]
        if any(not t.rows for t in self.tables):
            raise no_fit_error(view, arch)

    def latency_floor(self) -> int:
        """A lower bound on latency: each level's least first load + last store, the innermost
        level's taken together with its compute (the same row), as the latency formula adds them."""
        total = 0
        for tab in self.tables:
            cols = [tab.feats["fl"], tab.feats["ls"]] + ([tab.feats["compute"]] if tab.level == self.L - 1 else [])
            total += min(map(sum, zip(*cols)))
        return max(1, total)

    def energy_floor(self) -> int:
        """A lower bound on energy (1/Q pJ): MACs, the least array-side energy, and every boundary
        term at its compulsory count (each tensor moved once, no partial-sum re-reads)."""
        e = self.const_energy * self.Q + min(self.tables[-1].feats["arrE"])
        per_pair: Counter = Counter()
        for a, b, role, kind, _, coef in self.terms:
            if kind != "rd-1":
                per_pair[role, a, b] += self.full[role] * coef * self.Q
        for role in ("input", "weight", "output"):  # the cheapest path of kept levels from 0 to L-1
            paths = [[0, *kept, self.L - 1] for n in range(len(self.middle) + 1) for kept in combinations(self.middle, n)]
            e += min(sum(per_pair[role, a, b] for a, b in zip(path, path[1:])) for path in paths)
        return max(1, math.floor(e))

    def _lane(self, memory, role: str, direction: str, peer: str | None) -> tuple:
        """The lane of a transfer: (port key, exact rate). A port serving peers behind links of
        different speeds has one lane per speed, and its busy time sums them, as in evaluate."""
        key, rate = port_rate(self.arch, memory, role, direction, self.clock, peer)
        lane = (key, None if math.isinf(rate) else _exact(rate))
        self.lanes.add(lane)
        return lane

    def _compute_columns(self, inner) -> tuple:
        """Per candidate tile of the innermost level, in product order: compute cycles (cost's
        compute part, on arrays) and the array-side energy in 1/Q pJ (exact integers: every
        energy per byte times Q is one)."""
        import numpy as np

        from mappers.brute_vec import compute_part_arrays

        view = self.view
        tiles = np.array(list(product(*(self.divs[r] for r in self.ranks))), dtype=np.int64).reshape(-1, len(self.ranks))
        extents = np.array([view.sizes[r] for r in self.ranks], dtype=np.int64)
        compute, words = compute_part_arrays(view, self.unit, inner, extents, tiles, self.clock)
        energy = [0] * len(tiles)
        for (role, direction), w in words.items():
            nbytes = w * view.elem_bytes[role]
            if not np.all(nbytes == np.floor(nbytes)):
                raise MappingError(f"cpsat mapper: array traffic of {role} is not a whole number of bytes")
            per_byte = self.coef[f"{inner.name}.{direction}"] * self.Q
            assert per_byte.denominator == 1
            energy = [e + int(b) * int(per_byte) for e, b in zip(energy, nbytes.tolist())]
        return compute, energy

    def _table(self, lv: int) -> _Table:
        """Fitting tiles of level ``lv`` with their first-load, last-store (and compute) terms;
        with bypass, one row per tile and bypass sets of the middle levels down to ``lv`` (they
        decide what fits and which level each first load and last write-back crosses from)."""
        view, mems = self.view, self.mems
        inner = mems[lv]
        ctx = [j for j in self.middle if j <= lv]
        # The ports a level-lv tile's first load and last store use, per source level a.
        ports = {}
        for a in (a for a, b in self.pairs if b == lv):
            for role, direction in (("input", "read"), ("weight", "read"), ("output", "write")):
                lane = self._lane(mems[a], role, direction, inner.name)
                ports[a, role] = (lane, port_rate(self.arch, mems[a], role, direction, self.clock, inner.name)[1])
        innermost = lv == self.L - 1
        if innermost:  # per candidate tile (in product order): compute cycles and array energy
            compute, array_energy = self._compute_columns(inner)
        per_tile = prod(len(BYPASS_SETS) for _ in ctx)  # rows of one tile: one per bypass-set combination
        tab = _Table(lv)
        rows_feats: list[dict] = []
        for i, (combo, skips) in enumerate(product(product(*(self.divs[r] for r in self.ranks)),
                                                   product(*(BYPASS_SETS for _ in ctx)))):
            if self.deadline is not None and i % 4096 == 0 and time.perf_counter() > self.deadline:
                raise OutOfTime
            tile = dict(zip(self.ranks, combo))
            by = dict(zip(ctx, skips))
            if not fits(view, inner, tile, by.get(lv, ())):
                continue
            f: Counter = Counter()
            for j, skip in by.items():
                for role in ROLES:
                    f[("keep", j, role)] = int(role not in skip)

            def source(role: str) -> int:
                """The level the role's tiles cross from into level lv: the nearest one keeping it."""
                return max(j for j in range(lv) if role not in by.get(j, ()))

            per_port: Counter = Counter()
            for role in ("input", "weight"):
                if role in by.get(lv, ()):
                    continue
                nbytes = view.tile_bytes(role, tile)
                lane, rate = ports[source(role), role]
                per_port[lane[0]] += transfer_cycles(nbytes, rate)
                f[("sub", lane)] += _as_int(nbytes, f"{role} tile")
            f["fl"] = max(per_port.values(), default=0)
            f["ls"] = 0
            if "output" not in by.get(lv, ()):
                # the last write-back is of the last (possibly partial) output tile
                nbytes = view.tile_bytes("output", {r: last_tile_size(view.sizes[r], [tile[r]]) for r in self.ranks})
                lane, rate = ports[source("output"), "output"]
                f["ls"] = transfer_cycles(nbytes, rate)
                f[("sub", lane)] += _as_int(nbytes, "output tile")
            if self.padded:  # trips are ceil(extent / tile): a table column, not a product
                for r in self.ranks:
                    f[("trip", r)] = -(-view.sizes[r] // tile[r])
            if innermost:
                f["compute"], f["arrE"] = int(compute[i // per_tile]), array_energy[i // per_tile]
            tab.rows.append(combo)
            rows_feats.append(f)
        names = sorted({k for f in rows_feats for k in f}, key=str)
        tab.feats = {n: [f.get(n, 0) for f in rows_feats] for n in names}
        return tab


@dataclass
class _Built:
    """One CP-SAT model with handles on the variables the mapper reads back."""

    model: object
    tile: dict  # (level, rank) -> var
    trip: dict  # (level, rank) -> var
    pos: dict  # (level, rank) -> var
    latency: object
    energy: object
    edp: object | None = None
    shift: int = 0
    ubs: dict = field(default_factory=dict)
    keep: dict = field(default_factory=dict)  # (middle level, role) -> bool var: the level holds the role
    rows: int = 0  # table rows in the model (how heavy it is to load)

    @property
    def decisions(self) -> list:
        """The variables a solution is read back from (and hinted by)."""
        return list(self.tile.values()) + list(self.pos.values()) + list(self.keep.values())


def _build(p: _Problem, with_edp: bool, caps: tuple[int, int] | None = None) -> _Built:
    """The CP-SAT model of evaluate over the space (no objective set); ``caps`` = (energy, latency)
    upper bounds from an incumbent, which shrink the domains (and the EDP product's range)."""
    from ortools.sat.python import cp_model

    view, L, ranks = p.view, p.L, p.ranks
    m = cp_model.CpModel()
    tile, trip, g, pos = {}, {}, {}, {}
    keep = {(j, role): m.NewBoolVar(f"keep{j}_{role}") for j in p.middle for role in ROLES}
    for lv in range(1, L):
        for r in ranks:
            tile[lv, r] = m.NewIntVarFromDomain(cp_model.Domain.FromValues(p.divs[r]), f"t{lv}_{r}")
    for j in range(L - 1):
        for r in ranks:
            trip[j, r] = m.NewIntVarFromDomain(cp_model.Domain.FromValues(p.trips[r]), f"trip{j}_{r}")
            if not p.padded:  # else the table ties trip0 = ceil(extent / tile) (two levels only)
                outer = view.sizes[r] if j == 0 else tile[j, r]
                m.AddMultiplicationEquality(outer, [trip[j, r], tile[j + 1, r]])
            g[j, r] = m.NewBoolVar(f"g{j}_{r}")
            m.Add(trip[j, r] >= 2).OnlyEnforceIf(g[j, r])
            m.Add(trip[j, r] <= 1).OnlyEnforceIf(g[j, r].Not())
            pos[j, r] = m.NewIntVar(0, len(ranks) - 1, f"pos{j}_{r}")
        if len(ranks) > 1:
            m.AddAllDifferent([pos[j, r] for r in ranks])
        # Canonical orders only (as mappers.space counts them): active loops first, then the
        # ranks with trip 1 in view order. Without this every inactive rank's position is free,
        # and the solver wades through equivalent orders.
        for a, r in enumerate(ranks):
            for r2 in ranks[a + 1:]:
                m.Add(pos[j, r] < pos[j, r2]).OnlyEnforceIf([g[j, r], g[j, r2].Not()])
                m.Add(pos[j, r2] < pos[j, r]).OnlyEnforceIf([g[j, r].Not(), g[j, r2]])
                m.Add(pos[j, r] < pos[j, r2]).OnlyEnforceIf([g[j, r].Not(), g[j, r2].Not()])
    # Tables: per-tile terms.
    feat: dict = {}
    feat_ub: dict = {}
    for tab in p.tables:
        lv = tab.level
        vars_ = [tile[lv, r] for r in ranks]
        cols = []
        for name, values in tab.feats.items():
            if isinstance(name, tuple) and name[0] == "trip":  # padded: the row fixes the trip
                v = trip[lv - 1, name[1]]
            elif isinstance(name, tuple) and name[0] == "keep":  # bypass: the row fixes what is kept
                v = keep[name[1], name[2]]
            else:
                v = m.NewIntVar(min(values), max(values), f"{name}@{lv}")
            feat[lv, name] = v
            feat_ub[lv, name] = max(values)
            vars_.append(v)
            cols.append(values)
        m.AddAllowedAssignments(vars_, [tuple(row) + tuple(c[i] for c in cols) for i, row in enumerate(tab.rows)])
    # Reuse rule → reps per (boundary, role).
    before: dict = {}

    def is_before(j: int, u: str, r: str):
        if (j, u, r) not in before:
            b = m.NewBoolVar(f"before{j}_{u}_{r}")
            m.Add(pos[j, u] < pos[j, r]).OnlyEnforceIf(b)
            m.Add(pos[j, u] > pos[j, r]).OnlyEnforceIf(b.Not())
            before[j, u, r] = b
            before[j, r, u] = b.Not()
        return before[j, u, r]

    reps, reps_ub = {}, {}
    for b in range(1, L):
        for role in ("input", "weight", "output"):
            rel = view.ranks_of(role)
            irr = [u for u in ranks if u not in rel]
            factors = []
            for j in range(b):
                for u in irr:
                    lits = []
                    for r in rel:
                        a = m.NewBoolVar("")
                        bf = is_before(j, u, r)
                        m.AddBoolOr([bf.Not(), g[j, r].Not(), a])
                        m.AddImplication(a, bf)
                        m.AddImplication(a, g[j, r])
                        lits.append(a)
                    lits += [g[jj, r] for jj in range(j + 1, b) for r in rel]
                    z = m.NewBoolVar(f"z{b}_{role}_{j}_{u}")
                    if lits:
                        m.AddBoolOr(lits).OnlyEnforceIf(z)
                        for lit in lits:
                            m.AddImplication(lit, z)
                    else:
                        m.Add(z == 0)
                    rf = m.NewIntVarFromDomain(cp_model.Domain.FromValues(p.trips[u]), f"rf{b}_{role}_{j}_{u}")
                    m.Add(rf == trip[j, u]).OnlyEnforceIf(z)
                    m.Add(rf == 1).OnlyEnforceIf(z.Not())
                    factors.append(rf)
            ub = prod(view.sizes[u] for u in irr)
            rv = m.NewIntVar(1, ub, f"reps{b}_{role}")
            if factors:
                m.AddMultiplicationEquality(rv, factors)
            else:
                m.Add(rv == 1)
            reps[b, role], reps_ub[b, role] = rv, ub
    # Port bytes and energy.
    rest: dict = {lane: [] for lane in p.lanes}  # bytes still to move per lane after the first loads
    rest_ub: Counter = Counter()
    energy_terms, energy_ub = [], int(p.const_energy * p.Q)
    crosses: dict = {}

    def crossing(a: int, b: int, role: str):
        """1 when the role's tiles cross from level a to b: both keep it, none between does."""
        if (a, b, role) not in crosses:
            lits = [keep[j, role] for j in (a, b) if (j, role) in keep]
            lits += [keep[j, role].Not() for j in range(a + 1, b)]
            if not lits:
                crosses[a, b, role] = 1
            else:
                x = m.NewBoolVar(f"cross{a}_{b}_{role}")
                m.AddBoolAnd(lits).OnlyEnforceIf(x)
                m.AddBoolOr([lit.Not() for lit in lits]).OnlyEnforceIf(x.Not())
                crosses[a, b, role] = x
        return crosses[a, b, role]

    moved: dict = {}  # (a, b, role) -> reps of boundary b when the role crosses a → b, else 0
    for a, b, role, kind, lane, e in p.terms:
        full = p.full[role]
        x = crossing(a, b, role)
        if (a, b, role) not in moved:
            if isinstance(x, int):
                moved[a, b, role] = reps[b, role]
            else:
                y = m.NewIntVar(0, reps_ub[b, role], f"moved{a}_{b}_{role}")
                m.Add(y == reps[b, role]).OnlyEnforceIf(x)
                m.Add(y == 0).OnlyEnforceIf(x.Not())
                moved[a, b, role] = y
        expr = moved[a, b, role] * full - (full * x if kind == "rd-1" else 0)
        ub = reps_ub[b, role] * full
        rest[lane].append(expr)
        rest_ub[lane] += ub
        ei = e * p.Q
        assert ei.denominator == 1
        energy_terms.append(expr * int(ei))
        energy_ub += ub * int(ei)
    inner = L - 1
    for (lv, name), v in feat.items():
        if isinstance(name, tuple) and name[0] == "sub":
            rest[name[1]].append(-v)
    energy_terms.append(feat[inner, "arrE"])
    energy_ub += feat_ub[inner, "arrE"]
    if caps:
        energy_ub = min(energy_ub, caps[0])
    _check_int64(view, "energy", energy_ub)
    energy = m.NewIntVar(0, energy_ub, "energy")
    m.Add(energy == int(p.const_energy * p.Q) + sum(energy_terms))
    compute = feat[inner, "compute"]
    bounded = sorted((lane for lane in p.lanes if lane[1] is not None and rest[lane]), key=str)

    def busy_cycles(lanes: list, name: str):
        """ceil(Σ bytes / rate over ``lanes``) as a variable: a port's time when they share one port."""
        n = math.lcm(*(r.numerator for _, r in lanes))  # times n are integers: bytes · d · (n / num)
        s = sum(sum(rest[lane]) * (lane[1].denominator * (n // lane[1].numerator)) for lane in lanes)
        s_ub = sum(rest_ub[lane] * lane[1].denominator * (n // lane[1].numerator) for lane in lanes)
        ub = -(-s_ub // n)
        _check_int64(view, "port cycles", ub)
        c = m.NewIntVar(0, ub, name)
        m.Add(c * n >= s)
        m.Add(c * n <= s + n - 1)
        return c, ub

    if p.mems[-1].double_buffered:  # compute overlaps the transfers; the busiest port binds
        cycles, mid_ub = [compute], feat_ub[inner, "compute"]
        for port in sorted({lane[0] for lane in bounded}, key=str):
            c, ub = busy_cycles([lane for lane in bounded if lane[0] == port], f"port{port}")
            cycles.append(c)
            mid_ub = max(mid_ub, ub)
        mid = m.NewIntVar(0, mid_ub, "middle")
        m.AddMaxEquality(mid, cycles)
    else:  # compute, then every transfer in turn
        cc, cc_ub = busy_cycles(bounded, "ports") if bounded else (0, 0)
        mid_ub = feat_ub[inner, "compute"] + cc_ub
        mid = m.NewIntVar(0, mid_ub, "middle")
        m.Add(mid == compute + cc)
    lat_ub = mid_ub + sum(feat_ub[lv, "fl"] + feat_ub[lv, "ls"] for lv in range(1, L))
    if caps:
        lat_ub = min(lat_ub, caps[1])
    _check_int64(view, "latency", lat_ub)
    latency = m.NewIntVar(0, lat_ub, "latency")
    m.Add(latency == mid + sum(feat[lv, "fl"] + feat[lv, "ls"] for lv in range(1, L)))
    built = _Built(m, tile, trip, pos, latency, energy, ubs={"energy": energy_ub, "latency": lat_ub}, keep=keep,
                   rows=sum(len(tab.rows) for tab in p.tables))
    if with_edp:
        shift = 0
        while (energy_ub >> shift) * lat_ub >= INT_LIMIT:
            shift += 1
        e_obj = energy
        if shift:  # inexact: energy counted in units of 2^shift / Q pJ for the product
            e_obj = m.NewIntVar(0, energy_ub >> shift, "energy_scaled")
            m.AddDivisionEquality(e_obj, energy, 1 << shift)
        edp = m.NewIntVar(0, (energy_ub >> shift) * lat_ub, "edp")
        m.AddMultiplicationEquality(edp, [e_obj, latency])
        built.edp, built.shift = edp, shift
    return built


@dataclass(frozen=True)
class _Phase:
    """What one solve found."""

    status: str
    values: dict | None  # var name -> value, for hints and extraction
    objective: int | None
    bound: float
    latency: int | None
    energy: int | None


def _solve(built: _Built, objective_var, limit: float, seed: int, workers: int, hint: dict | None) -> _Phase:
    """Minimise ``objective_var`` within ``limit`` seconds."""
    from ortools.sat.python import cp_model

    m = built.model
    m.Minimize(objective_var)
    decision = built.decisions
    if hint:
        m.ClearHints()
        for v in decision:
            m.AddHint(v, hint[v.Name()])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(limit, 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.cp_model_presolve = False
    if built.rows > KILLABLE_ROWS:
        return _solve_killable(lambda: _run(solver, built), limit)
    return _run(solver, built)


def _run(solver, built: _Built) -> _Phase:
    """Solve ``built``'s model (objective set) with ``solver`` and read the answer back."""
    from ortools.sat.python import cp_model

    status = solver.Solve(built.model)
    name = solver.StatusName(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _Phase(name, None, None, solver.BestObjectiveBound(), None, None)
    values = {v.Name(): solver.Value(v) for v in built.decisions + list(built.trip.values())}
    return _Phase(name, values, int(solver.ObjectiveValue()), solver.BestObjectiveBound(),
                  solver.Value(built.latency), solver.Value(built.energy))


def _solve_killable(run, limit: float) -> _Phase:
    """``run()`` in a forked child, killed a second past ``limit``: while CP-SAT loads a model with
    large tables it does not check its time limit (minutes past it on padded BERT shapes), and a
    thread cannot be stopped. A killed solve is UNKNOWN with no solution (bound 0)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=lambda: send.send(run()), daemon=True)
    child.start()
    send.close()
    try:
        if recv.poll(max(limit, 0.01) + 1.0):
            return recv.recv()
    except EOFError:  # the child died without an answer
        pass
    finally:
        child.kill()
        child.join()
    return _Phase("UNKNOWN", None, None, 0.0, None, None)


def _mapping_from(p: _Problem, values: dict):
    """The canonical Mapping of a solution."""
    view, L = p.view, p.L
    tiles = [{r: values[f"t{lv}_{r}"] for r in p.ranks} for lv in range(1, L)]
    orders = []
    for j in range(L - 1):
        trips = {r: values[f"trip{j}_{r}"] for r in p.ranks}
        orders.append(canonical_order(view, trips, lambda r, j=j: values[f"pos{j}_{r}"]))
    bypass = [tuple(r for r in ROLES if values.get(f"keep{lv}_{r}", 1) == 0) for lv in range(1, L)]
    return build_mapping(view, p.arch, tiles, orders, p.unit.name, bypass)


def _hint_of(p: _Problem, mapping) -> dict:
    """Solver hint values (tiles and loop positions) of a mapping in this space."""
    values = {f"t{lv}_{r}": mapping.levels[lv].tile[r] for lv in range(1, p.L) for r in p.ranks}
    for j in range(p.L - 1):
        values.update({f"pos{j}_{r}": i for i, r in enumerate(mapping.levels[j].order)})
    values.update({f"keep{j}_{r}": int(r not in mapping.levels[j].bypass) for j in p.middle for r in ROLES})
    return values


def cpsat_mapping(view: MatmulView, arch, objective: str = "edp", time_limit_s: float = 10.0, seed: int = 0,
                  workers: int = 2, unit_name: str | None = None, padded: bool = False,
                  bypass: bool = False) -> MapResult:
    """The optimal mapping of ``view`` for "latency", "energy", "edp" or "lex", by CP-SAT.

    Status is OPTIMAL when proven, FEASIBLE when the time limit cut the search (``bound`` is then
    the best proven lower bound, in the objective's units). Every phase starts from a quick
    seeded search's mapping as a hint, so a time limit always leaves an answer; the limit covers
    building the tables, and a model of more than KILLABLE_ROWS table rows is solved in a child
    process stopped at the limit (CP-SAT does not watch its clock while loading). A two-level
    space of more than ENUMERATE_ROWS table rows is solved by exhaustive vectorized enumeration
    instead (OPTIMAL, ``evaluated`` = the mappings scored), within the same limit. ``padded`` adds
    imperfect tiles (two levels); ``bypass`` lets middle levels skip operands (three or more)."""
    if objective not in ("latency", "energy", "edp", "lex"):
        raise ValueError(f"unknown objective '{objective}' (expected latency, energy, edp or lex)")
    start = time.perf_counter()
    deadline = start + time_limit_s
    check_padded(arch, padded, "cpsat mapper")
    from mappers.search import search_mapping

    start_point = search_mapping(view, arch, "latency" if objective == "lex" else objective, samples=200,
                                 anneal_steps=400, seed=seed, unit_name=unit_name, padded=padded,
                                 bypass=bypass)

    def searched(bound) -> MapResult:
        """The seeded search's mapping, unproven: the solver gave nothing within the limit."""
        return MapResult(start_point.mapping, start_point.cost, start_point.objective_value, "FEASIBLE", bound, 0,
                         time.perf_counter() - start)

    if len(arch.memories) == 2 and table_rows(view, arch, padded, bypass) > ENUMERATE_ROWS:
        # One tile level and one loop order: the space is a list of tilings × order classes, which
        # the vectorized enumeration scores exactly in seconds, while CP-SAT would load a table of
        # 10^5 rows for minutes (padded BERT-sized GEMMs).
        from mappers.brute_vec import brute_vec_mapping

        try:
            r = brute_vec_mapping(view, arch, objective, unit_name, padded=padded, deadline=deadline)
        except OutOfTime:
            return searched((None, None) if objective == "lex" else None)
        return MapResult(r.mapping, r.cost, r.objective_value, "OPTIMAL", r.bound, r.evaluated,
                         time.perf_counter() - start)
    try:
        p = _Problem(view, arch, unit_name, padded, bypass, deadline)
    except OutOfTime:  # the tables alone outlast the limit
        return searched((None, None) if objective == "lex" else None)
    seeded = _hint_of(p, start_point.mapping)

    def left(share: float = 1.0) -> float:
        return max(0.01, (deadline - time.perf_counter()) * share)

    def done(phase: _Phase, status: str, bound) -> MapResult:
        if phase.values is None:  # the solver did not even confirm its hint in time: keep the search's answer
            return searched(bound)
        mapping = _mapping_from(p, phase.values)
        cost = evaluate(view, mapping, arch)
        return MapResult(mapping, cost, objective_of(cost, objective), status, bound, 0, time.perf_counter() - start)

    if objective in ("latency", "energy"):
        b = _build(p, False)
        ph = _solve(b, b.latency if objective == "latency" else b.energy, left(), seed, workers, seeded)
        bound = ph.bound if objective == "latency" else ph.bound / p.Q
        return done(ph, ph.status, bound)
    if objective == "lex":
        b = _build(p, False)
        ph1 = _solve(b, b.latency, left(0.5), seed, workers, seeded)
        if ph1.values is None:
            return done(ph1, ph1.status, None)
        b2 = _build(p, False)
        b2.model.Add(b2.latency <= ph1.latency)
        ph2 = _solve(b2, b2.energy, left(), seed, workers, ph1.values)
        status = "OPTIMAL" if ph1.status == ph2.status == "OPTIMAL" else "FEASIBLE"
        return done(ph2 if ph2.values else ph1, status, (ph1.bound, ph2.bound / p.Q))
    # EDP: one solve of E × L, its domains cut by the search's mapping (an upper bound U) and by
    # lower bounds read off the tables (cheaper than solving min-latency and min-energy first).
    l_lb, e_lb = p.latency_floor(), p.energy_floor()
    inc_l = start_point.cost.latency_cycles
    inc_e = math.ceil(start_point.cost.energy_pj * p.Q * (1 + 1e-9))  # ≥ its exact energy in 1/Q pJ
    upper = inc_e * inc_l
    b = _build(p, True, (upper // l_lb, upper // e_lb))
    b.model.Add(b.edp <= upper >> b.shift)
    ph = _solve(b, b.edp, left(), seed, workers, seeded)
    if ph.values is None:
        return done(ph, "FEASIBLE", l_lb * e_lb / p.Q)
    scale = (1 << b.shift) / p.Q
    if not b.shift or ph.status != "OPTIMAL":
        return done(ph, ph.status if not b.shift else "FEASIBLE", ph.bound * scale)
    # The product was taken of energy in units of 2^shift/Q pJ (floor), to stay inside int64. The
    # exact optimum x* still lies in a narrow band: 2^shift · edp_scaled(x*) ≤ E(x*)·L(x*) ≤ E·L of
    # the scaled optimum. Enumerate the band and score it exactly.
    exact = ph.energy * ph.latency
    best = _band_minimum(b, exact >> b.shift, left(), seed, ph)
    if best is None:
        return done(ph, "FEASIBLE", ph.bound * scale)
    return done(best, "OPTIMAL", best.energy * best.latency / p.Q)


BAND_LIMIT = 2000  # solutions the exact EDP band may hold before we give up the proof (FEASIBLE)


def _band_minimum(built: _Built, edp_cap: int, limit: float, seed: int, incumbent: _Phase) -> _Phase | None:
    """Among every solution with scaled EDP ≤ ``edp_cap``, the one with the least exact E × L
    (ties: the first found after the incumbent); None if the band could not be enumerated."""
    from ortools.sat.python import cp_model

    m = built.model.Clone()
    m.ClearObjective()
    m.ClearHints()
    m.Add(built.edp <= edp_cap)
    keep = built.decisions + list(built.trip.values())

    class Collect(cp_model.CpSolverSolutionCallback):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[_Phase] = []

        def on_solution_callback(self) -> None:
            values = {v.Name(): self.Value(v) for v in keep}
            self.found.append(_Phase("OPTIMAL", values, None, 0.0, self.Value(built.latency), self.Value(built.energy)))
            if len(self.found) > BAND_LIMIT:
                self.StopSearch()

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(limit, 0.01)
    solver.parameters.num_workers = 1  # enumeration is single-threaded in CP-SAT
    solver.parameters.random_seed = seed
    solver.parameters.cp_model_presolve = False
    solver.parameters.enumerate_all_solutions = True
    cb = Collect()
    status = solver.Solve(m, cb)
    if status != cp_model.OPTIMAL or len(cb.found) > BAND_LIMIT or not cb.found:
        return None
    return min(cb.found, key=lambda ph: (ph.energy * ph.latency, sorted(ph.values.items())))
