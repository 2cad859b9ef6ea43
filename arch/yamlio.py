"""Safe YAML reading that keeps line numbers and refuses duplicate keys.

PyYAML silently keeps the last of two equal keys and forgets where each value came from; the
architecture, cascade and mapping files all need both (a clear error for ``rows:`` given twice,
and ``file:line`` in every validation message). Generic: imports nothing from einsim.
"""

from __future__ import annotations

from pathlib import Path

import yaml

Key = str | int
LineMap = dict[tuple, int]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _dotted(path: tuple) -> str:
    """('compute', 0, 'rows') -> 'compute[0].rows'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlError(ValueError):
    """Unreadable YAML (syntax error, duplicate key); ``str()`` is ``file:line: path: problem``."""

    def __init__(self, problem: str, *, file: str | None = None, line: int | None = None, path: tuple = ()) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "")
        parts = [p for p in (where, _dotted(self.path)) if p]
        return ": ".join(parts + [self.problem])

    def __reduce__(self):  # keep the location across pickling
        return _rebuild_yaml_error, (self.problem, self.file, self.line, self.path)


def _rebuild_yaml_error(problem: str, file: str | None, line: int | None, path: tuple) -> YamlError:
    return YamlError(problem, file=file, line=line, path=path)


def load_yaml(path: str | Path) -> tuple[object, LineMap]:
    """Read a YAML file: (plain data, {key path: 1-based line}); OSError if it cannot be read."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlError(f"not UTF-8 text (byte {e.start})", file=str(path)) from None
    return load_yaml_text(text, name=str(path))


def load_yaml_text(text: str, name: str = "<string>") -> tuple[object, LineMap]:
    """Parse YAML text safely: (plain data, {key path: 1-based line}); YamlError if malformed."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: LineMap = {(): node.start_mark.line + 1}
        _walk(loader, node, (), lines, name, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = ": ".join(str(p).strip() for p in (e.context, e.problem) if p) or "invalid YAML"
        raise YamlError(f"invalid YAML: {problem}", file=name, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {' '.join(str(e).split())}", file=name) from None
    finally:
        loader.dispose()
    return data, lines


def _walk(loader, node: yaml.Node, path: tuple, lines: LineMap, name: str, active: set[int]) -> None:
    """Record the line of every mapping key and list item under ``node``; refuse duplicate keys."""
    if id(node) in active:  # a recursive alias; its lines are already recorded
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else []
            try:
                hash(key)
            except TypeError:  # a list or mapping used as a key: name it by its line
                key = f"<key at line {line}>"
            if key in first_line:
                raise YamlError(
                    f"duplicate key '{key}' (first given at line {first_line[key]})",
                    file=name, line=line, path=path + (key,),
                )
            first_line[key] = line
            lines[path + (key,)] = line
            _walk(loader, value_node, path + (key,), lines, name, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(loader, item, path + (i,), lines, name, active)
    active.discard(id(node))
