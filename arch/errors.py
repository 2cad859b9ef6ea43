"""ArchError: one-line errors that say which file, line and key of an architecture is wrong."""

from __future__ import annotations

import functools

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    """A key path as users write it: ('memories', 1, 'capacity') -> 'memories[1].capacity'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_location(file: str | None, line: int | None, path: str | None) -> str:
    """'file:line: path' with the unknown parts left out ('' when nothing is known)."""
    where = f"{file}:{line}" if file and line else (file or (f"line {line}" if line else ""))
    return ": ".join(p for p in (where, path) if p)


class ArchError(ValueError):
    """A bad architecture: ``str()`` is one line, ``file:line: dotted.path: problem``.

    ``path`` may be given as a dotted string or as a key tuple (kept in ``loc``); the schema's
    validators raise it with a tuple relative to the model, and the loader turns that into the
    full path and the line number.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: str | Loc | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.loc: Loc | None = path if isinstance(path, tuple) else None
        self.path: str | None = dotted(path) if isinstance(path, tuple) else path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = format_location(self.file, self.line, self.path or None)
        return f"{where}: {self.problem}" if where else self.problem

    def __reduce__(self):  # keep file/line/path across pickling (process-pool sweeps)
        kwargs = {"file": self.file, "line": self.line, "path": self.loc if self.loc is not None else self.path}
        return functools.partial(type(self), **kwargs), (self.problem,)
