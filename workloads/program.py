"""A Program: what a whole model lowers to -- named cascades (segments), each run ``repeat`` times.

Identical layers are one cascade with a repeat count, so an 80-layer model stores one layer.
``repeat`` is a cost notion: every repetition runs the same Einsums on its own tensors (its
own weights, its own KV cache), so op counts and tensor bytes scale by it. To execute a
model, run each segment's cascade ``repeat`` times in order, feeding each repetition its own
weights and the previous repetition's ``meta["stream"]["output"]`` as its
``meta["stream"]["input"]``.

Every tensor has a *kind*, kept in ``meta["kinds"]`` (tensor name -> kind; a name has the same
kind in every segment, and tensors not listed are activations):

- ``weight``: model parameters (a name that appears in several segments is one tensor, e.g.
  tied embeddings, and is counted once);
- ``kv``: the KV cache -- cached keys/values read in decode, the keys/values a step appends;
- ``activation``: everything computed on the fly;
- ``aux``: inputs the runtime derives from token ids, positions and routing decisions
  (one-hot 0/-inf selection masks, attention masks, RoPE tables); a real kernel would use
  indices instead.

:class:`Dtypes` gives each kind its number type; :class:`Builder` assembles one cascade and
records the kinds as it goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from workloads.cascade import Cascade
from workloads.ir import DTYPE_BYTES, Einsum, Tensor, WorkloadError

KINDS = ("weight", "kv", "activation", "aux")
"""Tensor kinds, see the module docstring."""

_KIND_KEYS = {"weight": "weights", "kv": "kv_cache", "activation": "activations", "aux": "aux"}


@dataclass(frozen=True)
class Dtypes:
    """Number type of each tensor kind (weights may be int8 while activations are bf16)."""

    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"

    def __post_init__(self) -> None:
        for what in ("weights", "activations", "kv"):
            if getattr(self, what) not in DTYPE_BYTES:
                raise WorkloadError(
                    f"Dtypes.{what}: unknown dtype {getattr(self, what)!r} (known: {', '.join(DTYPE_BYTES)})"
                )

    def of(self, kind: str) -> str:
        """The dtype of a tensor of ``kind`` (aux tensors take the activation type)."""
        return {"weight": self.weights, "kv": self.kv}.get(kind, self.activations)


@dataclass(frozen=True)
class Segment:
    """One cascade of a program and how many times it runs back to back (e.g. the layers)."""

    name: str
    cascade: Cascade
    repeat: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise WorkloadError(f"segment {self.name}: repeat must be a positive integer, got {self.repeat!r}")


@dataclass(frozen=True)
class Program:
    """A lowered model: segments run in order, each ``repeat`` times; ``meta`` says how."""

    name: str
    segments: tuple[Segment, ...]
    meta: dict = field(default_factory=dict, hash=False)

    def segment(self, name: str) -> Segment:
        """The segment called ``name`` (KeyError if absent)."""
        for s in self.segments:
            if s.name == name:
                return s
        raise KeyError(name)

    def kind(self, tensor: str) -> str:
        """The kind of ``tensor`` (weight, kv, activation or aux)."""
        return self.meta.get("kinds", {}).get(tensor, "activation")

    def op_counts(self, *, gathers: bool = True) -> dict[str, int]:
        """Operations by type: sum over segments of repeat x ``cascade.op_counts()``.

        ``gathers=False`` leaves out the Einsums listed in ``meta["gathers"]`` (token-embedding
        lookups and MoE dispatch/combine written as dense 0/-inf selections, which hardware
        does as gathers moving only the selected rows).
        """
        skip = {} if gathers else self.meta.get("gathers", {})
        total: dict[str, int] = {}
        for s in self.segments:
            left_out = set(skip.get(s.name, ()))
            if left_out:
                counts: dict[str, int] = {}
                for e in s.cascade.einsums:
                    if e.name not in left_out:
                        for op, n in s.cascade.einsum_op_counts(e).items():
                            counts[op] = counts.get(op, 0) + n
            else:
                counts = s.cascade.op_counts()
            for op, n in counts.items():
                total[op] = total.get(op, 0) + s.repeat * n
        return total

    def flops(self, *, gathers: bool = True) -> int:
        """Floating-point operations: 2 per mac, 1 per every other op."""
        return sum((2 if op == "mac" else 1) * n for op, n in self.op_counts(gathers=gathers).items())

    def macs(self) -> int:
        """Multiply-accumulates (the GEMM work)."""
        return self.op_counts().get("mac", 0)

    def tensor_bytes_by_kind(self) -> dict[str, int]:
        """Bytes of every declared tensor by kind: weights, kv_cache, activations, aux.

        Each segment's tensors count ``repeat`` times (every layer has its own); a weight
        named in several segments (tied embeddings) counts once, at its largest repeat.
        Activations are every intermediate as if all were materialised: an upper bound on
        what a fusing mapping keeps, not a footprint.
        """
        totals = {key: 0 for key in _KIND_KEYS.values()}
        weights: dict[str, int] = {}
        for s in self.segments:
            for t in s.cascade.tensors:
                kind = self.kind(t.name)
                size = s.repeat * s.cascade.tensor_bytes(t.name)
                if kind == "weight":
                    weights[t.name] = max(weights.get(t.name, 0), size)
                else:
                    totals[_KIND_KEYS[kind]] += size
        totals["weights"] = sum(weights.values())
        return totals

    def einsum_count(self) -> int:
        """Einsums the program stands for: sum over segments of repeat x its Einsums."""
        return sum(s.repeat * len(s.cascade.einsums) for s in self.segments)


def access(tensor: str, index: Iterable[str | int]) -> str:
    """The access text ``tensor[i, j, ...]`` from index expressions."""
    return f"{tensor}[{','.join(str(i) for i in index)}]"


class Builder:
    """Collects ranks, tensors (with their kinds) and Einsums for one cascade, then builds it.

    A tensor's dtype follows its kind through ``dtypes``; an Einsum is named after the tensor
    it writes unless given a name. Declaring a rank or tensor twice the same way is a no-op.
    """

    def __init__(self, name: str, dtypes: Dtypes = Dtypes()) -> None:
        self.name = name
        self.dtypes = dtypes
        self.ranks: dict[str, int] = {}
        self.tensors: dict[str, Tensor] = {}
        self.kinds: dict[str, str] = {}
        self.einsums: list[Einsum] = []
        self.iterative: dict[str, int] = {}

    def rank(self, name: str, extent: int) -> str:
        """Declare rank ``name`` of ``extent``; return the name."""
        if self.ranks.setdefault(name, extent) != extent:
            raise WorkloadError(f"{self.name}: rank {name} declared with extents {self.ranks[name]} and {extent}")
        return name

    def extent(self, rank: str) -> int:
        """The extent of a declared rank."""
        return self.ranks[rank]

    def tensor(self, name: str, ranks: Iterable[str], kind: str = "activation",
               initial: float | None = None) -> str:
        """Declare tensor ``name`` over ``ranks`` of ``kind``; return the name."""
        if kind not in KINDS:
            raise WorkloadError(f"{self.name}: unknown tensor kind {kind!r} (known: {', '.join(KINDS)})")
        t = Tensor(name, tuple(ranks), self.dtypes.of(kind), initial)
        if self.tensors.setdefault(name, t) != t:
            raise WorkloadError(f"{self.name}: tensor {name} declared twice differently")
        self.kinds[name] = kind
        return name

    def einsum(self, out: str, inputs: Iterable[str] | str, map_op: str | None = None,
               reduce_op: str | None = None, unary: Iterable = (), name: str | None = None) -> str:
        """Add ``out = unary(reduce(map(inputs)))`` (accesses as text); return the Einsum's name."""
        ins = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        einsum = Einsum(name or out.split("[", 1)[0].strip(), out, ins, map_op, reduce_op, tuple(unary))
        self.einsums.append(einsum)
        return einsum.name

    def iterate(self, rank: str, bound: int) -> None:
        """Make ``rank`` iterative with stop bound ``bound``."""
        self.iterative[rank] = bound

    def build(self) -> Cascade:
        """The validated Cascade."""
        return Cascade(self.name, self.ranks, self.tensors.values(), self.einsums, self.iterative)


def merge_kinds(builders: Iterable[Builder]) -> dict[str, str]:
    """One kinds table for several cascades; a name must have the same kind everywhere."""
    kinds: dict[str, str] = {}
    for b in builders:
        for name, kind in b.kinds.items():
            if kinds.setdefault(name, kind) != kind:
                raise WorkloadError(f"tensor {name} is a {kinds[name]} in one segment and a {kind} in another")
    return kinds
