"""The matmul view of an Einsum: which ranks play M, N, K and batch, and which tensor is which.

A systolic array runs multiply-accumulate Einsums ``C[b,m,n] = Σ_k A[b,m,k]·B[b,k,n]`` where
each of b, m, n, k may be several ranks (or none). Ranks are classified by where they appear:
in A and C only → M; in B and C only → N; in A and B only (reduced) → K; in all three → batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from mappers.errors import MappingError

ROLE_GROUPS = {"input": ("batch", "m", "k"), "weight": ("batch", "k", "n"), "output": ("batch", "m", "n")}


@dataclass(frozen=True)
class MatmulView:
    """An Einsum seen as a (batched) GEMM; ``sizes`` maps every rank to its extent."""

    einsum: str
    tensors: dict[str, str]  # role -> tensor name
    groups: dict[str, tuple[str, ...]]  # "batch" | "m" | "n" | "k" -> ranks
    sizes: dict[str, int]
    elem_bytes: dict[str, float]  # role -> bytes per element
    _role_ranks: dict = field(init=False, repr=False, compare=False)  # derived once: the cost model asks often

    def __post_init__(self) -> None:
        derived = {role: tuple(r for g in gs for r in self.groups[g]) for role, gs in ROLE_GROUPS.items()}
        derived["all"] = tuple(r for g in ("batch", "m", "n", "k") for r in self.groups[g])
        object.__setattr__(self, "_role_ranks", derived)

    @property
    def ranks(self) -> tuple[str, ...]:
        return self._role_ranks["all"]

    def ranks_of(self, role: str) -> tuple[str, ...]:
        return self._role_ranks[role]

    def dims(self, tile: dict[str, int]) -> tuple[int, int, int, int]:
        """(batch, m, n, k) of a tile given per-rank sizes."""
        b, m, n, k = (prod(tile[r] for r in self.groups[g]) for g in ("batch", "m", "n", "k"))
        return b, m, n, k

    def tile_bytes(self, role: str, tile: dict[str, int]) -> float:
        return prod(tile[r] for r in self.ranks_of(role)) * self.elem_bytes[role]

    @property
    def macs(self) -> int:
        return prod(self.sizes.values())


def matmul_view(cascade, einsum) -> MatmulView:
    """Classify ``einsum`` of ``cascade`` as a batched GEMM, or say why it is not one."""
    what = f"einsum '{einsum.name}'"
    if einsum.map_op != "mul" or einsum.reduce_op != "sum" or len(einsum.inputs) != 2 or einsum.unary:
        ops = f"map={einsum.map_op}, reduce={einsum.reduce_op}" + (", unary ops" if einsum.unary else "")
        raise MappingError(f"{what} ({ops}) is not a multiply-accumulate; only such Einsums can be mapped onto a systolic array yet")
    accesses = (*einsum.inputs, einsum.output)
    for acc in accesses:
        if not acc.is_projection:
            raise MappingError(f"{what}: access {acc.tensor} uses affine indices; only plain rank indices can be mapped yet")
    a, b, c = (set(acc.ranks) for acc in accesses)
    groups: dict[str, list[str]] = {"batch": [], "m": [], "n": [], "k": []}
    for r in einsum.ranks:
        where = (r in a, r in b, r in c)
        group = {(True, True, True): "batch", (True, False, True): "m", (False, True, True): "n", (True, True, False): "k"}.get(where)
        if group is None:
            raise MappingError(f"{what}: rank '{r}' appears only in {'A' if where[0] else 'B' if where[1] else 'C'}; not a GEMM")
        groups[group].append(r)
    roles = ("input", "weight", "output")
    tensors = {role: acc.tensor for role, acc in zip(roles, accesses)}
    return MatmulView(
        einsum=einsum.name,
        tensors=tensors,
        groups={g: tuple(rs) for g, rs in groups.items()},
        sizes={r: cascade.ranks[r] for r in einsum.ranks},
        elem_bytes={role: cascade.tensor(t).bytes_per_element for role, t in tensors.items()},
    )
