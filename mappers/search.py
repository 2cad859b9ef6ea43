"""A heuristic mapper over mappers.space's mapspace: random sampling, then simulated annealing.

The space is mappers.space's: per rank a divisor chain over the memory levels, per outer level
a loop order. A state keeps, per rank, the trip of every level plus the innermost tile (their
product is the extent; with padded tiles, two levels only, the trip is ceil(extent / tile)) and,
per outer level, a full permutation of the ranks (only the ranks with trip > 1 matter; the
Mapping lists them first, the rest in view order, as the space does) and, per level 1 … L-1,
its bypass set (always empty unless ``bypass``). Moves: a prime factor of one rank to another
level (padded: a rank's tile to a neighbouring candidate); a swap of two active loops at one
level; with ``bypass``, one operand kept or skipped at one middle level.
Everything is drawn from one ``random.Random(seed)``, so a seed gives one answer.
"""

from __future__ import annotations

import math
import random
import time
from math import prod

from mappers.cost import ROLES, Cost, evaluate
from mappers.greedy import default_mapping
from mappers.mapping import Mapping
from mappers.space import (OBJECTIVES, MapResult, build_mapping, bypass_options, check_padded, fits, no_fit_error,
                           objective_of, rank_chains)
from mappers.view import MatmulView

_ATTEMPTS_PER_SAMPLE = 200  # rejection sampling gives up after this many draws per wanted sample
_T_START, _T_END = 0.3, 0.002  # annealing temperature, in units of log(objective)


def _primes(n: int) -> list[int]:
    """The distinct prime factors of ``n``."""
    out, p = [], 2
    while p * p <= n:
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
        p += 1
    return out + ([n] if n > 1 else [])


class _Space:
    """The sampler, state ↔ Mapping conversion and a memoised cost for one (view, arch)."""

    def __init__(self, view: MatmulView, arch, unit_name: str | None, padded: bool = False,
                 bypass: bool = False) -> None:
        check_padded(arch, padded, "search mapper")
        self.view, self.arch, self.unit = view, arch, arch.unit(unit_name).name
        self.padded = padded
        self.skip_options = bypass_options(arch, bypass)  # per level 1 … L-1
        self.middle = [j for j, opts in enumerate(self.skip_options, start=1) if len(opts) > 1]
        self.L = len(arch.memories)
        self.ranks = view.ranks
        self.chains: dict[str, list[tuple[int, ...]]] = {}
        self.fit_memo: dict = {}
        self.cost_memo: dict = {}
        self.eval_memo: dict = {}
        self.evaluated = 0

    # --- states: (factors, perms, skips); factors[r] = (trip_0, …, trip_{L-2}, innermost tile);
    #     skips[j-1] = the roles level j bypasses
    def tiles(self, factors: dict[str, tuple[int, ...]]) -> list[dict[str, int]]:
        """Tiles of levels 1 … L-1."""
        return [{r: prod(factors[r][j:]) for r in self.ranks} for j in range(1, self.L)]

    def valid(self, factors, skips) -> bool:
        """Whether every on-chip level's tile (less what it bypasses) fits."""
        for j, tile in enumerate(self.tiles(factors), start=1):
            key = (j, tuple(tile.values()), skips[j - 1])
            if key not in self.fit_memo:
                self.fit_memo[key] = fits(self.view, self.arch.memories[j], tile, skips[j - 1])
            if not self.fit_memo[key]:
                return False
        return True

    def mapping(self, factors, perms, skips) -> Mapping:
        """The space's Mapping of a state."""
        orders = []
        for j in range(self.L - 1):
            active = [r for r in perms[j] if factors[r][j] > 1]
            orders.append(tuple(active) + tuple(r for r in self.ranks if factors[r][j] == 1))
        return build_mapping(self.view, self.arch, self.tiles(factors), orders, self.unit, list(skips))

    def key(self, factors, perms, skips) -> tuple:
        """A hashable identity of the Mapping a state stands for."""
        return tuple(factors[r] for r in self.ranks) + tuple(
            tuple(r for r in perms[j] if factors[r][j] > 1) for j in range(self.L - 1)) + tuple(skips)

    def cost(self, factors, perms, skips) -> tuple[Cost, Mapping]:
        """The cost of a state (evaluate, memoised by state)."""
        k = self.key(factors, perms, skips)
        if k not in self.cost_memo:
            m = self.mapping(factors, perms, skips)
            self.cost_memo[k] = (evaluate(self.view, m, self.arch, self.eval_memo), m)
            self.evaluated += 1
        return self.cost_memo[k]

    # --- sampling
    def random_state(self, rng: random.Random):
        """A state drawn uniformly over per-rank divisor chains and per-level orders (maybe invalid)."""
        factors = {}
        for r in self.ranks:
            chain = (self.view.sizes[r],) + rng.choice(self.rank_options(r))
            if self.padded:
                factors[r] = self._padded(r, chain[1])
                continue
            factors[r] = tuple(chain[j] // chain[j + 1] for j in range(self.L - 1)) + (chain[-1],)
        perms = []
        for _ in range(self.L - 1):
            p = list(self.ranks)
            rng.shuffle(p)
            perms.append(tuple(p))
        skips = tuple(rng.choice(opts) if len(opts) > 1 else opts[0] for opts in self.skip_options)
        return factors, perms, skips

    def samples(self, n: int, rng: random.Random) -> list:
        """Up to ``n`` valid states by rejection (fewer if valid ones are too rare to find)."""
        if not all(fits(self.view, mem, {r: 1 for r in self.ranks}) for mem in self.arch.memories[1:]):
            return []  # even the smallest tile fits nowhere
        out = []
        for _ in range(_ATTEMPTS_PER_SAMPLE * n):
            if len(out) == n:
                break
            state = self.random_state(rng)
            if self.valid(state[0], state[2]):
                out.append(state)
        return out

    def from_mapping(self, m: Mapping):
        """The state of a Mapping, or None when it is not in the perfect-factor space."""
        factors = {}
        for r in self.ranks:
            chain = [lv.tile[r] for lv in m.levels]
            if self.padded and tuple(chain[1:]) in self.rank_options(r):
                factors[r] = self._padded(r, chain[1])
                continue
            if any(chain[j] % chain[j + 1] for j in range(len(chain) - 1)):
                return None
            factors[r] = tuple(chain[j] // chain[j + 1] for j in range(len(chain) - 1)) + (chain[-1],)
        perms = [tuple(m.levels[j].order) for j in range(self.L - 1)]
        skips = tuple(tuple(lv.bypass) for lv in m.levels[1:])
        if any(s not in opts for s, opts in zip(skips, self.skip_options)):
            return None
        return (factors, perms, skips) if self.valid(factors, skips) else None

    def rank_options(self, r: str) -> list[tuple[int, ...]]:
        """The tile chains rank ``r`` may take (space.rank_chains, memoised)."""
        if r not in self.chains:
            self.chains[r] = rank_chains(self.view.sizes[r], self.L, self.padded)
        return self.chains[r]

    def _padded(self, r: str, tile: int) -> tuple[int, int]:
        """The (trip, tile) factors of a padded rank."""
        return -(-self.view.sizes[r] // tile), tile

    # --- moves
    def neighbour(self, state, rng: random.Random):
        """A factor move or a loop swap (the result may be invalid; None if none applies)."""
        factors, perms, skips = state
        if self.middle and rng.random() < 0.2:  # keep or skip one operand at one middle level
            j = rng.choice(self.middle)
            role = rng.choice(ROLES)
            flipped = tuple(r for r in ROLES if (r in skips[j - 1]) != (r == role))
            return factors, perms, skips[:j - 1] + (flipped,) + skips[j:]
        movable = [r for r in self.ranks if self.view.sizes[r] > 1]
        if rng.random() < 0.6 and movable:
            r = rng.choice(movable)
            if self.padded:  # one step along the rank's candidate tiles
                cands = [c[0] for c in self.rank_options(r)]
                i = cands.index(factors[r][1]) + rng.choice((-1, 1))
                return ({**factors, r: self._padded(r, cands[i])}, perms, skips) if 0 <= i < len(cands) else None
            f = list(factors[r])
            src = rng.choice([j for j in range(self.L) if f[j] > 1])
            p = rng.choice(_primes(f[src]))
            dst = rng.choice([j for j in range(self.L) if j != src])
            f[src] //= p
            f[dst] *= p
            return {**factors, r: tuple(f)}, perms, skips
        j = rng.randrange(self.L - 1)
        active = [i for i, r in enumerate(perms[j]) if factors[r][j] > 1]
        if len(active) < 2:
            return None
        a, b = rng.sample(active, 2)
        p = list(perms[j])
        p[a], p[b] = p[b], p[a]
        return factors, perms[:j] + [tuple(p)] + perms[j + 1:], skips


def _score(cost: Cost, objective: str) -> float:
    """A scalar in log units for the annealing's acceptance rule (lex: latency, energy a tie-break)."""
    lat, en = max(cost.latency_cycles, 1e-12), max(cost.energy_pj, 1e-12)
    return {"latency": math.log(lat), "energy": math.log(en), "edp": math.log(lat) + math.log(en),
            "lex": math.log(lat) + 1e-6 * math.log(en)}[objective]


def random_valid_mappings(view: MatmulView, arch, n: int, seed: int = 0, unit_name: str | None = None,
                          padded: bool = False, bypass: bool = False) -> list[Mapping]:
    """Up to ``n`` valid mappings drawn uniformly over divisor chains (padded: candidate tiles),
    orders (and bypass sets), rejecting misfits."""
    sp = _Space(view, arch, unit_name, padded, bypass)
    states = sp.samples(n, random.Random(seed))
    if not states and n:
        raise no_fit_error(view, arch)
    return [sp.mapping(*state) for state in states]


def search_mapping(view: MatmulView, arch, objective: str = "edp", samples: int = 2000, seed: int = 0,
                   anneal_steps: int = 2000, unit_name: str | None = None, padded: bool = False,
                   bypass: bool = False) -> MapResult:
    """A good mapping by seeded random sampling from a greedy seed, then simulated annealing
    (``padded``: with imperfect tiles, two memory levels only; ``bypass``: middle levels may skip operands)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}' (expected one of {', '.join(OBJECTIVES)})")
    start = time.perf_counter()
    rng = random.Random(seed)
    sp = _Space(view, arch, unit_name, padded, bypass)
    states = []
    try:
        seed_state = sp.from_mapping(default_mapping(view, arch, sp.unit))
    except Exception:  # noqa: BLE001 - the greedy seed is optional (e.g. nothing fits its candidates)
        seed_state = None
    if seed_state is not None:
        states.append(seed_state)
    states += sp.samples(samples, rng)
    if not states:
        raise no_fit_error(view, arch)

    def value(state):
        return objective_of(sp.cost(*state)[0], objective)

    best = cur = min(states, key=value)  # min keeps the first of equals: deterministic
    best_v = value(best)
    cur_s = _score(sp.cost(*cur)[0], objective)
    for step in range(anneal_steps):
        temp = _T_START * (_T_END / _T_START) ** (step / max(anneal_steps - 1, 1))
        nxt = sp.neighbour(cur, rng)
        if nxt is None or not sp.valid(nxt[0], nxt[2]):
            continue
        cost = sp.cost(*nxt)[0]
        s = _score(cost, objective)
        if s <= cur_s or rng.random() < math.exp((cur_s - s) / temp):
            cur, cur_s = nxt, s
            v = objective_of(cost, objective)
            if v < best_v:
                best, best_v = nxt, v
    cost, mapping = sp.cost(*best)
    return MapResult(mapping, cost, best_v, "FEASIBLE", 0.0, sp.evaluated, time.perf_counter() - start)
