"""Import SCALE-Sim inputs: a ``.cfg`` becomes an Architecture, a topology CSV a list of GEMMs.

So a SCALE-Sim user can run their existing configs unchanged and compare cycle counts. Facts
about the formats are in shared/reference/systolic.md; where SCALE-Sim leaves a choice open the
choice is stated in the ``sources`` of the Architecture this module builds.
"""

from __future__ import annotations

import re
from pathlib import Path

from arch.errors import ArchError
from arch.loader import arch_from_dict
from arch.schema import Architecture
from arch.units import Bandwidth

# SCALE-Sim's "kB" is k words of one byte, and its memory system multiplies by 1024
# (ifmap_buf_size_bytes = 1024 * ifmap_buf_size_kb in scalesim's single_layer_sim / scale-sim-v2).
KB = 1024
_INLINE_COMMENT = re.compile(r"(^|\s)[;#].*$")

Ini = dict[str, dict[str, tuple[str, int]]]  # section -> lower-case key -> (value, line)


def _read_text(path: Path) -> str:
    """The file's text, or an ArchError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ArchError("no such file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ArchError(f"cannot read: {e}", file=str(path)) from None


def parse_ini(text: str, file: str) -> tuple[Ini, dict[str, int]]:
    """SCALE-Sim's INI: case-insensitive sections and keys, ``key: value`` or ``key = value``,
    ``;``/``#`` comments (inline after whitespace). Returns (sections, section header lines)."""
    sections: Ini = {}
    headers: dict[str, int] = {}
    current: dict[str, tuple[str, int]] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _INLINE_COMMENT.sub("", raw).strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ArchError(f"bad section header {line!r}; expected '[name]'", file=file, line=lineno)
            name = line[1:-1].strip().lower()
            if name in sections:
                raise ArchError(f"duplicate section [{name}] (first at line {headers[name]})", file=file, line=lineno)
            current, headers[name] = sections.setdefault(name, {}), lineno
            continue
        cut = min((i for i in (line.find(":"), line.find("=")) if i >= 0), default=-1)
        if cut <= 0:
            raise ArchError(f"expected 'key: value', got {line!r}", file=file, line=lineno)
        if current is None:
            raise ArchError(f"key outside any [section]: {line!r}", file=file, line=lineno)
        key, value = line[:cut].strip(), line[cut + 1 :].strip()
        if key.lower() in current:
            raise ArchError(f"duplicate key '{key}' (first at line {current[key.lower()][1]})", file=file, line=lineno,
                            path=f"{_section_of(sections, current)}.{key}")
        current[key.lower()] = (value, lineno)
    return sections, headers


def _section_of(sections: Ini, current: dict) -> str:
    return next(name for name, body in sections.items() if body is current)


class _Cfg:
    """Typed access to a parsed cfg, raising ArchError with file, line and section.Key."""

    def __init__(self, sections: Ini, headers: dict[str, int], file: str) -> None:
        self.sections, self.headers, self.file = sections, headers, file

    def has(self, section: str, key: str) -> bool:
        return key.lower() in self.sections.get(section, {})

    def raw(self, section: str, key: str) -> tuple[str, int]:
        body = self.sections.get(section)
        if body is None:
            raise ArchError(f"missing section [{section}]", file=self.file)
        if key.lower() not in body:
            raise ArchError("missing key", file=self.file, line=self.headers[section], path=f"{section}.{key}")
        return body[key.lower()]

    def line(self, section: str, key: str) -> int:
        return self.raw(section, key)[1]

    def error(self, section: str, key: str, problem: str) -> ArchError:
        return ArchError(problem, file=self.file, line=self.line(section, key), path=f"{section}.{key}")

    def positive_int(self, section: str, key: str) -> int:
        value, _ = self.raw(section, key)
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n <= 0:
            raise self.error(section, key, f"must be a positive integer, got {value!r}")
        return n

    def positive_number(self, section: str, key: str) -> float:
        value, _ = self.raw(section, key)
        try:
            x = float(value)
        except ValueError:
            x = 0.0
        if not x > 0 or x == float("inf"):
            raise self.error(section, key, f"must be a positive number, got {value!r}")
        return x

    def choice(self, section: str, key: str, options: tuple[str, ...]) -> str:
        value, _ = self.raw(section, key)
        if value.strip().lower() not in options:
            raise self.error(section, key, f"must be one of {', '.join(options)}, got {value!r}")
        return value.strip().lower()

    def where(self, section: str, key: str) -> str:
        return f"{self.file}:{self.line(section, key)} {key}"


def load_scalesim_cfg(path: str | Path) -> Architecture:
    """An Architecture equivalent to a SCALE-Sim (v2 or v3) ``.cfg`` file."""
    path = Path(path)
    file = str(path)
    cfg = _Cfg(*parse_ini(_read_text(path), file), file)
    ap = "architecture_presets"
    rows, cols = cfg.positive_int(ap, "ArrayHeight"), cfg.positive_int(ap, "ArrayWidth")
    dataflow = cfg.choice(ap, "Dataflow", ("os", "ws", "is"))
    sizes = {role: cfg.positive_int(ap, key) * KB
             for role, key in (("input", "IfmapSramSzkB"), ("weight", "FilterSramSzkB"), ("output", "OfmapSramSzkB"))}
    mode = cfg.choice("run_presets", "InterfaceBandwidth", ("user", "calc"))
    name = cfg.raw("general", "run_name")[0].strip("\"' ") if cfg.has("general", "run_name") else path.stem

    sources = {
        "clocks.core": "assumed: SCALE-Sim has no clock; cycles are exact, seconds assume 1 GHz",
        "compute[0].rows": cfg.where(ap, "ArrayHeight"),
        "compute[0].cols": cfg.where(ap, "ArrayWidth"),
        "compute[0].dataflow": cfg.where(ap, "Dataflow"),
        "compute[0].ops": "assumed: SCALE-Sim models one MAC per PE per cycle and no energy",
        "compute[0].overlap_folds": "SCALE-Sim runs folds back to back (shared/reference/systolic.md)",
        "memories[0]": "SCALE-Sim's DRAM: unbounded, 1-byte words, a separate channel per operand, no energy",
        "memories[1]": "SCALE-Sim's double-buffered SRAMs, one per operand; 1-byte words; it feeds the array "
                       "every cycle, so reads are unbounded; no energy",
        "memories[1].capacity": "sum of the three partitions",
    }
    for role, key in (("input", "IfmapSramSzkB"), ("weight", "FilterSramSzkB"), ("output", "OfmapSramSzkB")):
        sources[f"memories[1].partitions.{role}"] = f"{cfg.where(ap, key)} x 1024 B (SCALE-Sim's kB is 1024 one-byte words)"

    if mode == "calc":
        bandwidths: dict[str, float | None] = {"input": None, "weight": None, "output": None}
        for i in range(3):
            sources[f"memories[0].ports[{i}].bandwidth"] = (
                f"{cfg.where('run_presets', 'InterfaceBandwidth')} = CALC: SCALE-Sim sizes DRAM bandwidth to "
                "avoid read stalls, modelled as unbounded")
    elif "layout" in cfg.sections:  # v3: per-operand read bandwidths live in [layout]
        bandwidths = {"input": cfg.positive_number("layout", "IfmapSRAMBankBandwidth"),
                      "weight": cfg.positive_number("layout", "FilterSRAMBankBandwidth"),
                      "output": cfg.positive_number(ap, "Bandwidth")}
        sources["memories[0].ports[0].bandwidth"] = f"{cfg.where('layout', 'IfmapSRAMBankBandwidth')} (USER: ifmap DRAM words/cycle)"
        sources["memories[0].ports[1].bandwidth"] = f"{cfg.where('layout', 'FilterSRAMBankBandwidth')} (USER: filter DRAM words/cycle)"
        sources["memories[0].ports[2].bandwidth"] = f"{cfg.where(ap, 'Bandwidth')} (USER: ofmap DRAM words/cycle)"
    else:  # v2 files have no [layout]; SCALE-Sim 2 uses Bandwidth for all three operands
        bw = cfg.positive_number(ap, "Bandwidth")
        bandwidths = {"input": bw, "weight": bw, "output": bw}
        for i in range(3):
            sources[f"memories[0].ports[{i}].bandwidth"] = (
                f"{cfg.where(ap, 'Bandwidth')} (v2 file without [layout]: SCALE-Sim 2 uses Bandwidth for every operand)")

    def port(name: str, role: str, direction: str) -> dict:
        bw = bandwidths[role]
        return {"name": name, "roles": [role], "direction": direction,
                "bandwidth": "unbounded" if bw is None else Bandwidth(bw, "cycle")}

    # The ofmap channel also serves reads: SCALE-Sim never reads outputs back from DRAM, but a
    # mapping that spills partial sums does, and it needs a port to do so.
    sources["memories[0].ports"] = ("one channel per operand as in SCALE-Sim; ifmap and filter read, ofmap "
                                    "written (and read back only by mappings that spill partial sums)")
    data = {
        "name": name,
        "description": f"Imported from SCALE-Sim config {path.name}: {rows}x{cols} {dataflow} array, "
                       f"{sum(sizes.values()) // KB} kB SRAM, InterfaceBandwidth {mode.upper()}",
        "clocks": {"core": "1 GHz"},
        "memories": [
            {"name": "dram", "capacity": "unbounded", "word_bits": 8, "double_buffered": True,
             "ports": [port("ifmap", "input", "read"), port("filter", "weight", "read"), port("ofmap", "output", "both")]},
            {"name": "sram", "capacity": f"{sum(sizes.values())} B", "word_bits": 8, "double_buffered": True,
             "partitions": {role: f"{size} B" for role, size in sizes.items()},
             "ports": [{"name": "rw", "bandwidth": "unbounded", "direction": "both"}]},
        ],
        "compute": [{"name": "array", "rows": rows, "cols": cols, "dataflow": dataflow, "clock": "core",
                     "overlap_folds": False}],
        "sources": sources,
    }
    return arch_from_dict(data, file=file)


# --- topology CSVs -----------------------------------------------------------------------------

_GEMM_COLUMNS = {"layer": "name", "layer name": "name", "m": "M", "n": "N", "k": "K"}
_CONV_COLUMNS = {
    "layer": "name", "layer name": "name", "ifmap height": "H", "ifmap width": "W",
    "filter height": "R", "filter width": "S", "channels": "C", "num filter": "F", "num filters": "F",
    "strides": "stride", "stride": "stride", "stride height": "stride_h", "stride width": "stride_w",
}


def _fields(line: str) -> list[str]:
    """Comma-separated fields, stripped, without the trailing empty field(s) SCALE-Sim writes."""
    fields = [f.strip() for f in line.split(",")]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def read_topology_csv(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(name, M, N, K) per layer of a SCALE-Sim GEMM or convolution topology CSV (conv via im2col)."""
    path = Path(path)
    file = str(path)
    lines = _read_text(path).splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise ArchError("empty topology file; expected a header such as 'Layer, M, N, K,'", file=file)
    head_line, head = numbered[0]
    header = [h.lower() for h in _fields(head)]
    if set(header) >= {"m", "n", "k"}:
        table, kind = _GEMM_COLUMNS, "gemm"
    elif "ifmap height" in header:
        table, kind = _CONV_COLUMNS, "conv"
    else:
        raise ArchError(f"unrecognised header {head.strip()!r}; expected 'Layer, M, N, K,' or 'Layer name, "
                        "IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,'",
                        file=file, line=head_line)
    columns = []
    for h in header:
        if h not in table:
            raise ArchError(f"column '{h}' is not supported in a {kind} topology (known: {', '.join(sorted(table))})",
                            file=file, line=head_line)
        columns.append(table[h])
    out = []
    for lineno, line in numbered[1:]:
        fields = _fields(line)
        if len(fields) != len(columns):
            raise ArchError(f"row has {len(fields)} values, the header has {len(columns)}", file=file, line=lineno)
        row: dict[str, object] = {}
        for col, value in zip(columns, fields):
            if col == "name":
                row[col] = value
                continue
            try:
                row[col] = int(value)
            except ValueError:
                row[col] = 0
            if row[col] <= 0:  # type: ignore[operator]
                raise ArchError(f"{col} must be a positive integer, got {value!r}", file=file, line=lineno)
        out.append(_gemm(row) if kind == "gemm" else _conv(row, file, lineno))
    return out


def _gemm(row: dict) -> tuple[str, int, int, int]:
    return row["name"], row["M"], row["N"], row["K"]


def _conv(row: dict, file: str, line: int) -> tuple[str, int, int, int]:
    """im2col of one conv layer, no padding: M = output pixels, N = filters, K = R·S·C."""
    name = row["name"]
    if "DP" in name:
        raise ArchError(f"layer '{name}': depthwise layers are not supported yet", file=file, line=line)
    missing = [c for c in ("H", "W", "R", "S", "C", "F") if c not in row]
    stride_h = row.get("stride_h", row.get("stride"))
    stride_w = row.get("stride_w", row.get("stride"))
    if missing or stride_h is None or stride_w is None:
        raise ArchError(f"convolution topology lacks columns {missing or ['Strides']}", file=file, line=line)
    h, w, r, s, c, f = (row[k] for k in ("H", "W", "R", "S", "C", "F"))
    if r > h or s > w:
        raise ArchError(f"layer '{name}': filter {r}x{s} is larger than the ifmap {h}x{w}", file=file, line=line)
    m = ((h - r) // stride_h + 1) * ((w - s) // stride_w + 1)
    return name, m, f, r * s * c
