"""Benchmark and report: PIM-GPT-like decoding of the eight GPT models, beside a T4-like GPU.

For each model at batch 1 with its full context: the token latency on the pim-gpt preset and its
parts (PIM MAC streams, data movement over the channel buses, exposed ASIC time), the row-buffer
hit rate, the non-VMM share, the slowdown with the ASIC at 100 MHz, the T4 preset's latency and
the speedup; and how long the command-level simulation of one token takes (median of --repeat
runs, each with a fresh cache). The ASIC width is not published: the preset's is fitted to the
paper's 1.16 % non-VMM share of GPT3-XL; --lanes overrides it.

    python bench/bench_pim.py [--lanes N] [--repeat 3] [--models gpt2-xl ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

MODELS = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-small", "gpt3-medium", "gpt3-large", "gpt3-xl"]


def main() -> None:
    from arch.gpu import load_gpu
    from arch.pim import load_pim_system, pim_with
    from sim.gpu import model_kernels, run_kernels
    from sim.pim import decode_token
    from workloads.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, help="ASIC lanes (default: the preset's, fitted to PIM-GPT's 1.16 %% non-VMM share)")
    ap.add_argument("--repeat", type=int, default=3, help="simulations per model for the timing median")
    ap.add_argument("--models", nargs="+", default=MODELS)
    args = ap.parse_args()
    system = load_pim_system("pim-gpt")
    system = pim_with(system, lanes=args.lanes) if args.lanes else system
    slow = pim_with(system, clock_hz=1e8)
    t4 = load_gpu("t4")
    print(f"pim-gpt with a {system.asic.lanes}-lane ASIC at 1 GHz; GPU baseline: t4 preset (uncalibrated: H100 constants)")
    print(f"{'model':<12} {'token ms':>9} {'pim ms':>8} {'move ms':>8} {'asic ms':>8} {'row hit':>8} {'non-VMM':>8} "
          f"{'@100MHz':>8} {'T4 ms':>8} {'speedup':>8} {'sim s':>6}")
    for name in args.models:
        cfg = load_model(name)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            r = decode_token(system, cfg, memo={})
            times.append(time.perf_counter() - start)
        r100 = decode_token(slow, cfg)
        gpu = run_kernels(model_kernels(t4, cfg, "decode", kv_len=cfg.max_seq - 1), t4).seconds
        print(f"{name:<12} {r.seconds * 1e3:>9.3f} {r.pim_s * 1e3:>8.3f} {r.movement_s * 1e3:>8.3f} {r.asic_s * 1e3:>8.4f} "
              f"{r.row_hit_rate:>8.4f} {100 * r.non_vmm_share:>7.2f}% {r100.seconds / r.seconds:>7.3f}x "
              f"{gpu * 1e3:>8.2f} {gpu / r.seconds:>7.1f}x {statistics.median(times):>6.2f}")


if __name__ == "__main__":
    main()
