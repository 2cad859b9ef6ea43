"""Turn what a user typed (preset names, paths, specs) into Architecture, Cascade and Mappings.

This is the only place that reads workload and mapping files, so their errors get the file and
line the same way the architecture loader's do.
"""

from __future__ import annotations

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


def resolve_workload(workload):
    """A Cascade from itself, ``gemm:M,N,K[:dtype]``, a cascade YAML or a topology CSV."""
    from workloads import Cascade, WorkloadError, gemms_from_list, parse_workload_spec

    if isinstance(workload, Cascade):
        return workload
    text = str(workload)
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        data, lines = _read_yaml(path)
        try:
            return Cascade.from_dict(data)
        except WorkloadError as err:
            raise InputError(_locate(err, str(path), lines)) from None
    if path.suffix == ".csv":
        from arch.scalesim import read_topology_csv

        if not path.is_file():
            raise InputError(f"{path}: no such file")
        layers = read_topology_csv(path)
        return gemms_from_list(layers, name=path.stem)
    if ":" not in text and not path.exists():
        raise InputError(f"unknown workload '{text}': expected gemm:M,N,K, a cascade .yaml or a topology .csv")
    return parse_workload_spec(text)


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
