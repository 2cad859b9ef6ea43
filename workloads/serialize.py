"""The plain-dict (YAML-ready) form of a Cascade, and reading it back with located errors.

Form::

    name: attention
    ranks: {m: 1024, m1: 4, m0: 256}
    iterative: {m1: 4}                      # optional
    tensors:
      RM: {ranks: [m1, p], dtype: fp16, initial: -.inf}   # dtype, initial optional
    einsums:
      - {name: C, out: "C[m,n]", in: ["A[m,k]", "B[k,n]"], map: mul, reduce: sum,
         unary: [exp, {op: scale, arg: 0.125}]}          # map, reduce, unary optional

Every error is a WorkloadError whose ``path`` is the key path of the offending value.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from workloads.cascade import Cascade
from workloads.ir import Access, Einsum, Tensor, Unary, WorkloadError

_TOP_KEYS = {"name": True, "ranks": True, "tensors": True, "einsums": True, "iterative": False}
_TENSOR_KEYS = {"ranks": True, "dtype": False, "initial": False}
_EINSUM_KEYS = {"name": True, "out": True, "in": True, "map": False, "reduce": False, "unary": False}
_UNARY_KEYS = {"op": True, "arg": False}


def cascade_to_dict(cascade: Cascade) -> dict[str, Any]:
    """The plain-dict form of ``cascade`` (optional keys left out when they hold defaults)."""
    d: dict[str, Any] = {"name": cascade.name, "ranks": dict(cascade.ranks)}
    if cascade.iterative:
        d["iterative"] = dict(cascade.iterative)
    tensors: dict[str, Any] = {}
    for t in cascade.tensors:
        td: dict[str, Any] = {"ranks": list(t.ranks), "dtype": t.dtype}
        if t.initial is not None:
            td["initial"] = t.initial
        tensors[t.name] = td
    d["tensors"] = tensors
    einsums = []
    for e in cascade.einsums:
        ed: dict[str, Any] = {"name": e.name, "out": str(e.output), "in": [str(a) for a in e.inputs]}
        if e.map_op is not None:
            ed["map"] = e.map_op
        if e.reduce_op is not None:
            ed["reduce"] = e.reduce_op
        if e.unary:
            ed["unary"] = [u.op if u.arg is None else {"op": u.op, "arg": u.arg} for u in e.unary]
        einsums.append(ed)
    d["einsums"] = einsums
    return d


def cascade_from_dict(d: Any) -> Cascade:
    """Build a Cascade from its plain-dict form; errors carry the ``path`` of the bad value."""
    _check_keys(d, _TOP_KEYS, (), "cascade")
    ranks = _mapping(d["ranks"], ("ranks",), "ranks")
    iterative = _mapping(d.get("iterative") or {}, ("iterative",), "iterative")

    tensors = []
    for name, spec in _mapping(d["tensors"], ("tensors",), "tensors").items():
        path = ("tensors", name)
        _check_keys(spec, _TENSOR_KEYS, path, f"tensor {name}")
        ranks_of = spec["ranks"]
        if isinstance(ranks_of, str) or not isinstance(ranks_of, Sequence):
            raise WorkloadError(f"tensor {name}: ranks must be a list of rank names", path + ("ranks",))
        initial = spec.get("initial")
        if isinstance(initial, str):  # accept "-inf", "inf", "0.5" written as text
            try:
                initial = float(initial)
            except ValueError:
                raise WorkloadError(
                    f"tensor {name}: initial must be a number, got {initial!r}", path + ("initial",)
                ) from None
        tensors.append(_located(path, Tensor, str(name), tuple(ranks_of), spec.get("dtype", "fp16"), initial))

    einsums_spec = d["einsums"]
    if isinstance(einsums_spec, (str, Mapping)) or not isinstance(einsums_spec, Sequence):
        raise WorkloadError("einsums must be a list", ("einsums",))
    einsums = [_einsum_from_dict(spec, i) for i, spec in enumerate(einsums_spec)]
    return Cascade(str(d["name"]), ranks, tensors, einsums, iterative or None)


def _einsum_from_dict(spec: Any, i: int) -> Einsum:
    path: tuple = ("einsums", i)
    _check_keys(spec, _EINSUM_KEYS, path, f"einsum #{i}")
    name = spec["name"]
    out = _located(path + ("out",), Access.parse, spec["out"])
    ins = spec["in"]
    if isinstance(ins, str):
        ins = [ins]
    if not isinstance(ins, Sequence):
        raise WorkloadError(f"einsum {name}: 'in' must be a list of accesses", path + ("in",))
    inputs = tuple(_located(path + ("in", j), Access.parse, a) for j, a in enumerate(ins))
    unary_spec = spec.get("unary") or []
    if isinstance(unary_spec, (str, Mapping)):
        unary_spec = [unary_spec]
    unary = []
    for j, u in enumerate(unary_spec):
        upath = path + ("unary", j)
        if isinstance(u, Mapping):
            _check_keys(u, _UNARY_KEYS, upath, "unary op")
            unary.append(_located(upath, Unary, u["op"], u.get("arg")))
        else:
            unary.append(_located(upath, Unary, u))
    for key in ("map", "reduce"):
        if key in spec and spec[key] is not None and not isinstance(spec[key], str):
            raise WorkloadError(f"einsum {name}: {key} must be an op name", path + (key,))
    where = _einsum_error_key(spec)
    return _located(
        path + where, Einsum, name, out, inputs, spec.get("map"), spec.get("reduce"), tuple(unary)
    )


def _einsum_error_key(spec: Mapping) -> tuple:
    """Best key to point at when the Einsum constructor rejects the combination of fields."""
    from workloads.ir import MAP_OPS, REDUCE_OPS

    if spec.get("map") is not None and spec["map"] not in MAP_OPS:
        return ("map",)
    if spec.get("reduce") is not None and spec["reduce"] not in REDUCE_OPS:
        return ("reduce",)
    return ()


def _located(path: tuple, make: Any, *args: Any) -> Any:
    """Call ``make(*args)``, re-raising a WorkloadError with ``path`` attached."""
    try:
        return make(*args)
    except WorkloadError as err:
        raise WorkloadError(err.message, path) from None


def _mapping(value: Any, path: tuple, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise WorkloadError(f"{what} must be a mapping, got {type(value).__name__}", path)
    return value


def _check_keys(value: Any, keys: Mapping[str, bool], path: tuple, what: str) -> None:
    """Reject a non-mapping, unknown keys (with a did-you-mean) and missing required keys."""
    _mapping(value, path, what)
    for key in value:
        if key not in keys:
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(keys)})"
            raise WorkloadError(f"{what}: unknown key {key!r}{hint}", path + (key,))
    for key, required in keys.items():
        if required and key not in value:
            raise WorkloadError(f"{what}: missing key {key!r}", path)
