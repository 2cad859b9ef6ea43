"""A numpy interpreter for any valid Cascade: the correctness oracle for every lowering.

Each Einsum is evaluated in one vectorized step: every rank of its iteration space becomes a
broadcast ``arange`` axis, each input is gathered through its affine index arrays, the map op
combines them, the reduce op folds the ranks missing from the output, the unary ops follow,
and the result is scattered into the output through its index expressions. Einsums of an
iterative rank run once per value of that rank, with the rank fixed, in topological order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from workloads.cascade import Cascade
from workloads.ir import Access, Einsum, WorkloadError

_MAP: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mul": np.multiply,
    "add": np.add,
    "sub": np.subtract,
    "max": np.maximum,
    "min": np.minimum,
    "div": np.divide,
    "exp_sub": lambda a, b: np.exp(a - b),
}

_REDUCE: dict[str, Callable[..., np.ndarray]] = {"sum": np.sum, "max": np.max, "min": np.min}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # no overflow for large |x|


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


_UNARY: dict[str, Callable[[np.ndarray, float | None], np.ndarray]] = {
    "exp": lambda x, _: np.exp(x),
    "neg": lambda x, _: -x,
    "recip": lambda x, _: 1.0 / x,
    "sqrt": lambda x, _: np.sqrt(x),
    "rsqrt": lambda x, _: 1.0 / np.sqrt(x),
    "square": lambda x, _: x * x,
    "relu": lambda x, _: np.maximum(x, 0),
    "gelu": lambda x, _: _gelu(x),
    "silu": lambda x, _: x * _sigmoid(x),
    "sigmoid": lambda x, _: _sigmoid(x),
    "tanh": lambda x, _: np.tanh(x),
    "scale": lambda x, a: x * a,
    "add_const": lambda x, a: x + a,
}


def interpret(
    cascade: Cascade, inputs: Mapping[str, np.ndarray], dtype: type = np.float64
) -> dict[str, np.ndarray]:
    """Execute ``cascade`` on ``inputs`` (one array per cascade input); return every tensor.

    Produced tensors start filled with their ``initial`` value, or 0.
    """
    values: dict[str, np.ndarray] = {}
    known = {t.name for t in cascade.tensors}
    for name in inputs:
        if name not in known:
            raise WorkloadError(f"unknown input tensor {name!r} (inputs: {', '.join(cascade.inputs)})")
        if name not in cascade.inputs:
            raise WorkloadError(f"tensor {name} is produced by the cascade, not an input")
    for name in cascade.inputs:
        if name not in inputs:
            raise WorkloadError(f"missing input tensor {name} (shape {cascade.tensor_shape(name)})")
        array = np.asarray(inputs[name], dtype=dtype)
        if array.shape != cascade.tensor_shape(name):
            raise WorkloadError(
                f"input {name} has shape {array.shape}, expected {cascade.tensor_shape(name)}"
            )
        values[name] = array.copy()
    for t in cascade.tensors:
        if t.name not in values:
            fill = 0.0 if t.initial is None else t.initial
            values[t.name] = np.full(cascade.tensor_shape(t.name), fill, dtype=dtype)

    for stage in cascade.stages():
        if stage.rank is None:
            for e in stage.einsums:
                _run(cascade, e, values, {})
        else:
            for step in range(cascade.iterative[stage.rank]):
                for e in stage.einsums:
                    _run(cascade, e, values, {stage.rank: step})
    return values


def _run(cascade: Cascade, e: Einsum, values: dict[str, np.ndarray], fixed: Mapping[str, int]) -> None:
    """Evaluate one Einsum (with the ranks in ``fixed`` pinned to one value) into ``values``."""
    ranks = e.ranks
    nd = len(ranks)
    grid = {}  # rank -> integer index array broadcast along its own axis
    for axis, rank in enumerate(ranks):
        shape = [1] * nd
        if rank in fixed:
            axis_values = np.array([fixed[rank]])
        else:
            axis_values = np.arange(cascade.rank_extent(rank))
        shape[axis] = len(axis_values)
        grid[rank] = axis_values.reshape(shape)

    n_out = len(e.output_ranks)  # output ranks are the leading axes
    if e.map_op == "mul" and e.reduce_op == "sum":
        # The fused MAC: let numpy contract without materialising the iteration space.
        letters = {r: chr(ord("a") + i) for i, r in enumerate(ranks)} if nd <= 26 else None
        if letters is not None:
            operands, subs = [], []
            for access in e.inputs:
                used = set(access.ranks)
                array = _gather(values[access.tensor], access, grid, nd)
                operands.append(array[tuple(slice(None) if r in used else 0 for r in ranks)])
                subs.append("".join(letters[r] for r in ranks if r in used))
            out_subs = "".join(letters[r] for r in e.output_ranks)
            result = np.einsum(f"{','.join(subs)}->{out_subs}", *operands, optimize=True)
            _finish(e, values, grid, result)
            return

    gathered = [_gather(values[a.tensor], a, grid, nd) for a in e.inputs]
    if e.map_op is None:
        result = gathered[0]
    else:
        result = _MAP[e.map_op](gathered[0], gathered[1])
    full = tuple(len(grid[r].reshape(-1)) for r in ranks)
    result = np.broadcast_to(result, full)
    if e.reduced_ranks:
        result = _REDUCE[e.reduce_op](result, axis=tuple(range(n_out, nd)))
    _finish(e, values, grid, result)


def _gather(array: np.ndarray, access: Access, grid: Mapping[str, np.ndarray], nd: int) -> np.ndarray:
    """Read ``array`` through the access's index expressions; the result has ``nd`` axes."""
    if not access.index:
        return np.asarray(array).reshape((1,) * nd)
    index = tuple(np.asarray(expr.evaluate(grid)) for expr in access.index)
    result = array[index]  # all indices constant: a 0-d result, given nd unit axes below
    return result if result.ndim == nd else result.reshape((1,) * nd)


def _finish(
    e: Einsum, values: dict[str, np.ndarray], grid: Mapping[str, np.ndarray], result: np.ndarray
) -> None:
    """Apply the unary ops and scatter into the output tensor."""
    for u in e.unary:
        result = _UNARY[u.op](result, u.arg)
    n_out = len(e.output_ranks)
    out_grid = {r: grid[r].reshape(grid[r].shape[:n_out]) for r in e.output_ranks}
    target = values[e.output.tensor]
    if not e.output.index:
        target[()] = np.asarray(result).reshape(())
        return
    index = tuple(np.asarray(expr.evaluate(out_grid)) for expr in e.output.index)
    target[index] = np.broadcast_to(result, np.broadcast_shapes(*(i.shape for i in index)))
