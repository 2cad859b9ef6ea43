"""The ``einsim`` command line.

Bad input never shows a traceback: it prints one line, ``einsim: error: <what> (<where>)``,
and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE_ERROR, f"einsim: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="einsim", description="Einsum cascades -> mapping -> event-driven simulation of accelerators.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="map and simulate a workload on an architecture")
    run.add_argument("--arch", required=True, help="preset name, architecture YAML, or SCALE-Sim .cfg")
    run.add_argument("--workload", required=True,
                     help="a zoo model (see 'einsim models'), a Hugging Face config.json, gemm:M,N,K[:dtype], "
                          "a cascade YAML, or a SCALE-Sim topology CSV")
    _lowering_flags(run)
    run.add_argument("--mapping", help="mapping YAML to simulate instead of the default mapper's choice")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace of the tile events")
    run.add_argument("--show-mapping", action="store_true", help="print each Einsum's loop nest")
    _mapper_flags(run)

    mp = sub.add_parser("map", help="map every GEMM Einsum of a workload and write the mappings (YAML list)")
    mp.add_argument("--arch", required=True, help="preset name, architecture YAML, or SCALE-Sim .cfg")
    mp.add_argument("--workload", required=True, help="as for 'einsim run'")
    _lowering_flags(mp)
    _mapper_flags(mp)
    mp.add_argument("-o", "--output", required=True, metavar="FILE", help="mapping YAML to write (for 'einsim run --mapping')")

    sw = sub.add_parser("sweep", help="run a design-space sweep (spec YAML) into a results folder")
    sw.add_argument("spec", metavar="SPEC.yaml", help="the sweep spec: base, axes, combine, tie, workloads, objectives, constraints")
    sw.add_argument("-o", "--out", required=True, metavar="OUT", help="results folder (OUT/results.sqlite, OUT/spec.yaml)")
    sw.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N", help="parallel workers (default 1: in-process)")
    sw.add_argument("--executor", choices=["local", "ray"], default="local", help="local process pool (default) or Ray")
    sw.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to join (default: start a local Ray with N CPUs)")
    sw.add_argument("--resume", action="store_true", help="run only the points OUT does not have yet")
    sw.add_argument("--export", metavar="FILE", help="also write the results to FILE (.csv or .parquet)")
    sw.add_argument("--progress", action="store_true", help="show a progress line on stderr (default: when it is a terminal)")

    sub.add_parser("presets", help="list the built-in architecture presets")
    sub.add_parser("models", help="list the model zoo with parameter counts")
    _plot_parser(sub)
    schema = sub.add_parser("schema", help="write the JSON Schema of architecture YAML (for editors)")
    schema.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    validate = sub.add_parser("validate", help="check an architecture YAML and explain every error")
    validate.add_argument("file", metavar="FILE")
    at = sub.add_parser("attention", help="simulate one attention layer (and the encoder's linear layers) on "
                                           "fusemax, flat, flat-edge or unfused")
    at.add_argument("--arch", required=True, help="fusemax, flat, flat-edge, unfused, or an architecture YAML with pe2d, pe1d, buffer, dram")
    at.add_argument("--model", required=True, help="a zoo model (its heads and head size; e.g. bert-base)")
    at.add_argument("--seq", type=_positive, required=True, help="tokens (queries = keys)")
    at.add_argument("--batch", type=_positive, default=64, help="sequences (default 64, as in FuseMax)")
    at.add_argument("--dataflow", choices=["fusemax", "flat", "unfused"], help="default: the preset's")
    at.add_argument("--layer", action="store_true", help="add the encoder's linear layers (end to end)")
    at.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    vg = sub.add_parser("validate-gpu", help="compare the GPU model with measured kernels: error per case, MAPE per class")
    vg.add_argument("--gpu", default="h100", help="GPU preset name or GPU YAML (default h100)")
    vg.add_argument("--csv", help="measurements (default: arch/gpus/h100_measured.csv)")
    vg.add_argument("--launch", choices=["graph", "eager"], help="kernel launch cost to model (default: the preset's)")
    vg.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p


def _lowering_flags(parser) -> None:
    """The flags that lower a zoo model or config.json (shared by run and plot)."""
    model = parser.add_argument_group("model lowering (zoo models and config.json)")
    model.add_argument("--phase", choices=["encoder", "prefill", "decode"],
                       help="default: encoder for bidirectional models, prefill otherwise")
    model.add_argument("--batch", type=_positive, help="sequences per batch (default 1)")
    model.add_argument("--seq", type=_positive, help="prompt tokens (encoder/prefill); default: the model's context")
    model.add_argument("--kv-len", type=_positive, help="cached tokens (decode); default: the context minus the new tokens")
    model.add_argument("--new-tokens", type=_positive, help="tokens decoded per step (decode; default 1)")
    model.add_argument("--attention", choices=["3pass", "2pass", "1pass"], help="attention cascade (default 3pass)")
    model.add_argument("--m0", type=_positive, help="key tile of 2-/1-pass attention (default 256)")


def _mapper_flags(parser) -> None:
    """The flags that pick the GEMM mapper (shared by run and map)."""
    group = parser.add_argument_group("mapper (GEMM Einsums)")
    group.add_argument("--mapper", choices=["greedy", "cpsat", "search"], default="greedy",
                       help="greedy (default, fast), cpsat (optimal within the time limit) or search (sampling + annealing)")
    group.add_argument("--objective", choices=["latency", "energy", "edp", "lex"], default="edp",
                       help="what cpsat and search minimise (default edp)")
    group.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="cpsat's limit per GEMM shape in seconds (default 10)")
    group.add_argument("--padded", action="store_true",
                       help="cpsat/search: also imperfect tiles, ceil(extent/T) for every trip count T (two memory levels)")
    group.add_argument("--bypass", action="store_true",
                       help="cpsat/search: let middle memory levels skip operands (three or more levels)")


def _mapper(args) -> dict:
    """The mapper flags as keywords for ``evaluate``."""
    return {"mapper": args.mapper, "objective": args.objective, "time_limit_s": args.time_limit,
            "padded": args.padded, "bypass": args.bypass}


def _lowering(args) -> dict:
    """The lowering flags as keywords for ``evaluate``."""
    return {"phase": args.phase, "batch": args.batch, "seq": args.seq, "kv_len": args.kv_len,
            "new_tokens": args.new_tokens, "attention": args.attention, "m0": args.m0}


def _plot_parser(sub) -> None:
    """``einsim plot pareto OUT_DIR ...`` (from a sweep store) and ``einsim plot roofline|timeline|energy ...`` (from a run)."""
    plot = sub.add_parser("plot", help="plot a sweep's Pareto front, or a run's roofline, timeline or energy")
    kinds = plot.add_subparsers(dest="plot", required=True, parser_class=_Parser)
    pareto = kinds.add_parser("pareto", help="the Pareto front of a sweep's results")
    pareto.add_argument("out_dir", metavar="OUT_DIR", help="the sweep's output folder")
    pareto.add_argument("--objectives", nargs="+", required=True, metavar="COLUMN",
                        help="2 or 3 result columns to minimise, e.g. latency_s energy_pj")
    pareto.add_argument("--hue", metavar="COLUMN", help="colour by this column (a categorical one gets a front per group)")
    pareto.add_argument("--log", action="store_true", help="log-scaled axes")
    pareto.add_argument("-o", "--output", metavar="FILE", help="image to write (default OUT_DIR/pareto.png)")
    for kind, what in (("roofline", "each Einsum on the architecture's roofline"),
                       ("timeline", "a Gantt chart of every unit's and port's events"),
                       ("energy", "the energy breakdown by component and action")):
        one = kinds.add_parser(kind, help=what)
        one.add_argument("--arch", required=True, help="preset name, architecture YAML, or SCALE-Sim .cfg")
        one.add_argument("--workload", required=True, help="as for 'einsim run'")
        _lowering_flags(one)
        one.add_argument("--mapping", help="mapping YAML to simulate instead of the default mapper's choice")
        one.add_argument("-o", "--output", required=True, metavar="FILE", help="image to write (.png, .pdf, .svg)")


def _positive(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _run(args) -> int:
    from arch.gpu import is_gpu
    from sim.run import evaluate
    from sim.trace import write_trace

    if is_gpu(args.arch):
        return _run_gpu(args)

    result = evaluate(args.arch, args.workload, mappings=args.mapping, trace=bool(args.trace), **_mapper(args),
                      **_lowering(args))
    if args.trace:
        write_trace(result, args.trace)
    if args.json:
        print(result.to_json())
    else:
        print(result.table())
        if args.show_mapping:
            for e in result.einsums:
                print(e.mapping.describe())
    return 0


def _run_gpu(args) -> int:
    """A gemm:M,N,K workload on a GPU preset: the chosen kernels and their time."""
    import json

    from arch.gpu import load_gpu
    from mappers.gpu import gemm_kernels
    from sim.errors import InputError
    from sim.gpu import roofline_seconds, run_kernels
    from workloads.spec import parse_workload_spec

    gpu = load_gpu(args.arch)
    if not str(args.workload).startswith("gemm:"):
        raise InputError(f"GPU preset '{gpu.name}' runs gemm:M,N,K[:dtype] workloads (model workloads on GPUs are "
                         f"not supported yet; 'einsim validate-gpu' compares attention and layers), got '{args.workload}'")
    cascade = parse_workload_spec(args.workload)
    (einsum,) = cascade.einsums
    m, n, k = (cascade.rank_extent(r) for r in ("m", "n", "k"))
    dtype = cascade.tensor(einsum.inputs[0].tensor).dtype
    if dtype not in gpu.sm.tensor_cores.macs_per_cycle:
        raise InputError(f"GPU preset '{gpu.name}' has no tensor-core rate for {dtype} (has {', '.join(gpu.sm.tensor_cores.macs_per_cycle)})")
    result = run_kernels(gemm_kernels(gpu, m, n, k, dtype, name=cascade.name), gpu)
    flops, nbytes = 2.0 * m * n * k, float((m * k + k * n + m * n) * (2 if dtype in ("fp16", "bf16") else 1))
    roof = roofline_seconds(gpu, flops, nbytes, dtype)
    if args.json:
        print(json.dumps({"workload": cascade.name, "gpu": gpu.name, "launch": result.launch, "latency_s": result.seconds,
                          "roofline_s": roof, "tflops": flops / result.seconds / 1e12,
                          "kernels": [vars(kt) for kt in result.kernels]}))
        return 0
    print(f"{cascade.name} on {gpu.name} ({result.launch} launches)")
    print(f"  latency   {result.seconds * 1e6:,.2f} us  (roofline {roof * 1e6:,.2f} us; {flops / result.seconds / 1e12:,.1f} TFLOP/s)")
    for kt in result.kernels:
        choice = ", ".join(f"{k} {v}" for k, v in kt.detail.items() if k != "grid")
        print(f"  kernel    {kt.name:<28} grid {kt.grid:>7} ({choice or kt.kind})  {kt.total_s * 1e6:>9.2f} us  {kt.bound}-bound "
              f"(compute {kt.compute_s * 1e6:.2f} us, HBM {kt.memory_s * 1e6:.2f} us, launch {kt.launch_s * 1e6:.2f} us)")
    return 0


def _validate_gpu(args) -> int:
    """``einsim validate-gpu``: the model against the measured CSV."""
    import json

    from sim.gpu_validate import DEFAULT_CSV, format_table, mape, validate

    rows = validate(args.gpu, args.csv or DEFAULT_CSV, args.launch)
    if args.json:
        print(json.dumps({"cases": [{"class": r.case.cls, "case": r.case.name, "dtype": r.case.dtype,
                                     "measured_us": r.case.measured_us, "predicted_us": r.predicted_us,
                                     "error": r.error, "roofline_us": r.roofline_us, "calibration": r.calibration}
                                    for r in rows],
                          "mape_percent": {g: m for g, (m, _) in mape(rows).items()}}))
    else:
        print(format_table(rows))
    return 0


def _map(args) -> int:
    """Map every GEMM Einsum, write the mappings as one YAML list and print each loop nest."""
    from pathlib import Path

    import yaml

    from mappers import matmul_view
    from sim.inputs import resolve_arch, resolve_workload
    from sim.run import _cached_gemm_mapping

    arch = resolve_arch(args.arch)
    how = (args.mapper, args.objective, args.time_limit, args.padded, args.bypass)
    cache: dict = {}
    out, seen = [], set()
    for seg in resolve_workload(args.workload, **_lowering(args)):
        for einsum in seg.cascade.einsums:
            if einsum.name in seg.views or einsum.name in seg.gathers or einsum.name in seen:
                continue
            try:
                view = matmul_view(seg.cascade, einsum)
            except Exception:  # noqa: BLE001 - not a GEMM: the vector unit's mapping needs no search
                continue
            seen.add(einsum.name)
            mapping = _cached_gemm_mapping(view, arch, cache, "", how)
            out.append(mapping.to_dict(view))
            print(mapping.describe(view))
    Path(args.output).write_text(yaml.safe_dump(out, sort_keys=False, default_flow_style=None))
    print(f"{args.output}: {len(out)} mapping{'s' if len(out) != 1 else ''}")
    return 0


def _plot(args) -> int:
    """Draw the requested plot and write it; plotting's ValueErrors become one-line input errors."""
    from pathlib import Path

    from sim import plots
    from sim.errors import InputError

    if args.plot == "pareto":
        if not Path(args.out_dir).is_dir():
            raise InputError(f"{args.out_dir}: no such sweep folder")
        from sim import load_results

        output = args.output or str(Path(args.out_dir) / "pareto.png")
        results = load_results(args.out_dir)
        try:
            plots.plot_pareto(results, args.objectives, output, hue=args.hue, log=args.log)
        except ValueError as err:
            raise InputError(f"{err} ({args.out_dir})") from None
        print(output)
        return 0
    from sim.run import evaluate

    result = evaluate(args.arch, args.workload, mappings=args.mapping, trace=args.plot == "timeline", **_lowering(args))
    draw = {"roofline": lambda path: plots.plot_roofline(result, args.arch, path),
            "timeline": lambda path: plots.plot_timeline(result, path),
            "energy": lambda path: plots.plot_energy(result, path)}[args.plot]
    try:
        draw(args.output)
    except ValueError as err:
        raise InputError(str(err)) from None
    print(args.output)
    return 0


def _sweep(args) -> int:
    """Run a sweep spec into OUT, print one summary line, optionally export the results."""
    from sim.store import export_format, export_results
    from sim.sweep_runner import sweep

    if args.export:
        export_format(args.export)
    progress = args.progress or sys.stderr.isatty()
    try:
        summary = sweep(args.spec, args.out, jobs=args.jobs, executor=args.executor, address=args.address,
                        resume=args.resume, progress=progress)
    except KeyboardInterrupt:
        print(f"einsim: interrupted; finished rows are kept in {args.out}, finish with --resume", file=sys.stderr)
        return 130
    if args.export:
        export_results(args.out, args.export)
    print(summary.line(args.out) + (f"; exported {args.export}" if args.export else ""))
    return 0


def _schema(args) -> int:
    """Write the architecture JSON Schema (point an editor's YAML language server at it)."""
    import json

    from arch import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def _validate(args) -> int:
    """Print every problem of an architecture file, one per line; exit 2 if there are any."""
    from arch import validate_arch_file

    errors = validate_arch_file(args.file)
    for err in errors:
        print(f"einsim: error: {err}", file=sys.stderr)
    if errors:
        return USAGE_ERROR
    print(f"{args.file}: ok")
    return 0


def _attention(args) -> int:
    """One attention layer on an attention accelerator; optionally the whole encoder layer."""
    import json

    from arch.loader import load_arch
    from sim.attention_accel import AttentionShape, simulate_attention
    from sim.encoder import encoder_layer
    from workloads.zoo import load_model

    arch, model = load_arch(args.arch), load_model(args.model)
    layer = None
    if args.layer:
        layer = encoder_layer(arch, model, args.seq, args.batch, dataflow=args.dataflow)
        r = layer.attention
    else:
        r = simulate_attention(arch, AttentionShape.of_model(model, args.seq, args.batch), args.dataflow)
    out = {"arch": r.arch, "dataflow": r.dataflow, "model": model.name, "batch": args.batch, "seq": args.seq,
           "latency_cycles": r.cycles, "latency_s": r.seconds, "energy_pj": r.total_energy_pj,
           "utilization": r.utilization, "traffic_bytes": {"dram": r.traffic_bytes},
           "macs": r.tally["pe2d.mac"], "energy_breakdown": r.energy_pj, "schedule": r.choice,
           "extrapolated": r.extrapolated, "events": r.events}
    if layer is not None:
        lin = layer.linear
        out["linear"] = {"latency_s": lin.cycles / layer.clock_hz, "energy_pj": lin.energy_pj, "dram_bytes": lin.dram_bytes}
        out["layer"] = {"latency_s": layer.seconds, "energy_pj": layer.energy_pj}
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    u = r.utilization
    print(f"attention of {model.name} (batch {args.batch}, {args.seq:,} tokens) on {r.arch}, {r.dataflow} dataflow")
    print(f"  latency   {r.cycles:,} cycles = {r.seconds:.6g} s")
    print(f"  util      2D {u['pe2d']:.3f}  1D {u['pe1d']:.3f}  DRAM {u['dram']:.3f}")
    print(f"  DRAM      {r.traffic_bytes:.4g} B      energy {r.total_energy_pj:.4g} pJ")
    print(f"  schedule  {r.choice}  ({'extrapolated from' if r.extrapolated else 'fully simulated,'} {r.events:,} events)")
    if args.layer:
        print(f"  linear    {out['linear']['latency_s']:.6g} s, {out['linear']['energy_pj']:.4g} pJ")
        print(f"  layer     {out['layer']['latency_s']:.6g} s, {out['layer']['energy_pj']:.4g} pJ")
    return 0


def _presets(_args) -> int:
    from arch import list_presets

    from arch.gpu import list_gpus

    for name, description in list_presets():
        print(f"{name:<16} {description}")
    for name, description in list_gpus():
        print(f"{name:<16} (gpu) {description}")
    return 0


def _models(_args) -> int:
    from workloads.zoo import list_models, load_model, model_summary

    print(f"{'model':<18} {'params':>9} {'active':>9} {'layers':>6} {'hidden':>6} {'heads':>9} {'ffn':>6}  family")
    for name in list_models():
        s = model_summary(load_model(name))
        heads = f"{s['heads']}/{s['kv_heads']}"
        print(f"{name:<18} {s['params'] / 1e9:>8.3f}B {s['active_params'] / 1e9:>8.3f}B {s['layers']:>6} "
              f"{s['hidden']:>6} {heads:>9} {s['ffn']:>6}  {s['family']}" + (f" ({s['experts']} experts)" if s['experts'] > 1 else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``einsim`` console script."""
    args = _parser().parse_args(argv)
    from arch import ArchError, YamlError
    from mappers import MappingError
    from sim.errors import InputError
    from sim.sweep_spec import SweepError
    from workloads import WorkloadError

    try:
        commands = {"run": _run, "map": _map, "sweep": _sweep, "presets": _presets, "models": _models, "plot": _plot,
                    "schema": _schema, "validate": _validate, "validate-gpu": _validate_gpu,
                    "attention": _attention}
        return commands[args.command](args)
    except (ArchError, YamlError, WorkloadError, MappingError, InputError, SweepError) as err:
        print(f"einsim: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:
        print(f"einsim: error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
