"""Plots of runs and sweeps: Pareto fronts, rooflines, timelines and energy breakdowns.

Every plotting function returns its matplotlib Figure and saves it when given ``path``.
matplotlib is imported inside the functions (never at import time) and falls back to the Agg
backend when there is no display, so plots work in CI, over ssh and in Jupyter alike.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from sim.result import RunResult

KIND_COLORS = {"compute": "#4c72b0", "load": "#55a868", "store": "#dd8452"}


def _pyplot():
    """pyplot, switching to Agg first when no display exists and no backend was chosen."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    """Save ``fig`` to ``path`` (creating its folder) when a path is given; return it."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# ---------------------------------------------------------------- Pareto fronts


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """True for the rows of an (n, k) array that no other row dominates (all objectives minimised).

    Row a dominates row b when a <= b in every column and a < b in at least one; equal rows
    do not dominate each other, so duplicates on the front are all kept. Rows with a NaN or
    infinite value are never on the front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"pareto_mask needs an (n, k) array of objective values, got shape {v.shape}")
    mask = np.isfinite(v).all(axis=1)
    for i in np.argsort(v[:, 0], kind="stable") if len(v) else ():
        if not mask[i]:
            continue  # a dominated row's dominator (itself undominated) removes everything it would
        dominated = np.all(v[i] <= v, axis=1) & np.any(v[i] < v, axis=1)
        mask &= ~dominated
    return mask


def _check_objectives(df: pd.DataFrame, objectives: Sequence[str]) -> list[str]:
    """The objective columns as a list, refusing a count other than 2 or 3 and unknown names."""
    objectives = list(objectives)
    if len(objectives) not in (2, 3):
        raise ValueError(f"a Pareto front needs 2 or 3 objectives, got {len(objectives)}: {objectives}")
    for name in objectives:
        _check_column(df, name)
    return objectives


def _check_column(df: pd.DataFrame, name: str) -> None:
    """Refuse a column ``df`` lacks, naming the closest one (sweep tables have hundreds of columns)."""
    import difflib

    if name not in df.columns:
        columns = [str(c) for c in df.columns]
        close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else "columns: " + ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise ValueError(f"no column '{name}' in the results ({hint})")


def _feasible(df: pd.DataFrame) -> np.ndarray:
    """Rows that meet the sweep's constraints: a ``feasible`` column's truth (missing or NaN: feasible)."""
    if "feasible" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return df["feasible"].fillna(1).astype(bool).to_numpy()


def _finite_rows(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The rows whose objectives are all finite numbers (failed points carry NaN)."""
    import pandas as pd

    values = df[objectives].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return df[np.isfinite(values).all(axis=1)]


def pareto_front(df: pd.DataFrame, objectives: Sequence[str], by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The non-dominated rows of ``df`` (minimising every objective), per group of ``by`` if given.

    Group by the workload columns (e.g. ``by="model"``) when a sweep ran several workloads:
    a front that mixes workloads compares unlike things. Rows with non-finite objectives, and
    rows a sweep marked infeasible (``feasible`` 0: a constraint broken), are dropped; the
    result is sorted by the first objective.
    """
    objectives = _check_objectives(df, objectives)
    rows = _finite_rows(df, objectives)
    rows = rows[_feasible(rows)]
    if by is None or rows.empty:
        keep = pareto_mask(rows[objectives].to_numpy(dtype=float))
        return rows[keep].sort_values(objectives)
    import pandas as pd

    return pd.concat([pareto_front(group, objectives) for _, group in rows.groupby(by, sort=True, dropna=False)])


def _is_categorical(series: pd.Series) -> bool:
    """Whether a hue column names groups (strings, booleans) rather than a numeric scale."""
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def plot_pareto(df: pd.DataFrame, objectives: Sequence[str], path: str | Path | None = None, hue: str | None = None,
                *, log: bool = False, title: str | None = None) -> Figure:
    """Scatter of every row with its Pareto front highlighted (2 objectives: connected as a staircase; 3: a 3D scatter).

    ``hue``: a column to colour by. A categorical hue (e.g. ``model``) gets one front per group,
    since designs are only comparable on the same workload; a numeric hue (e.g.
    ``compute.mxu.rows``) colours points on a scale over a single front. ``log``: log axes.
    Rows a sweep marked infeasible (``feasible`` 0) are grey crosses, never on a front.
    """
    objectives = _check_objectives(df, objectives)
    if hue is not None:
        _check_column(df, hue)
    rows = _finite_rows(df, objectives)
    if rows.empty:
        raise ValueError(f"no rows with finite {', '.join(objectives)} to plot")
    three = len(objectives) == 3
    if log and (rows[objectives].to_numpy(dtype=float) <= 0).any():
        raise ValueError(f"log axes need positive {', '.join(objectives)}")
    if log and three:  # 3D axes have no log scale: plot log10 values (monotonic, so the front is unchanged)
        rows = rows.assign(**{o: np.log10(rows[o].to_numpy(dtype=float)) for o in objectives})
    plt = _pyplot()
    fig = plt.figure(figsize=(7.5, 6) if three else (7, 5))
    ax = fig.add_subplot(projection="3d") if three else fig.add_subplot()
    if three:
        ax.set_box_aspect(None, zoom=0.85)  # room for the axis labels
    feasible = _feasible(rows)
    if not feasible.any():
        raise ValueError(f"none of the {len(rows)} rows is feasible (every one breaks a constraint)")
    if not feasible.all():
        bad = rows[~feasible][objectives].to_numpy(dtype=float)
        ax.scatter(*[bad[:, i] for i in range(bad.shape[1])], marker="x", color="grey", s=20, alpha=0.6,
                   label=f"infeasible ({len(bad)})")
    rows = rows[feasible]
    categorical = hue is not None and _is_categorical(rows[hue])
    groups = list(rows.groupby(hue, sort=True, dropna=False)) if categorical else [(None, rows)]
    colors = plt.get_cmap("tab10").colors
    for n, (name, group) in enumerate(groups):
        color = colors[n % len(colors)] if categorical else "#4c72b0"
        _pareto_group(ax, group, objectives, color, None if categorical else hue, label=None if name is None else str(name))
    if log and not three:
        ax.set_xscale("log")
        ax.set_yscale("log")
    labels = [f"log10 {o}" if log and three else o for o in objectives]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if three:
        ax.set_zlabel(labels[2])
    ax.set_title(title or f"Pareto front: {' vs '.join(objectives)} ({len(rows)} points)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    return _finish(fig, path)


def _pareto_group(ax, rows: pd.DataFrame, objectives: list[str], color, scale_by: str | None, label: str | None) -> None:
    """Draw one group's points (dominated ones faded) and its front on ``ax``."""
    values = rows[objectives].to_numpy(dtype=float)
    front = pareto_mask(values)
    three = values.shape[1] == 3
    cols = [values[:, i] for i in range(values.shape[1])]
    tag = f"{label}: " if label else ""
    if scale_by is not None:
        import pandas as pd

        c = pd.to_numeric(rows[scale_by], errors="coerce").to_numpy(dtype=float)
        art = ax.scatter(*cols, c=c, cmap="viridis", s=28, alpha=0.8, label=f"{tag}designs")
        ax.figure.colorbar(art, ax=ax, label=scale_by, shrink=0.8, pad=0.1 if three else 0.02)
    else:
        ax.scatter(*[c[~front] for c in cols], color=color, s=20, alpha=0.35, label=f"{tag}dominated")
    on = values[front]
    front_color = color if label else "crimson"
    ax.scatter(*[on[:, i] for i in range(on.shape[1])], s=70, facecolors="none", edgecolors=front_color,
               linewidths=1.8, label=f"{tag}Pareto front ({len(on)})", **({"depthshade": False} if three else {}))
    if not three and len(on):
        on = on[np.lexsort((on[:, 1], on[:, 0]))]
        ax.plot(on[:, 0], on[:, 1], drawstyle="steps-post", color=front_color, lw=1.2)


# ---------------------------------------------------------------- roofline


def _unit_peak_ops(unit, clock_hz: float) -> float:
    """Peak ops/s of a compute unit: every PE finishing one MAC (or a one-cycle op) per its cycle count."""
    cycles = unit.op_cost("mac")[0] if "mac" in unit.ops else 1
    return unit.rows * unit.cols * clock_hz / cycles


def _dram_bandwidth(arch, clock_hz: float) -> float:
    """Bytes/s of the outermost memory: the sum of its ports' bandwidths (inf when one is unbounded)."""
    total = 0.0
    for port in arch.memories[0].ports:
        if port.bandwidth is None:
            return float("inf")
        total += port.bandwidth.bytes_per_cycle(clock_hz) * clock_hz
    return total


def roofline_points(result: RunResult, arch) -> list[dict]:
    """Each simulated Einsum as {einsum, unit, intensity (ops per DRAM byte), ops_per_s}; Einsums without ops, time or DRAM bytes are left out."""
    outer = arch.memories[0].name
    points = []
    for e in result.einsums:
        ops = sum(e.sim.ops.values())
        dram = sum(d["read"] + d["write"] for d in e.sim.traffic.get(outer, {}).values())
        if ops and dram and e.sim.latency_cycles:
            points.append({"einsum": e.einsum, "segment": e.segment, "unit": e.unit, "intensity": ops / dram,
                           "ops_per_s": ops / (e.sim.latency_cycles / result.clock_hz)})
    return points


def plot_roofline(result: RunResult, arch, path: str | Path | None = None) -> Figure:
    """The architecture's roofline per compute unit (peak ops/s, DRAM bandwidth) with each Einsum at (ops/DRAM byte, achieved ops/s).

    ``arch``: the Architecture the result ran on (or its preset name / path). One MAC counts as
    one op; DRAM is the outermost memory and its bandwidth the sum of its ports'. Identical
    Einsums of a repeated segment are one point.
    """
    from sim.inputs import resolve_arch

    arch = resolve_arch(arch)
    points = roofline_points(result, arch)
    if not points:
        raise ValueError(f"no Einsum of '{result.workload}' has ops, time and DRAM traffic to place on a roofline")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = dict(zip(sorted({p["unit"] for p in points} | {u.name for u in arch.compute}), plt.get_cmap("tab10").colors))
    bw = _dram_bandwidth(arch, result.clock_hz)
    ai = np.array([p["intensity"] for p in points])
    lo, hi = ai.min() / 4, ai.max() * 4
    for unit in arch.compute:
        peak = _unit_peak_ops(unit, arch.clock_hz(unit))
        if np.isfinite(bw):
            ridge = peak / bw
            lo, hi = min(lo, ridge / 4), max(hi, ridge * 4)
    x = np.logspace(np.log10(lo), np.log10(hi), 256)
    for unit in arch.compute:
        peak = _unit_peak_ops(unit, arch.clock_hz(unit))
        roof = np.minimum(peak, x * bw) if np.isfinite(bw) else np.full_like(x, peak)
        ax.plot(x, roof, color=colors[unit.name], lw=2, label=f"{unit.name} roof ({peak:.3g} ops/s)")
    if np.isfinite(bw):
        ax.plot([], [], " ", label=f"DRAM '{arch.memories[0].name}' {bw / 1e9:.4g} GB/s")
    for unit in sorted({p["unit"] for p in points}):
        mine = [p for p in points if p["unit"] == unit]
        ax.scatter([p["intensity"] for p in mine], [p["ops_per_s"] for p in mine], color=colors[unit], s=30,
                   edgecolors="black", linewidths=0.5, alpha=0.85, zorder=3, label=f"{unit} Einsums ({len(mine)})")
    if len(points) <= 12:
        for p in points:
            ax.annotate(p["einsum"], (p["intensity"], p["ops_per_s"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops / DRAM byte)")
    ax.set_ylabel("achieved ops/s (1 MAC = 1 op)")
    ax.set_title(f"Roofline: {result.workload} on {result.arch}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize="small", loc="lower right")
    return _finish(fig, path)


# ---------------------------------------------------------------- timeline


def _kind(name: str) -> str:
    """Event kind from a trace event's name: load, store or compute."""
    head = name.split(" ", 1)[0]
    return head if head in ("load", "store") else "compute"


def timeline_bars(result: RunResult) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Track -> kind -> [(start, duration)] in cycles, Einsums laid end to end as sim/trace.py does."""
    bars: dict[str, dict[str, list[tuple[int, int]]]] = {}
    offset = 0
    for e in result.einsums:
        for ev in e.sim.trace:
            bars.setdefault(ev.track, {}).setdefault(_kind(ev.name), []).append((offset + ev.start, ev.duration))
        offset += e.sim.latency_cycles
    return bars


def plot_timeline(result: RunResult, path: str | Path | None = None) -> Figure:
    """A Gantt chart of the trace events, one row per compute unit or memory port (needs evaluate(..., trace=True)).

    Each Einsum is shown once (a repeated segment is not repeated), end to end, with faint
    lines at Einsum boundaries; time is in microseconds of the run's clock.
    """
    bars = timeline_bars(result)
    if not bars:
        raise ValueError(f"'{result.workload}' has no trace events; evaluate it with trace=True")
    plt = _pyplot()
    tracks = list(bars)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(tracks)))
    us = 1e6 / result.clock_hz
    for row, track in enumerate(tracks):
        for kind, spans in bars[track].items():
            ax.broken_barh([(s * us, d * us) for s, d in spans], (row - 0.38, 0.76), facecolors=KIND_COLORS[kind],
                           edgecolor="none")
    offset = 0
    for e in result.einsums[:-1]:
        offset += e.sim.latency_cycles
        ax.axvline(offset * us, color="grey", lw=0.4, alpha=0.5)
    end = sum(e.sim.latency_cycles for e in result.einsums) * us
    ax.set_xlim(0, end)
    ax.set_yticks(range(len(tracks)), tracks)
    ax.set_ylim(len(tracks) - 0.5, -0.5)
    ax.set_xlabel("time (µs)")
    ax.set_title(f"Timeline: {result.workload} on {result.arch} ({len(result.einsums)} Einsum{'s' if len(result.einsums) != 1 else ''}, each once)")
    kinds = sorted({k for per in bars.values() for k in per}, key=list(KIND_COLORS).index)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=KIND_COLORS[k]) for k in kinds], labels=kinds,
              fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _finish(fig, path)


# ---------------------------------------------------------------- energy


def _energy_scale(pj: float) -> tuple[float, str]:
    """A divisor and unit name that show ``pj`` with a readable magnitude."""
    for scale, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")):
        if pj >= scale:
            return scale, unit
    return 1.0, "pJ"


def energy_table(result: RunResult) -> dict[str, dict[str, float]]:
    """Component -> action -> pJ from the run's ``component.action`` energy breakdown."""
    table: dict[str, dict[str, float]] = {}
    for key, pj in result.energy_breakdown.items():
        component, _, action = key.rpartition(".")
        per = table.setdefault(component or key, {})
        per[action] = per.get(action, 0.0) + pj
    return table


def plot_energy(result: RunResult, path: str | Path | None = None) -> Figure:
    """Horizontal bars of energy per component, stacked by action, with each component's share of the total."""
    table = energy_table(result)
    total = sum(sum(per.values()) for per in table.values())
    if not table or total <= 0:
        raise ValueError(f"'{result.workload}' on '{result.arch}' has no energy to plot")
    plt = _pyplot()
    components = sorted(table, key=lambda c: sum(table[c].values()))
    actions = sorted({a for per in table.values() for a in per})
    scale, unit = _energy_scale(max(sum(per.values()) for per in table.values()))
    cmap = plt.get_cmap("tab10" if len(actions) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * len(components)))
    left = np.zeros(len(components))
    for n, action in enumerate(actions):
        widths = np.array([table[c].get(action, 0.0) for c in components]) / scale
        ax.barh(components, widths, left=left, color=cmap(n % cmap.N), label=action, edgecolor="white", linewidth=0.5)
        left += widths
    for y, c in enumerate(components):
        ax.text(left[y], y, f"  {100 * sum(table[c].values()) / total:.1f}%", va="center", fontsize=8)
    ax.set_xlim(0, left.max() * 1.15)
    ax.set_xlabel(f"energy ({unit})")
    ax.set_title(f"Energy: {result.workload} on {result.arch} — total {total / _energy_scale(total)[0]:.4g} "
                 f"{_energy_scale(total)[1]}")
    ax.legend(title="action", fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(fig, path)
