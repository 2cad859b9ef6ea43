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
    model = run.add_argument_group("model lowering (zoo models and config.json)")
    model.add_argument("--phase", choices=["encoder", "prefill", "decode"],
                       help="default: encoder for bidirectional models, prefill otherwise")
    model.add_argument("--batch", type=_positive, help="sequences per batch (default 1)")
    model.add_argument("--seq", type=_positive, help="prompt tokens (encoder/prefill); default: the model's context")
    model.add_argument("--kv-len", type=_positive, help="cached tokens (decode); default: the model's context")
    model.add_argument("--new-tokens", type=_positive, help="tokens decoded per step (decode; default 1)")
    model.add_argument("--attention", choices=["3pass", "2pass", "1pass"], help="attention cascade (default 3pass)")
    model.add_argument("--m0", type=_positive, help="key tile of 2-/1-pass attention (default 256)")
    run.add_argument("--mapping", help="mapping YAML to simulate instead of the default mapper's choice")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace of the tile events")
    run.add_argument("--show-mapping", action="store_true", help="print each Einsum's loop nest")

    sub.add_parser("presets", help="list the built-in architecture presets")
    sub.add_parser("models", help="list the model zoo with parameter counts")
    return p


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
    from sim.run import evaluate
    from sim.trace import write_trace

    lowering = {"phase": args.phase, "batch": args.batch, "seq": args.seq, "kv_len": args.kv_len,
                "new_tokens": args.new_tokens, "attention": args.attention, "m0": args.m0}
    result = evaluate(args.arch, args.workload, mappings=args.mapping, trace=bool(args.trace), **lowering)
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


def _presets(_args) -> int:
    from arch import list_presets

    for name, description in list_presets():
        print(f"{name:<16} {description}")
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
    from workloads import WorkloadError

    try:
        return {"run": _run, "presets": _presets, "models": _models}[args.command](args)
    except (ArchError, YamlError, WorkloadError, MappingError, InputError) as err:
        print(f"einsim: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:
        print(f"einsim: error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
