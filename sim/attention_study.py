"""The FuseMax study: its four encoders at six lengths on three accelerators, beside the paper.

``attention_grid`` and ``encoder_grid`` simulate the points; ``reference`` reads the published
per-point results (sim/reference/fusemax.csv, from the paper's artifact); ``headline`` gives
the paper's summary numbers (means over the 24 model x length points) for either; and
``fusemax_formula_seconds`` is the paper's per-Einsum formula model, kept to show where the
event simulation and the formula part ways (README, "FuseMax: simulation versus formula").
"""

from __future__ import annotations

from importlib import resources

MODELS = {"BERT": "bert-base", "TrXL": "trxl-wt103", "T5": "t5-small-encoder", "XLM": "xlm"}
"""The paper's four encoders: its label -> our zoo name."""

LENGTHS = {"1K": 1024, "4K": 4096, "16K": 16384, "64K": 65536, "256K": 262144, "1M": 1048576}
"""The paper's sequence lengths: its label -> tokens."""

ACCELERATORS = ("fusemax", "flat", "unfused")
BATCH = 64


def reference():
    """The published results as a DataFrame: model, seq, accelerator, part, latency_s, ..."""
    import pandas as pd

    path = resources.files("sim").joinpath("reference", "fusemax.csv")
    with path.open() as f:
        return pd.read_csv(f, comment="#")


def attention_grid(models: dict = MODELS, lengths: dict = LENGTHS, accelerators=ACCELERATORS):
    """Simulate attention at every (model, length) on every accelerator preset; one row each."""
    import time

    import pandas as pd

    from sim.attention_accel import AttentionShape, simulate_attention
    from workloads.zoo import load_model

    rows = []
    for label, name in models.items():
        model = load_model(name)
        for seq_label, seq in lengths.items():
            for acc in accelerators:
                t = time.perf_counter()
                r = simulate_attention(acc, AttentionShape.of_model(model, seq, BATCH))
                rows.append({"model": label, "seq": seq_label, "accelerator": acc, "latency_s": r.seconds,
                             "energy_pj": r.total_energy_pj, "dram_bytes": r.traffic_bytes,
                             "util_2d": r.utilization["pe2d"], "util_1d": r.utilization["pe1d"],
                             "extrapolated": r.extrapolated, "events": r.events,
                             "wall_s": time.perf_counter() - t})
    return pd.DataFrame(rows)


def encoder_grid(models: dict = MODELS, lengths: dict = LENGTHS, accelerators=("fusemax", "flat")):
    """The linear layers of one encoder layer at every point; one row per (model, length, accelerator)."""
    import pandas as pd

    from arch.loader import load_arch
    from sim.encoder import linear_layers
    from workloads.zoo import load_model

    cache: dict = {}
    rows = []
    for acc in accelerators:
        arch = load_arch(acc)
        clock = arch.clock_hz(arch.unit("pe2d"))
        for label, name in models.items():
            model = load_model(name)
            for seq_label, seq in lengths.items():
                lin = linear_layers(arch, model, BATCH * seq, cache)
                rows.append({"model": label, "seq": seq_label, "accelerator": acc, "latency_s": lin.cycles / clock,
                             "energy_pj": lin.energy_pj, "dram_bytes": lin.dram_bytes})
    return pd.DataFrame(rows)


def headline(attention, linear=None) -> dict[str, float]:
    """The paper's summary numbers: means over the points of per-point ratios.

    ``attention``/``linear``: frames with model, seq, accelerator, latency_s, energy_pj (ours
    or ``reference()`` split by part)."""
    a = attention.pivot_table(index=["model", "seq"], columns="accelerator", values=["latency_s", "energy_pj"])
    out = {"attention speedup over FLAT": (a.latency_s.flat / a.latency_s.fusemax).mean(),
           "attention speedup over unfused": (a.latency_s.unfused / a.latency_s.fusemax).mean(),
           "attention energy / FLAT": (a.energy_pj.fusemax / a.energy_pj.flat).mean()}
    if linear is not None:
        lin = linear.pivot_table(index=["model", "seq"], columns="accelerator", values=["latency_s", "energy_pj"])
        e2e_t = {acc: a.latency_s[acc] + lin.latency_s[acc] for acc in ("fusemax", "flat")}
        e2e_e = {acc: a.energy_pj[acc] + lin.energy_pj[acc] for acc in ("fusemax", "flat")}
        out["end-to-end speedup over FLAT"] = (e2e_t["flat"] / e2e_t["fusemax"]).mean()
        out["end-to-end energy / FLAT"] = (e2e_e["fusemax"] / e2e_e["flat"]).mean()
    return {k: float(v) for k, v in out.items()}


def side_by_side(ours, ref, columns=("latency_s", "util_2d", "util_1d", "dram_bytes", "energy_pj")):
    """Ours and the paper's per point, with ours/paper ratios (utilization: differences)."""
    keys = ["model", "seq", "accelerator"]
    ref = ref[ref.part == "attention"] if "part" in ref else ref
    m = ours.merge(ref, on=keys, suffixes=("", "_paper"))
    for c in columns:
        if c.startswith("util"):
            m[c + "_diff"] = m[c] - m[c + "_paper"]
        else:
            m[c + "_ratio"] = m[c] / m[c + "_paper"]
    order = {s: i for i, s in enumerate(LENGTHS)}
    return m.sort_values(["model", "accelerator"], kind="stable").sort_values(
        "seq", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def fusemax_formula_seconds(shape, clock_hz: float = 940e6, lanes: int = 256, array: int = 65536,
                            dram_bytes_per_s: float = 400 * 2**30) -> float:
    """The paper's formula model of FuseMax (shared/reference/fusemax.md): each Einsum costed
    alone (MAC-level cycles x op multiplier), compute = max(QK+LM, RD+RNV+AV) + RM +
    max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV), latency = max(compute, DRAM bytes / bandwidth)."""
    from math import ceil

    from sim.attention_accel import Hardware, fusemax_p1
    from arch.loader import load_arch

    n, P, M, E, F = shape.instances, shape.queries, shape.keys, shape.e, shape.f
    m1 = M // 256
    two_d = {"QK": P * M * E / array, "LM": P * M / array, "SLN": 7 * P * M / array,
             "SLD": P * M / array, "SLNV": P * M * F / array}
    one_d = {"RM": P * m1 / lanes, "PRM": 7 * P * m1 / lanes, "SPD": P * m1 / lanes, "RD": P * m1 / lanes,
             "SPNV": P * m1 * F / lanes, "RNV": P * m1 * F / lanes, "AV": P * F / lanes}
    compute = (max(two_d["QK"] + two_d["LM"], one_d["RD"] + one_d["RNV"] + one_d["AV"]) + one_d["RM"]
               + max(two_d["SLN"] + two_d["SLD"], one_d["PRM"] + one_d["SPD"])
               + max(two_d["SLNV"], one_d["SPNV"]))
    p1 = fusemax_p1(Hardware.of(load_arch("fusemax")), shape)
    traffic = 2 * n * (P * E + P * F + ceil(P / (256 * p1)) * M * (E + F))
    return max(n * compute / clock_hz, traffic / dram_bytes_per_s)
