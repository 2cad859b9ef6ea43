"""A sweep's output folder: OUT/results.sqlite (one row per design point and workload, every
parameter and metric a column), OUT/spec.yaml and OUT/mapping_cache.pkl.

Rows are written by one process only (the sweep's parent), one transaction each, in WAL mode,
so a killed sweep leaves every finished row intact and ``--resume`` runs only the missing ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sqlite3
from pathlib import Path

from sim.sweep_spec import METRICS, WORKLOAD_COLUMNS, SweepError, SweepSpec

RESULTS = "results.sqlite"
SPEC = "spec.yaml"
CACHE = "mapping_cache.pkl"
STATUSES = ("ok", "error", "skipped")

_FIXED = (("point_id", "TEXT PRIMARY KEY"), ("ord", "INTEGER"), ("point", "INTEGER"), ("workload_index", "INTEGER"),
          ("status", "TEXT"), ("error", "TEXT"), ("elapsed_s", "REAL"), ("feasible", "INTEGER"))
_PREFIXES = ("util.", "traffic.", "energy.", "ops.", "stall.", "area.")
_EXPORTS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _q(name: str) -> str:
    """A quoted SQL identifier (column names hold dots and colons)."""
    return '"' + name.replace('"', '""') + '"'


def _sql_value(v):
    """A value SQLite stores as given: numbers, text, NULL; numpy scalars and bools as Python numbers."""
    if v is None or isinstance(v, (str, float)):
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if hasattr(v, "item"):
        return v.item()
    return json.dumps(v, sort_keys=True, default=str)


class Store:
    """An open results database; ``write`` commits a batch of rows in one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.columns = self._columns()

    def _columns(self) -> list[str]:
        return [r[1] for r in self.conn.execute("PRAGMA table_info(results)")]

    @classmethod
    def open(cls, out: str | Path, spec: SweepSpec, *, resume: bool) -> "Store":
        """Create OUT's store for ``spec``, or reopen it to resume (refused when it holds another spec)."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SweepError(f"{out}: not a folder")
        db = out / RESULTS
        existed = db.exists()
        if existed and not resume:
            raise SweepError(f"{db} already holds a sweep; pass --resume to finish it, or choose another -o")
        out.mkdir(parents=True, exist_ok=True)
        store = cls(db)
        meta = store.meta() if store.columns else {}
        if meta:
            store._check_same(out, spec, meta)
        else:
            store._create(spec)
            (out / SPEC).write_text(spec.text, encoding="utf-8")
        return store

    def _check_same(self, out: Path, spec: SweepSpec, meta: dict) -> None:
        """Refuse to resume a store written for another spec, base architecture or einsim version."""
        if meta.get("version") != spec.version:
            raise SweepError(f"{out}: written by einsim {meta.get('version')}, this is {spec.version}; "
                             "finish it with that version, or choose another -o")
        old = json.loads(meta.get("spec", "{}"))
        if old != spec.data:
            keys = [k for k in dict.fromkeys([*old, *spec.data]) if old.get(k) != spec.data.get(k)]
            raise SweepError(f"{out / SPEC}: --resume with a different spec ({', '.join(keys)} differ); "
                             "give the same spec, or choose another -o")
        if meta.get("base_key") != spec.base_key:
            raise SweepError(f"{out / SPEC}: --resume after the base architecture '{spec.data.get('base')}' changed; "
                             "choose another -o")

    def _create(self, spec: SweepSpec) -> None:
        """The results and meta tables, with the columns every row has."""
        columns = [f"{_q(n)} {t}" for n, t in _FIXED]
        for p in spec.param_paths:
            columns += [_q(p), _q(f"{p}:text")]
        columns += [_q(c) for c in WORKLOAD_COLUMNS]
        area = list(spec.points[0].area) if spec.points else []
        columns += [_q(c) for c in (*METRICS, *area) if c not in ("area_mm2",) or area]
        meta = {"version": spec.version, "spec": json.dumps(spec.data, sort_keys=True), "base_key": spec.base_key,
                "params": json.dumps(list(spec.param_paths)), "objectives": json.dumps(list(spec.objectives)),
                "constraints": json.dumps([c.text for c in spec.constraints]), "source": spec.source}
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS results ({', '.join(dict.fromkeys(columns))})")
            self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(meta.items()))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.columns = self._columns()

    def meta(self) -> dict[str, str]:
        """The meta table ({} if there is none yet)."""
        try:
            return dict(self.conn.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError:
            return {}

    def finished(self) -> set[str]:
        """Point ids that have a row (ok, error or skipped): what a resume does not run again."""
        return {r[0] for r in self.conn.execute("SELECT point_id FROM results")}

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        got = dict(self.conn.execute("SELECT status, COUNT(*) FROM results GROUP BY status"))
        return {s: got.get(s, 0) for s in STATUSES}

    def write(self, rows: list[dict]) -> None:
        """Insert ``rows`` (adding any new column) in one committed transaction."""
        if not rows:
            return
        new = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in self.columns]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for c in new:
                self.conn.execute(f"ALTER TABLE results ADD COLUMN {_q(c)}")
            for r in rows:
                names = list(r)
                self.conn.execute(f"INSERT INTO results ({', '.join(map(_q, names))}) VALUES ({', '.join('?' * len(names))})",
                                  [_sql_value(r[n]) for n in names])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.columns += new

    def close(self) -> None:
        self.conn.close()


# --- reading -------------------------------------------------------------------------------------


def _db(out: str | Path) -> Path:
    db = Path(out) / RESULTS
    if not db.is_file():
        raise SweepError(f"{db}: no such file (run einsim sweep -o {out} first)")
    return db


def _ordered(columns: list[str], params: list[str]) -> list[str]:
    """A fixed column order: ids, parameters, workload, scalar metrics, prefixed metrics (sorted), bookkeeping."""
    head = ["point_id", "status", "error"]
    par = [c for p in params for c in (p, f"{p}:text") if c in columns]
    work = [c for c in WORKLOAD_COLUMNS if c in columns]
    scalars = [c for c in METRICS if c in columns]
    prefixed = sorted((c for c in columns if c.startswith(_PREFIXES)), key=lambda c: (_PREFIXES.index(c[:c.index(".") + 1]), c))
    tail = ["feasible", "elapsed_s", "ord", "point", "workload_index"]
    order = [*head, *par, *work, *scalars, *prefixed]
    rest = [c for c in columns if c not in order and c not in tail]
    return [*order, *rest, *(c for c in tail if c in columns)]


def load_results(out: str | Path, *, all: bool = False):  # noqa: A002 - the documented keyword
    """OUT's results as a pandas DataFrame in sweep order: ok rows, or every row with ``all=True``.

    ``df.attrs`` holds the sweep's ``params`` (axis and tied paths), ``objectives`` and ``constraints``.
    """
    import pandas as pd

    conn = sqlite3.connect(str(_db(out)), timeout=60)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        where = "" if all else " WHERE status = 'ok'"
        df = pd.read_sql_query(f"SELECT * FROM results{where} ORDER BY ord", conn)
    finally:
        conn.close()
    params = json.loads(meta.get("params", "[]"))
    df = df[_ordered(list(df.columns), params)]
    df.attrs.update(params=params, objectives=json.loads(meta.get("objectives", "[]")),
                    constraints=json.loads(meta.get("constraints", "[]")))
    return df


def export_format(path: str | Path) -> str:
    """'csv' or 'parquet' from a file name's suffix; SweepError for anything else."""
    fmt = _EXPORTS.get(Path(path).suffix.lower())
    if fmt is None:
        raise SweepError(f"{path}: unknown export format '{Path(path).suffix}'; use .csv or .parquet")
    return fmt


def export_results(out: str | Path, path: str | Path, *, all: bool = True) -> Path:  # noqa: A002
    """Write OUT's results (every row by default, with its status) to a .csv or .parquet file."""
    fmt = export_format(path)
    df = load_results(out, all=all)
    path = Path(path)
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        if importlib.util.find_spec("pyarrow") is None:
            raise SweepError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow)")
        df.to_parquet(path, index=False)
    return path


# --- the mapping cache ---------------------------------------------------------------------------


def load_cache(out: str | Path, version: str) -> dict:
    """OUT's saved mapping cache ({} when absent, unreadable or from another einsim version)."""
    path = Path(out) / CACHE
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != version or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def save_cache(out: str | Path, cache: dict, version: str) -> None:
    """Write the mapping cache to OUT atomically (a kill mid-write keeps the previous file)."""
    path = Path(out) / CACHE
    tmp = path.with_suffix(".pkl.tmp")
    with tmp.open("wb") as f:
        pickle.dump({"version": version, "entries": dict(cache)}, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
