"""The building blocks of an extended-Einsum cascade: index expressions, tensors, Einsums.

An Einsum reads tensors through *accesses* (``A[m, k]``, ``K[e, m1*256+m0]``, ``RD[4, p]``),
combines the values with a *map* op, folds the ranks missing from the output with a *reduce*
op, and applies element-wise *unary* ops to the result. Everything here is a frozen value;
a :class:`workloads.cascade.Cascade` ties them together and checks that they fit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# --- errors -----------------------------------------------------------------------------------


def format_path(path: tuple) -> str:
    """Render a key path such as ("einsums", 2, "in", 0) as ``einsums[2].in[0]``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


class WorkloadError(ValueError):
    """A workload description is wrong; the message is one line naming what and where.

    ``path`` is the key path into a dict description (e.g. ``("einsums", 2, "in", 0)``), so a
    caller that knows YAML line numbers can point at the line; ``message`` is the text without
    the path prefix.
    """

    def __init__(self, message: str, path: tuple | None = None) -> None:
        self.message = message
        self.path = tuple(path) if path is not None else None
        super().__init__(f"{format_path(self.path)}: {message}" if self.path else message)


# --- names and number types -------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is an identifier (letters, digits, _), else raise WorkloadError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise WorkloadError(f"{what} name {name!r} is not an identifier (letters, digits, _)")
    return name


DTYPE_BYTES: dict[str, float] = {
    "fp64": 8,
    "fp32": 4,
    "int32": 4,
    "fp16": 2,
    "bf16": 2,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}
"""Bytes per element of each supported data type."""

MAP_OPS: dict[str, int] = {
    "mul": 2, "add": 2, "sub": 2, "max": 2, "min": 2, "div": 2,
    "exp_sub": 2,  # exp(a - b): the softmax numerator in one step
}
"""Map ops and how many inputs each takes; ``None`` (copy) takes exactly one."""

REDUCE_OPS: dict[str, str] = {"sum": "add", "max": "max", "min": "min"}
"""Reduce ops and the ALU operation each reduction step costs (for op counts)."""

UNARY_OPS: dict[str, bool] = {
    "exp": False, "neg": False, "recip": False, "sqrt": False, "rsqrt": False,
    "square": False, "relu": False, "gelu": False, "silu": False, "sigmoid": False,
    "tanh": False,
    "scale": True,  # x * arg
    "add_const": True,  # x + arg
}
"""Unary ops and whether each needs an ``arg``."""


# --- affine index expressions -----------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


@dataclass(frozen=True)
class Affine:
    """An integer affine index expression ``sum(coef * rank) + const``, e.g. ``m1*256 + m0``.

    Terms are kept merged (one per rank, in first-appearance order) and zero terms dropped, so
    two equal expressions compare equal.
    """

    terms: tuple[tuple[str, int], ...] = ()
    const: int = 0

    def __post_init__(self) -> None:
        merged: dict[str, int] = {}
        for term in self.terms:
            rank, coef = term
            check_name(rank, "rank")
            if not isinstance(coef, int) or isinstance(coef, bool):
                raise WorkloadError(f"coefficient of {rank} must be an integer, got {coef!r}")
            merged[rank] = merged.get(rank, 0) + coef
        if not isinstance(self.const, int) or isinstance(self.const, bool):
            raise WorkloadError(f"affine constant must be an integer, got {self.const!r}")
        object.__setattr__(self, "terms", tuple((r, c) for r, c in merged.items() if c != 0))

    @classmethod
    def var(cls, rank: str, coef: int = 1) -> Affine:
        """The expression ``coef * rank``."""
        return cls(((rank, coef),))

    @classmethod
    def parse(cls, text: str) -> Affine:
        """Parse ``"m"``, ``"m1*256+m0"``, ``"256*m1 + m0"``, ``"m1+1"``, ``"0"``, ``"m-1"``."""
        if not isinstance(text, str):
            raise WorkloadError(f"index expression must be text, got {text!r}")
        tokens = []
        for match in _TOKEN.finditer(text):
            number, name, other = match.groups()
            if other is not None:
                if other not in ("+", "-", "*"):
                    raise WorkloadError(f"bad index expression {text!r}: unexpected {other!r}")
                tokens.append(("op", other))
            elif number is not None:
                tokens.append(("int", int(number)))
            else:
                tokens.append(("name", name))
        if not tokens:
            raise WorkloadError("empty index expression")

        terms: list[tuple[str, int]] = []
        const = 0
        pos = 0
        sign = 1
        if tokens[0] in (("op", "+"), ("op", "-")):
            sign = -1 if tokens[0][1] == "-" else 1
            pos = 1
        while True:  # one term: factor ('*' factor)*
            coef, rank = sign, None
            while True:
                if pos >= len(tokens) or tokens[pos][0] == "op":
                    raise WorkloadError(f"bad index expression {text!r}: missing a number or rank")
                kind, value = tokens[pos]
                pos += 1
                if kind == "int":
                    coef *= value
                elif rank is None:
                    rank = value
                else:
                    raise WorkloadError(
                        f"index expression {text!r} is not affine: {rank}*{value} multiplies ranks"
                    )
                if pos < len(tokens) and tokens[pos] == ("op", "*"):
                    pos += 1
                    continue
                break
            if rank is None:
                const += coef
            else:
                terms.append((rank, coef))
            if pos >= len(tokens):
                break
            kind, op = tokens[pos]
            if kind != "op" or op not in ("+", "-"):
                raise WorkloadError(f"bad index expression {text!r}: unexpected {op!r}")
            sign = -1 if op == "-" else 1
            pos += 1
        return cls(tuple(terms), const)

    @property
    def ranks(self) -> tuple[str, ...]:
        """The rank names the expression uses, in order."""
        return tuple(rank for rank, _ in self.terms)

    def as_rank(self) -> str | None:
        """The rank name if the expression is exactly one bare rank (coefficient 1), else None."""
        if len(self.terms) == 1 and self.terms[0][1] == 1 and self.const == 0:
            return self.terms[0][0]
        return None

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Value for rank values in ``env`` (ints or broadcastable integer numpy arrays)."""
        value: Any = self.const
        for rank, coef in self.terms:
            value = value + coef * env[rank]
        return value

    def bounds(self, extents: Mapping[str, int]) -> tuple[int, int]:
        """(min, max) of the expression when each rank r ranges over 0..extents[r]-1."""
        lo = hi = self.const
        for rank, coef in self.terms:
            span = coef * (extents[rank] - 1)
            lo += min(0, span)
            hi += max(0, span)
        return lo, hi

    def __str__(self) -> str:
        parts = []
        for rank, coef in self.terms:
            sign = "-" if coef < 0 else "+"
            body = rank if abs(coef) == 1 else f"{rank}*{abs(coef)}"
            parts.append(sign + body)
        if self.const or not parts:
            parts.append(f"{'-' if self.const < 0 else '+'}{abs(self.const)}")
        text = "".join(parts)
        return text[1:] if text.startswith("+") else text


# --- accesses, tensors, unary ops, Einsums ----------------------------------------------------

_ACCESS = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\[(.*)\]\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Access:
    """One tensor reference inside an Einsum: a tensor name and one index expression per rank."""

    tensor: str
    index: tuple[Affine, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.tensor, "tensor")
        index = tuple(Affine.parse(e) if isinstance(e, str) else e for e in self.index)
        for expr in index:
            if not isinstance(expr, Affine):
                raise WorkloadError(f"index of {self.tensor} must be Affine or text, got {expr!r}")
        object.__setattr__(self, "index", index)

    @classmethod
    def parse(cls, text: str) -> Access:
        """Parse ``"BK[e, m1, m0]"``, ``"RM[m1+1,p]"``, ``"RD[4,p]"``; ``"S[]"`` is a scalar."""
        match = _ACCESS.match(text) if isinstance(text, str) else None
        if match is None:
            raise WorkloadError(f"bad tensor access {text!r}: expected the form NAME[i, j, ...]")
        name, inside = match.groups()
        if not inside.strip():
            return cls(name, ())
        try:
            return cls(name, tuple(Affine.parse(part) for part in inside.split(",")))
        except WorkloadError as err:
            raise WorkloadError(f"bad tensor access {text!r}: {err.message}") from None

    @property
    def ranks(self) -> tuple[str, ...]:
        """Rank names used by the index expressions, in first-appearance order."""
        seen: dict[str, None] = {}
        for expr in self.index:
            for rank in expr.ranks:
                seen.setdefault(rank)
        return tuple(seen)

    @property
    def is_projection(self) -> bool:
        """True when every index is a bare rank (``A[m, k]``), so no address arithmetic."""
        return all(expr.as_rank() is not None for expr in self.index)

    def __str__(self) -> str:
        return f"{self.tensor}[{','.join(str(e) for e in self.index)}]"


@dataclass(frozen=True)
class Tensor:
    """A named tensor: its ranks (dimension names), element type and optional initial value.

    ``initial`` fills the tensor before any Einsum writes it; a running tensor of an iterative
    rank needs it (RM starts at -inf, RD and RNV at 0).
    """

    name: str
    ranks: tuple[str, ...] = ()
    dtype: str = "fp16"
    initial: float | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "tensor")
        ranks = (self.ranks,) if isinstance(self.ranks, str) else tuple(self.ranks)
        for rank in ranks:
            check_name(rank, "rank")
        if len(set(ranks)) != len(ranks):
            raise WorkloadError(f"tensor {self.name}: repeated rank in {list(ranks)}")
        object.__setattr__(self, "ranks", ranks)
        if self.dtype not in DTYPE_BYTES:
            raise WorkloadError(
                f"tensor {self.name}: unknown dtype {self.dtype!r} (known: {', '.join(DTYPE_BYTES)})"
            )
        if self.initial is not None:
            if isinstance(self.initial, bool) or not isinstance(self.initial, (int, float)):
                raise WorkloadError(f"tensor {self.name}: initial must be a number, got {self.initial!r}")
            object.__setattr__(self, "initial", float(self.initial))

    @property
    def bytes_per_element(self) -> float:
        """Storage size of one element in bytes (0.5 for int4)."""
        return DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class Unary:
    """An element-wise op applied to an Einsum's result, e.g. ``Unary("scale", 0.125)``."""

    op: str
    arg: float | None = None

    def __post_init__(self) -> None:
        if self.op not in UNARY_OPS:
            raise WorkloadError(f"unknown unary op {self.op!r}{_did_you_mean(self.op, UNARY_OPS)}")
        if UNARY_OPS[self.op] and self.arg is None:
            raise WorkloadError(f"unary op {self.op!r} needs an arg")
        if not UNARY_OPS[self.op] and self.arg is not None:
            raise WorkloadError(f"unary op {self.op!r} takes no arg")
        if self.arg is not None:
            if isinstance(self.arg, bool) or not isinstance(self.arg, (int, float)):
                raise WorkloadError(f"unary op {self.op!r}: arg must be a number, got {self.arg!r}")
            object.__setattr__(self, "arg", float(self.arg))


def _as_unary(u: Unary | str | tuple) -> Unary:
    """Accept ``Unary``, ``"exp"`` or ``("scale", 0.125)``."""
    if isinstance(u, str):
        return Unary(u)
    if isinstance(u, tuple) and len(u) == 2:
        return Unary(*u)
    return u


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(choices)})"


@dataclass(frozen=True)
class Einsum:
    """``output = unary(reduce(map(inputs)))`` over the iteration space of its ranks.

    The iteration space is every rank used by any index; ranks absent from the output are
    reduced with ``reduce_op``. Accesses may be given as text (``"A[m,k]"``) and unary ops
    as names or ``(name, arg)`` pairs; they are parsed on construction.
    """

    name: str
    output: Access
    inputs: tuple[Access, ...]
    map_op: str | None = None
    reduce_op: str | None = None
    unary: tuple[Unary, ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.name, "einsum")
        try:
            output = Access.parse(self.output) if isinstance(self.output, str) else self.output
            inputs = (self.inputs,) if isinstance(self.inputs, (str, Access)) else tuple(self.inputs)
            inputs = tuple(Access.parse(a) if isinstance(a, str) else a for a in inputs)
            unary = (self.unary,) if isinstance(self.unary, (str, Unary)) else tuple(self.unary)
            unary = tuple(_as_unary(u) for u in unary)
        except WorkloadError as err:
            raise WorkloadError(f"einsum {self.name}: {err.message}") from None
        if not isinstance(output, Access) or not all(isinstance(a, Access) for a in inputs):
            raise WorkloadError(f"einsum {self.name}: output and inputs must be accesses")
        if not all(isinstance(u, Unary) for u in unary):
            raise WorkloadError(f"einsum {self.name}: unary ops must be Unary or names")
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "unary", unary)

        if self.map_op is None:
            if len(inputs) != 1:
                raise WorkloadError(
                    f"einsum {self.name}: without a map op it copies exactly 1 input, got {len(inputs)}"
                )
        elif self.map_op not in MAP_OPS:
            raise WorkloadError(
                f"einsum {self.name}: unknown map op {self.map_op!r}{_did_you_mean(self.map_op, MAP_OPS)}"
            )
        elif len(inputs) != MAP_OPS[self.map_op]:
            raise WorkloadError(
                f"einsum {self.name}: map op {self.map_op!r} takes {MAP_OPS[self.map_op]} inputs, "
                f"got {len(inputs)}"
            )
        if self.reduce_op is not None and self.reduce_op not in REDUCE_OPS:
            raise WorkloadError(
                f"einsum {self.name}: unknown reduce op {self.reduce_op!r}"
                f"{_did_you_mean(self.reduce_op, REDUCE_OPS)}"
            )
        if self.reduced_ranks and self.reduce_op is None:
            raise WorkloadError(
                f"einsum {self.name}: ranks {', '.join(self.reduced_ranks)} are not in the output "
                "but no reduce op is given"
            )

    @property
    def output_ranks(self) -> tuple[str, ...]:
        """Ranks used by the output's index, in order."""
        return self.output.ranks

    @property
    def ranks(self) -> tuple[str, ...]:
        """All iteration ranks: the output's first, then the rest in first-appearance order."""
        seen = dict.fromkeys(self.output.ranks)
        for access in self.inputs:
            for rank in access.ranks:
                seen.setdefault(rank)
        return tuple(seen)

    @property
    def reduced_ranks(self) -> tuple[str, ...]:
        """Iteration ranks that the output's index does not use (folded by ``reduce_op``)."""
        out = set(self.output.ranks)
        return tuple(r for r in self.ranks if r not in out)

    @property
    def tensors(self) -> tuple[str, ...]:
        """Names of the tensors it touches: the output first, then the inputs (no repeats)."""
        return tuple(dict.fromkeys([self.output.tensor, *(a.tensor for a in self.inputs)]))

    def __str__(self) -> str:
        body = ", ".join(str(a) for a in self.inputs)
        text = f"{self.map_op}({body})" if self.map_op else body
        if self.reduce_op:
            text = f"{self.reduce_op}_{{{','.join(self.reduced_ranks)}}} {text}"
        for u in self.unary:
            text = f"{u.op}({text}{'' if u.arg is None else f', {u.arg:g}'})"
        return f"{self.name}: {self.output} = {text}"
