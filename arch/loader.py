"""Load an Architecture from a preset name, a YAML file or a SCALE-Sim .cfg, with file:line errors.

pydantic reports where a value is wrong as a key path; the YAML line map turns that path into
``file:line``, so a user sees one line such as
``my.yaml:12: compute[0].rowz: unknown key 'rowz', did you mean 'rows'?``.
"""

from __future__ import annotations

import difflib
import re
import types
from importlib import resources
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from arch.errors import ArchError, Loc, dotted
from arch.schema import Architecture
from arch.yamlio import LineMap, YamlError, load_yaml_text

_YAML_SUFFIXES = (".yaml", ".yml")


def _presets_dir():
    """The folder of preset YAML files shipped inside the package."""
    return resources.files("arch").joinpath("presets")


def list_presets(folder: str = "presets") -> list[tuple[str, str]]:
    """(name, description) of every shipped preset in ``arch/<folder>`` (GPUs: "gpus"), sorted by name."""
    out = []
    for entry in resources.files("arch").joinpath(folder).iterdir():
        if entry.name.endswith(".yaml") and entry.is_file():
            data, _ = load_yaml_text(entry.read_text(encoding="utf-8"), name=entry.name)
            description = data.get("description", "") if isinstance(data, dict) else ""
            out.append((entry.name[: -len(".yaml")], " ".join(str(description).split())))
    return sorted(out)


def load_arch(source: str | Path) -> Architecture:
    """The Architecture named by a preset name, a .yaml/.yml path or a SCALE-Sim .cfg path."""
    if isinstance(source, Architecture):
        return source
    text, path = str(source), Path(source)
    suffix = path.suffix.lower()
    looks_like_path = isinstance(source, Path) or suffix in (*_YAML_SUFFIXES, ".cfg") or "/" in text or "\\" in text
    if not looks_like_path:
        preset = _presets_dir().joinpath(f"{text}.yaml")
        if text and preset.is_file():
            return _load_yaml_text_file(preset.read_text(encoding="utf-8"), str(preset))
        if not path.exists():
            raise _unknown_preset(text)
    if not path.exists():
        raise ArchError("no such file", file=text)
    if not path.is_file():
        raise ArchError("not a file", file=text)
    if suffix in _YAML_SUFFIXES:
        try:
            content = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise ArchError(f"cannot read: {e}", file=text) from None
        return _load_yaml_text_file(content, text)
    if suffix == ".cfg":
        from arch.scalesim import load_scalesim_cfg

        return load_scalesim_cfg(path)
    raise ArchError("unsupported file type; give an architecture .yaml/.yml or a SCALE-Sim .cfg", file=text)


def load_preset_model(source, folder: str, model: type[BaseModel], what: str):
    """A ``model`` validated from preset ``arch/<folder>/<source>.yaml`` or from the YAML file
    ``source``; every problem is a one-line ArchError with ``file:line`` (what: "GPU", "DRAM", ...)."""
    if isinstance(source, model):
        return source
    text = str(source)
    preset = resources.files("arch").joinpath(folder, f"{text}.yaml")
    if preset.is_file():
        content, file = preset.read_text(encoding="utf-8"), str(preset)
    elif Path(text).is_file():
        try:
            content, file = Path(text).read_text(encoding="utf-8-sig"), text
        except (OSError, UnicodeDecodeError) as e:
            raise ArchError(f"cannot read: {e}", file=text) from None
    else:
        names = ", ".join(n for n, _ in list_presets(folder))
        raise ArchError(f"unknown {what} preset '{text}'; available: {names} (or give a path to a .yaml)")
    try:
        data, lines = load_yaml_text(content, name=file)
    except YamlError as e:
        raise ArchError(e.problem, file=e.file, line=e.line) from None
    if not isinstance(data, dict):
        raise ArchError(f"a {what} preset must be a mapping", file=file, line=lines.get(()))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _to_arch_error(e, file, lines, model) from None


def _unknown_preset(name: str) -> ArchError:
    """The error for a name that is neither a preset nor a file, listing the presets."""
    names = [n for n, _ in list_presets()]
    close = [n for n in names if name and name.lower() in n.lower()] or difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ArchError(
        f"unknown architecture preset '{name}'{hint}; available: {', '.join(names)} "
        "(or give a path to a .yaml or SCALE-Sim .cfg file)"
    )


def _load_yaml_text_file(content: str, file: str) -> Architecture:
    """Parse YAML text read from ``file`` and validate it, turning YamlError into ArchError."""
    try:
        data, lines = load_yaml_text(content, name=file)
    except YamlError as e:
        raise ArchError(e.problem, file=e.file, line=e.line, path=dotted(e.path) or None) from None
    return arch_from_dict(data, file=file, lines=lines)


def arch_from_dict(data: object, file: str | None = None, lines: LineMap | None = None) -> Architecture:
    """Validate plain data as an Architecture; the first problem becomes a one-line ArchError."""
    lines = lines or {}
    if not isinstance(data, dict):
        kind = "an empty document" if data is None else f"a {type(data).__name__}"
        raise ArchError(
            f"an architecture must be a mapping with keys name, clocks, memories, compute; got {kind}",
            file=file, line=lines.get(()),
        )
    try:
        return Architecture.model_validate(data)
    except ValidationError as e:
        raise _to_arch_error(e, file, lines) from None


def _to_arch_error(e: ValidationError, file: str | None, lines: LineMap, root: type[BaseModel] = Architecture) -> ArchError:
    """The first pydantic error as an ArchError with dotted path, line and a cleaned message.

    Unknown keys come first: a misspelt key also shows up as a missing one, and the unknown
    key is the one the user has to fix.
    """
    errors = e.errors()
    return _one_error(next((x for x in errors if x["type"] == "extra_forbidden"), errors[0]), file, lines, root)


def validate_arch_file(source: str | Path) -> list[ArchError]:
    """Every problem of an architecture file (not just the first), in file order; [] if valid."""
    path = Path(source)
    try:
        data, lines = load_yaml_text(path.read_text(encoding="utf-8-sig"), name=str(path))
    except OSError as e:
        return [ArchError(f"cannot read: {e.strerror or e}", file=str(path))]
    except YamlError as e:
        return [ArchError(e.problem, file=e.file, line=e.line, path=dotted(e.path) or None)]
    try:
        arch_from_dict(data, file=str(path), lines=lines)
    except ArchError as first:
        if not isinstance(data, dict):
            return [first]
        try:
            Architecture.model_validate(data)
        except ValidationError as e:
            errs = e.errors()
            inner = [tuple(x["loc"]) for x in errs]
            # a list whose items failed is also reported too short: keep only the item errors
            errs = [x for x in errs if not (x["type"] == "too_short" and any(
                len(loc) > len(x["loc"]) and loc[:len(x["loc"])] == tuple(x["loc"]) for loc in inner))]
            found = [_one_error(err, str(path), lines) for err in errs]
            unique = {str(x): x for x in found}  # a misspelt key also reports its missing twin
            return sorted(unique.values(), key=lambda x: (x.line or 0, str(x)))
        return [first]
    return []


def _one_error(err: dict, file: str | None, lines: LineMap, root: type[BaseModel] = Architecture) -> ArchError:
    """One pydantic error as an ArchError with dotted path, line and a cleaned message (``root``: the schema validated)."""
    raw_loc: Loc = tuple(err["loc"])
    loc: Loc = tuple(p for p in raw_loc if p != "[key]")
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, ArchError):
        loc, problem = loc + (inner.loc or ()), inner.problem
    elif err["type"] == "extra_forbidden":
        problem = f"unknown key '{loc[-1]}'" + _suggestion(loc[:-1], str(loc[-1]), root)
    elif err["type"] == "missing":
        problem = f"missing required key '{loc[-1]}'"
    elif raw_loc and raw_loc[-1] == "[key]":
        problem = f"bad key '{loc[-1]}': {_clean(err)}"
    else:
        problem = _clean(err)
    return ArchError(problem, file=file, line=_line_of(loc, lines), path=dotted(loc) or None)


def _line_of(loc: Loc, lines: LineMap) -> int | None:
    """The line of ``loc``, or of its nearest ancestor that the file spells out."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean(err: dict) -> str:
    """pydantic's message without its prefixes, phrased as 'must be ...', with the bad value."""
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    msg = re.sub(r"^\w+ should ", "must ", msg).replace(" after validation", "")
    value = err.get("input")
    if err["type"] in ("too_short", "too_long"):
        return msg
    if isinstance(value, (str, int, float, bool)) or value is None:
        msg += f" ({value!r})" if ", got " in msg else f", got {value!r}"
    elif isinstance(value, (dict, list, tuple)):
        msg += f", got a {'mapping' if isinstance(value, dict) else 'list'}"
    return msg


def _suggestion(parent: Loc, key: str, root: type[BaseModel] = Architecture) -> str:
    """', did you mean ...?' naming the closest valid key at ``parent``, or ''."""
    model = _model_at(parent, root)
    if model is None:
        return ""
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return f", did you mean '{close[0]}'?" if close else ""


def _model_at(loc: Loc, root: type[BaseModel] = Architecture) -> type[BaseModel] | None:
    """The schema model whose keys are valid at ``loc`` (e.g. ComputeArray at compute[0])."""
    model: type[BaseModel] | None = root
    skip = 0
    for part in loc:
        if skip:  # a list index or dict key inside a container field
            skip -= 1
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model, skip = _inner_model(model.model_fields[part].annotation)
    return model if skip == 0 else None


def _inner_model(ann: object) -> tuple[type[BaseModel] | None, int]:
    """The model inside an annotation and how many container levels wrap it."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, 0
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        return _inner_model(args[0])
    if origin in (Union, types.UnionType):
        for arg in args:
            found = _inner_model(arg)
            if found[0] is not None:
                return found
        return None, 0
    if origin in (tuple, list, dict) and args:
        model, depth = _inner_model(args[-1] if origin is dict else args[0])
        return (model, depth + 1) if model is not None else (None, 0)
    return None, 0
