"""Turn what a user typed (preset names, paths, specs) into Architecture, Cascade and Mappings.

This is the only place that reads workload and mapping files, so their errors get the file and
line the same way the architecture loader's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim.errors import InputError


def resolve_arch(arch):
    """An Architecture from itself, a preset name, a YAML path or a SCALE-Sim .cfg path."""
    from arch import Architecture, load_arch

    return arch if isinstance(arch, Architecture) else load_arch(arch)


def _locate(err, file: str, lines: dict) -> str:
    """Prefix a path-carrying error with file:line (the deepest known line on its path)."""
    path = tuple(getattr(err, "path", None) or ())
    line = None
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            line = lines[path[:n]]
            break
    where = f"{file}:{line}" if line else file
    return f"{where}: {err}"


def _read_yaml(path: Path):
    from arch import load_yaml

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return load_yaml(path)


@dataclass(frozen=True)
class Segment:
    """One cascade to run: its name, how often it repeats, and which Einsums are lookups."""

    name: str
    cascade: object  # workloads.Cascade
    repeat: int = 1
    gathers: frozenset[str] = frozenset()  # Einsums that are lookups through a selection tensor
    selectors: frozenset[str] = frozenset()  # the 0/-inf selection tensors (indices in a real kernel)
    views: frozenset[str] = frozenset()  # copies a real kernel never makes (not simulated)


Segments = list[Segment]


def resolve_workload(workload, **lowering) -> Segments:
    """The cascades to run, as Segments: from a Cascade, a Program,
    ``gemm:M,N,K[:dtype]``, a cascade YAML, a topology CSV, or a model (zoo name, model YAML or
    Hugging Face config.json) lowered with ``lowering`` (phase, batch, seq, kv_len, attention, ...)."""
    from workloads import Cascade, Program, WorkloadError, gemms_from_list, parse_workload_spec

    given = sorted(k for k, v in lowering.items() if v is not None)
    if given and not _is_model(workload):
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        verb = "apply" if len(given) > 1 else "applies"
        raise InputError(f"{flags} {verb} only to models (zoo names or config.json), not to '{workload}'")
    if isinstance(workload, Cascade):
        return [Segment("", workload)]
    if isinstance(workload, Program):
        meta = workload.meta
        aux = frozenset(t for t, kind in meta.get("kinds", {}).items() if kind == "aux")
        return [Segment(s.name, s.cascade, s.repeat, frozenset(meta.get("gathers", {}).get(s.name, ())), aux,
                        frozenset(meta.get("views", {}).get(s.name, ()))) for s in workload.segments]
    text = str(workload)
    path = Path(text)
    if text.startswith("gemm:"):
        return [Segment("", parse_workload_spec(text))]
    if path.suffix in (".yaml", ".yml"):
        data, lines = _read_yaml(path)
        if not (isinstance(data, dict) and "einsums" in data):
            return resolve_workload(lower_model(text, **lowering))
        try:
            return [Segment("", Cascade.from_dict(data))]
        except WorkloadError as err:
            raise InputError(_locate(err, str(path), lines)) from None
    if path.suffix == ".csv":
        from arch.scalesim import read_topology_csv

        if not path.is_file():
            raise InputError(f"{path}: no such file")
        return [Segment("", gemms_from_list(read_topology_csv(path), name=path.stem))]
    if ":" in text:
        return [Segment("", parse_workload_spec(text))]
    return resolve_workload(lower_model(text, **lowering))


def _is_model(workload) -> bool:
    """Whether ``workload`` names a model to lower (not a Cascade, Program, spec, CSV or cascade YAML)."""
    if not isinstance(workload, (str, Path)):
        return False
    text = str(workload)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data, _ = _read_yaml(path)
        return not (isinstance(data, dict) and "einsums" in data)
    return path.suffix not in (".csv", ".yaml", ".yml") and ":" not in text


def lower_model(name_or_path: str, *, phase: str | None = None, batch: int | None = None, seq: int | None = None,
                kv_len: int | None = None, **options):
    """Lower a zoo model or config file to a Program; phase defaults to encoder for
    bidirectional models and prefill otherwise, seq to the model's context length and kv_len
    to what fits beside the new tokens (workloads.lower's default)."""
    from workloads.zoo import load_model

    cfg = load_model(name_or_path)
    from workloads import lower

    phase = phase or ("prefill" if cfg.causal else "encoder")
    if phase in ("prefill", "encoder") and seq is None:
        seq = cfg.max_seq
    options = {k: v for k, v in options.items() if v is not None}
    return lower(cfg, phase, batch=batch or 1, seq=seq, kv_len=kv_len, **options)


def resolve_mappings(mappings) -> dict:
    """{einsum name: Mapping} from None, a Mapping, a dict of them, or a mapping YAML path
    (one mapping, or a list of them)."""
    from mappers import MappingError, mapping_from_dict
    from mappers.mapping import Mapping

    if mappings is None:
        return {}
    if isinstance(mappings, Mapping):
        return {mappings.einsum: mappings}
    if isinstance(mappings, dict):
        return dict(mappings)
    path = Path(mappings)
    data, lines = _read_yaml(path)
    items = data if isinstance(data, list) else [data]
    out = {}
    for i, item in enumerate(items):
        try:
            m = mapping_from_dict(item)
        except MappingError as err:
            line = lines.get((i,) if isinstance(data, list) else ())
            raise InputError(f"{path}:{line}: {err}" if line else f"{path}: {err}") from None
        out[m.einsum] = m
    return out
