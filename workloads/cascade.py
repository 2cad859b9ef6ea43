"""A Cascade: a validated DAG of Einsums over named tensors and ranks, and what it costs.

Iterative ranks (FuseMax's 1-pass attention): ``iterative={"m1": M1}`` makes every Einsum
that uses ``m1`` run inside a loop ``m1 = 0 .. M1-1``. A *running* tensor is one an Einsum
writes at ``m1+1`` along its ``m1`` dimension; it reads ``m1`` (the value from the previous
iteration, or ``initial`` at ``m1 = 0``), so it has extent ``M1+1`` along ``m1``. That
``m1 -> m1+1`` read is loop-carried and is not a cycle; every other dependency must form a DAG.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from workloads.ir import REDUCE_OPS, Affine, Einsum, Tensor, WorkloadError, check_name


@dataclass(frozen=True)
class Stage:
    """A run of Einsums executed together: once (``rank`` None) or per step of an iterative rank."""

    rank: str | None
    einsums: tuple[Einsum, ...]


class Cascade:
    """A validated cascade of Einsums; read-only after construction.

    Construction checks that every tensor and rank is defined, index counts match tensor
    ranks, no index leaves its tensor's extent, each tensor has one producer (or several
    writing disjoint slices: a running tensor's steps, or a concatenation such as a decode
    step's cached and new keys), every declared tensor is used, and the
    dependencies are acyclic. Einsums are then stored in a topological order in which the
    Einsums of one iterative loop are contiguous (see :meth:`stages`). Validation errors carry
    a ``path`` such as ``("einsums", i, "in", j)``, ``i`` being the position in ``einsums``.
    """

    def __init__(
        self,
        name: str,
        ranks: Mapping[str, int],
        tensors: Iterable[Tensor],
        einsums: Iterable[Einsum],
        iterative: Mapping[str, int] | None = None,
    ) -> None:
        self._name = str(name)
        self._ranks = MappingProxyType(dict(_check_ranks(ranks)))
        self._iterative = MappingProxyType(dict(_check_iterative(iterative or {}, self._ranks)))
        self._tensors = _check_tensors(tensors, self._ranks)
        given = list(einsums)
        _check_einsums(given, self._tensors, self._ranks, self._iterative)

        self._loop_rank = {e.name: _loop_rank(e, self._iterative) for e in given}
        self._running = _running_tensors(given, self._tensors, self._iterative)
        self._shapes = {
            t.name: tuple(
                self._iterative[r] + 1 if self._running.get(t.name) == r else self._ranks[r]
                for r in t.ranks
            )
            for t in self._tensors.values()
        }
        # How far an Einsum iterates along each rank: an iterative rank stops at its bound.
        self._extents = {r: self._iterative.get(r, n) for r, n in self._ranks.items()}
        _check_shapes(given, self._tensors, self._shapes, self._extents)
        self._producers = _check_producers(given, self._running, self._tensors, self._extents)
        _check_used(given, self._tensors)
        self._einsums = _schedule(given, self._producers, self._carried_dims(), self._loop_rank)
        self._by_name = {e.name: e for e in self._einsums}

    def _carried_dims(self) -> dict[str, tuple[str, int]]:
        """Running tensor -> (its iterative rank, the position of that rank in its index)."""
        return {t: (r, self._tensors[t].ranks.index(r)) for t, r in self._running.items()}

    # --- what it is -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The cascade's name."""
        return self._name

    @property
    def ranks(self) -> Mapping[str, int]:
        """Rank name -> extent (read-only)."""
        return self._ranks

    @property
    def iterative(self) -> Mapping[str, int]:
        """Iterative rank -> stop bound (read-only); empty when there is none."""
        return self._iterative

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        """All tensors, in declaration order."""
        return tuple(self._tensors.values())

    @property
    def einsums(self) -> tuple[Einsum, ...]:
        """All Einsums, in a topological order (loops contiguous)."""
        return self._einsums

    def tensor(self, name: str) -> Tensor:
        """The tensor called ``name`` (KeyError if absent)."""
        return self._tensors[name]

    def einsum(self, name: str) -> Einsum:
        """The Einsum called ``name`` (KeyError if absent)."""
        return self._by_name[name]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Tensors no Einsum produces (the cascade's inputs), in declaration order."""
        return tuple(n for n in self._tensors if not self._producers.get(n))

    @property
    def outputs(self) -> tuple[str, ...]:
        """Produced tensors that no other Einsum reads (the cascade's results)."""
        read = {
            a.tensor for e in self._einsums for a in e.inputs if a.tensor != e.output.tensor
        }
        return tuple(n for n in self._tensors if self._producers.get(n) and n not in read)

    def producers(self, tensor: str) -> tuple[Einsum, ...]:
        """The Einsums that write ``tensor`` (several only when they write disjoint slices)."""
        return tuple(e for e in self._einsums if e.output.tensor == tensor)

    def consumers(self, tensor: str) -> tuple[Einsum, ...]:
        """The Einsums that read ``tensor``."""
        return tuple(e for e in self._einsums if any(a.tensor == tensor for a in e.inputs))

    @property
    def running_tensors(self) -> Mapping[str, str]:
        """Running tensor -> the iterative rank it runs along (extent bound+1 on that rank)."""
        return MappingProxyType(dict(self._running))

    def loop_rank(self, einsum: Einsum | str) -> str | None:
        """The iterative rank whose loop runs this Einsum, or None if it runs once."""
        return self._loop_rank[_einsum_name(einsum)]

    def stages(self) -> tuple[Stage, ...]:
        """The execution plan: consecutive Einsums grouped by the loop (if any) that runs them."""
        stages: list[Stage] = []
        for e in self._einsums:
            rank = self._loop_rank[e.name]
            if stages and stages[-1].rank == rank:
                stages[-1] = Stage(rank, stages[-1].einsums + (e,))
            else:
                stages.append(Stage(rank, (e,)))
        return tuple(stages)

    # --- sizes ----------------------------------------------------------------------------

    def rank_extent(self, rank: str) -> int:
        """How many values an Einsum iterates over for ``rank`` (the stop bound if iterative)."""
        return self._extents[rank]

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, one extent per rank (bound+1 along a running tensor's rank)."""
        return self._shapes[name]

    def tensor_elements(self, name: str) -> int:
        """Number of elements of the tensor."""
        return math.prod(self._shapes[name])

    def tensor_bytes(self, name: str) -> int:
        """Storage of the whole tensor in bytes (sub-byte types round up to a whole byte)."""
        return math.ceil(self.tensor_elements(name) * self._tensors[name].bytes_per_element)

    def iteration_points(self, einsum: Einsum | str) -> int:
        """Points of the Einsum's iteration space (over all iterations of its loop, if any)."""
        e = self._by_name[_einsum_name(einsum)]
        return math.prod(self._extents[r] for r in e.ranks)

    def output_points(self, einsum: Einsum | str) -> int:
        """Output elements the Einsum computes (iteration points over its output ranks)."""
        e = self._by_name[_einsum_name(einsum)]
        return math.prod(self._extents[r] for r in e.output_ranks)

    # --- costs ----------------------------------------------------------------------------

    def einsum_op_counts(self, einsum: Einsum | str) -> dict[str, int]:
        """Operations of one Einsum by type: mac, mul, add, sub, max, min, div, exp, unary names.

        A mul map with a sum reduce is a fused ``mac`` per iteration point. Otherwise the map
        op costs one per point (``exp_sub`` one sub and one exp), the reduce op one per point
        not starting an output (points - output points), each unary op one per output point.
        """
        e = self._by_name[_einsum_name(einsum)]
        points, outs = self.iteration_points(e), self.output_points(e)
        counts: dict[str, int] = {}

        def add(op: str, n: int) -> None:
            if n:
                counts[op] = counts.get(op, 0) + n

        if e.map_op == "mul" and e.reduce_op == "sum":
            add("mac", points)
        else:
            if e.map_op == "exp_sub":
                add("sub", points)
                add("exp", points)
            elif e.map_op is not None:
                add(e.map_op, points)
            if e.reduce_op is not None:
                add(REDUCE_OPS[e.reduce_op], points - outs)
        for u in e.unary:
            add(u.op, outs)
        return counts

    def op_counts(self) -> dict[str, int]:
        """Operations of the whole cascade by type (the sum of :meth:`einsum_op_counts`)."""
        total: dict[str, int] = {}
        for e in self._einsums:
            for op, n in self.einsum_op_counts(e).items():
                total[op] = total.get(op, 0) + n
        return total

    def compulsory_traffic_bytes(self) -> int:
        """Bytes that any execution must move: every input read once, every output written once."""
        return sum(self.tensor_bytes(n) for n in (*self.inputs, *self.outputs))

    # --- plain-dict form --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML-ready) that :meth:`from_dict` turns back into an equal Cascade."""
        from workloads.serialize import cascade_to_dict

        return cascade_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cascade:
        """Build from the plain-dict form; errors are WorkloadError with ``path`` set."""
        from workloads.serialize import cascade_from_dict

        return cascade_from_dict(d)

    # --- value semantics --------------------------------------------------------------------

    def _key(self) -> tuple:
        """Identity for == and hash: declarations compare as sets, Einsums in their order."""
        return (
            self._name,
            tuple(sorted(self._ranks.items())),
            tuple(sorted(self._iterative.items())),
            tuple(sorted(self._tensors.values(), key=lambda t: t.name)),
            self._einsums,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cascade) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Cascade({self._name!r}, {len(self._einsums)} einsums, "
            f"{len(self._tensors)} tensors, ranks={dict(self._ranks)})"
        )


# --- validation helpers (each raises WorkloadError naming the culprit) --------------------------


def _einsum_name(einsum: Einsum | str) -> str:
    return einsum if isinstance(einsum, str) else einsum.name


def _check_ranks(ranks: Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(ranks, Mapping):
        raise WorkloadError(f"ranks must be a mapping of rank name to extent, got {ranks!r}")
    for rank, extent in ranks.items():
        try:
            check_name(rank, "rank")
        except WorkloadError as err:
            raise WorkloadError(err.message, ("ranks",)) from None
        if isinstance(extent, bool) or not isinstance(extent, int) or extent < 1:
            raise WorkloadError(f"rank {rank}: extent must be a positive integer, got {extent!r}",
                                ("ranks", rank))
    return ranks


def _check_iterative(iterative: Mapping[str, int], ranks: Mapping[str, int]) -> Mapping[str, int]:
    for rank, bound in iterative.items():
        if rank not in ranks:
            raise WorkloadError(f"iterative rank {rank!r} is not a defined rank", ("iterative", rank))
        if isinstance(bound, bool) or not isinstance(bound, int) or not 1 <= bound <= ranks[rank]:
            raise WorkloadError(
                f"iterative rank {rank}: bound must be an integer in 1..{ranks[rank]}, got {bound!r}",
                ("iterative", rank),
            )
    return iterative


def _check_tensors(tensors: Iterable[Tensor], ranks: Mapping[str, int]) -> dict[str, Tensor]:
    result: dict[str, Tensor] = {}
    for t in tensors:
        if not isinstance(t, Tensor):
            raise WorkloadError(f"expected a Tensor, got {t!r}")
        if t.name in result:
            raise WorkloadError(f"tensor {t.name} is declared twice", ("tensors", t.name))
        for r in t.ranks:
            if r not in ranks:
                raise WorkloadError(f"tensor {t.name}: undefined rank {r!r}", ("tensors", t.name, "ranks"))
        result[t.name] = t
    return result


def _check_einsums(
    einsums: list[Einsum],
    tensors: Mapping[str, Tensor],
    ranks: Mapping[str, int],
    iterative: Mapping[str, int],
) -> None:
    names: set[str] = set()
    for i, e in enumerate(einsums):
        if not isinstance(e, Einsum):
            raise WorkloadError(f"expected an Einsum, got {e!r}", ("einsums", i))
        if e.name in names:
            raise WorkloadError(f"einsum name {e.name} is used twice", ("einsums", i, "name"))
        names.add(e.name)
        for access, path in _accesses(e, i):
            if access.tensor not in tensors:
                raise WorkloadError(f"einsum {e.name}: undefined tensor {access.tensor!r} in {access}", path)
            for r in access.ranks:
                if r not in ranks:
                    raise WorkloadError(f"einsum {e.name}: undefined rank {r!r} in {access}", path)
            want = tensors[access.tensor].ranks
            if len(access.index) != len(want):
                raise WorkloadError(
                    f"einsum {e.name}: {access} has {len(access.index)} indices but tensor "
                    f"{access.tensor} has {len(want)} ranks ({', '.join(want) or 'none'})",
                    path,
                )
        loops = [r for r in e.ranks if r in iterative]
        if len(loops) > 1:
            raise WorkloadError(
                f"einsum {e.name}: uses iterative ranks {' and '.join(loops)}; nesting is not supported",
                ("einsums", i),
            )
        if loops and loops[0] not in e.output_ranks:
            raise WorkloadError(
                f"einsum {e.name}: runs in the {loops[0]} loop, so its output must be indexed by "
                f"{loops[0]} (a reduction over an iterative rank needs a running tensor)",
                ("einsums", i, "out"),
            )


def _accesses(e: Einsum, i: int) -> list[tuple[Any, tuple]]:
    return [(e.output, ("einsums", i, "out"))] + [
        (a, ("einsums", i, "in", j)) for j, a in enumerate(e.inputs)
    ]


def _loop_rank(e: Einsum, iterative: Mapping[str, int]) -> str | None:
    return next((r for r in e.ranks if r in iterative), None)


def _next_of(rank: str) -> Affine:
    return Affine(((rank, 1),), 1)


def _running_tensors(
    einsums: list[Einsum], tensors: Mapping[str, Tensor], iterative: Mapping[str, int]
) -> dict[str, str]:
    """Tensors written at ``r+1`` along their own dimension ``r`` of an iterative rank."""
    running: dict[str, str] = {}
    for i, e in enumerate(einsums):
        t = tensors[e.output.tensor]
        for dim, expr in zip(t.ranks, e.output.index):
            if dim in iterative and expr == _next_of(dim):
                if running.get(t.name, dim) != dim:
                    raise WorkloadError(
                        f"tensor {t.name} runs along two iterative ranks ({running[t.name]}, {dim})",
                        ("einsums", i, "out"),
                    )
                running[t.name] = dim
    return running


def _check_shapes(
    einsums: list[Einsum],
    tensors: Mapping[str, Tensor],
    shapes: Mapping[str, tuple[int, ...]],
    extents: Mapping[str, int],
) -> None:
    for i, e in enumerate(einsums):
        for access, path in _accesses(e, i):
            shape = shapes[access.tensor]
            dims = tensors[access.tensor].ranks
            for dim, expr, extent in zip(dims, access.index, shape):
                lo, hi = expr.bounds(extents)
                if lo < 0 or hi >= extent:
                    raise WorkloadError(
                        f"einsum {e.name}: index {expr} of {access.tensor} (rank {dim}) spans "
                        f"{lo}..{hi} but the extent is {extent}",
                        path,
                    )


def _check_producers(
    einsums: list[Einsum],
    running: Mapping[str, str],
    tensors: Mapping[str, Tensor],
    extents: Mapping[str, int],
) -> dict[str, list[int]]:
    """Map tensor -> indices of the Einsums writing it.

    Several writers are allowed when their slices are disjoint: along the iterative rank for
    a running tensor, or (any other tensor) when the bounding boxes of every two writes are
    disjoint along some dimension, e.g. ``K[b,mc,e]`` and ``K[b,p+L,e]`` with ``mc < L``.
    """
    producers: dict[str, list[int]] = {}
    for i, e in enumerate(einsums):
        producers.setdefault(e.output.tensor, []).append(i)
    for name, idx in producers.items():
        rank = running.get(name)
        if len(idx) > 1:
            if rank is None:
                _check_disjoint_writes(name, idx, einsums, extents)
                continue
            dim = tensors[name].ranks.index(rank)
            spans = sorted(
                (einsums[i].output.index[dim].bounds(extents), i) for i in idx
            )
            for (a, ia), (b, ib) in zip(spans, spans[1:]):
                if b[0] <= a[1]:
                    raise WorkloadError(
                        f"running tensor {name}: einsums {einsums[ia].name} and {einsums[ib].name} "
                        f"both write {rank} in {b[0]}..{min(a[1], b[1])}",
                        ("einsums", ib, "out"),
                    )
        if rank is not None and tensors[name].initial is None:
            dim = tensors[name].ranks.index(rank)
            if not any(einsums[i].output.index[dim].bounds(extents)[0] == 0 for i in idx):
                raise WorkloadError(
                    f"running tensor {name} needs an initial value (its value at {rank}=0)",
                    ("tensors", name, "initial"),
                )
    return producers


def _check_disjoint_writes(
    name: str, idx: list[int], einsums: list[Einsum], extents: Mapping[str, int]
) -> None:
    """Raise unless every two of the Einsums ``idx`` write boxes of ``name`` that do not overlap."""
    boxes = [[expr.bounds(extents) for expr in einsums[i].output.index] for i in idx]
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            if not any(hi1 < lo2 or hi2 < lo1 for (lo1, hi1), (lo2, hi2) in zip(boxes[a], boxes[b])):
                raise WorkloadError(
                    f"tensor {name} is produced by two einsums: {einsums[idx[a]].name} and "
                    f"{einsums[idx[b]].name} (their writes overlap)",
                    ("einsums", idx[b], "out"),
                )


def _check_used(einsums: list[Einsum], tensors: Mapping[str, Tensor]) -> None:
    used = {name for e in einsums for name in e.tensors}
    for name in tensors:
        if name not in used:
            raise WorkloadError(f"tensor {name} is declared but no einsum uses it", ("tensors", name))


def _schedule(
    einsums: list[Einsum],
    producers: Mapping[str, list[int]],
    carried: Mapping[str, tuple[str, int]],
    loop_rank: Mapping[str, str | None],
) -> tuple[Einsum, ...]:
    """Topological order with each loop contiguous; stable (keeps the given order when valid)."""
    n = len(einsums)
    edges: list[set[int]] = [set() for _ in range(n)]  # producer -> consumers
    for c, e in enumerate(einsums):
        for access in e.inputs:
            for p in producers.get(access.tensor, []):
                if _loop_carried(einsums[p], e, access, carried, loop_rank):
                    continue
                edges[p].add(c)
    cycle = _find_cycle(list(range(n)), lambda i: sorted(edges[i]))
    if cycle:
        names = " -> ".join(einsums[i].output.tensor for i in cycle)
        raise WorkloadError(f"cycle: {names}", ("einsums", cycle[0]))

    # Contract each loop to one node so that its Einsums run together.
    group: list[Hashable] = [
        ("loop", loop_rank[e.name]) if loop_rank[e.name] else ("once", i) for i, e in enumerate(einsums)
    ]
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(group):
        members.setdefault(g, []).append(i)
    gedges: dict[Hashable, set[Hashable]] = {g: set() for g in members}
    for p in range(n):
        for c in edges[p]:
            if group[p] != group[c]:
                gedges[group[p]].add(group[c])
    order_key = {g: min(m) for g, m in members.items()}
    gcycle = _find_cycle(sorted(members, key=order_key.get), lambda g: sorted(gedges[g], key=order_key.get))
    if gcycle:  # an Einsum (or another loop) both reads from and feeds a loop
        names = " -> ".join(f"loop {g[1]}" if g[0] == "loop" else einsums[g[1]].name for g in gcycle)
        loop = next(g for g in gcycle if g[0] == "loop")[1]
        outside = [einsums[g[1]].name for g in gcycle if g[0] == "once"]
        why = (
            f"einsum {outside[0]} does not iterate over {loop} but both feeds and reads the {loop} loop"
            if outside else "iterative loops that feed each other cannot run one after the other"
        )
        raise WorkloadError(f"cycle: {names}; {why}", ("einsums", members[gcycle[0]][0]))
    order: list[int] = []
    for g in _stable_toposort(list(members), gedges, order_key):
        inner = set(members[g])
        inner_edges = {i: {c for c in edges[i] if c in inner} for i in inner}
        order.extend(_stable_toposort(sorted(inner), inner_edges, {i: i for i in inner}))
    return tuple(einsums[i] for i in order)


def _loop_carried(
    producer: Einsum,
    consumer: Einsum,
    access: Any,
    carried: Mapping[str, tuple[str, int]],
    loop_rank: Mapping[str, str | None],
) -> bool:
    """True for a read of the previous iteration's value of a running tensor inside its loop:
    the producer writes it at ``r+1`` and the consumer, in the same loop, reads it at ``r``."""
    if access.tensor not in carried:
        return False
    rank, dim = carried[access.tensor]
    return (
        loop_rank[producer.name] == rank
        and loop_rank[consumer.name] == rank
        and producer.output.index[dim] == _next_of(rank)
        and access.index[dim] == Affine.var(rank)
    )


def _find_cycle(nodes: list, successors) -> list | None:
    """A cycle as a node list closed by its first node (e.g. [a, b, a]), or None if acyclic."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {v: WHITE for v in nodes}
    for root in nodes:
        if color[root] != WHITE:
            continue
        stack = [(root, iter(successors(root)))]
        path = [root]
        color[root] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            elif color[nxt] == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(successors(nxt))))
                path.append(nxt)
    return None


def _stable_toposort(nodes: list, edges: Mapping, key: Mapping) -> list:
    """Kahn's algorithm, always taking the ready node with the smallest key."""
    indegree = {v: 0 for v in nodes}
    for v in nodes:
        for w in edges[v]:
            indegree[w] += 1
    ready = [(key[v], i, v) for i, v in enumerate(nodes) if indegree[v] == 0]
    heapq.heapify(ready)
    index = {v: i for i, v in enumerate(nodes)}
    order = []
    while ready:
        _, _, v = heapq.heappop(ready)
        order.append(v)
        for w in edges[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                heapq.heappush(ready, (key[w], index[w], w))
    return order
