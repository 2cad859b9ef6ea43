"""Measure GEMMs, flash attention and LLaMA-2 7B decoder layers on a real GPU (for issue 9).

Runs where PyTorch sees a CUDA GPU (not in CI). Every case is timed the same way:

- inputs rotate among several sets whose total exceeds twice the L2 cache, so repeated runs
  do not measure the cache;
- the calls over all sets are captured once in a CUDA graph and the graph is replayed, so
  launch gaps do not count (the eager launch overhead is measured separately, as a case);
- a sample is the mean time of one call over enough replays to last about 20 ms, timed with
  CUDA events; the reported time is the median of the samples (p10 and p90 beside it).

Writes one CSV row per case with the GPU's name, driver, PyTorch and CUDA versions, the FLOPs
and the compulsory bytes of the case, so a model can be compared against it.

    python bench/gpu/measure.py --out measurements.csv [--quick]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import time

L2_BYTES = 50 * 2**20  # H100 SXM: 50 MB L2 (checked against torch's device properties below)
SAMPLE_S = 0.02
SAMPLES = 15


def _torch():
    import torch

    return torch


def gpu_info() -> dict:
    """The GPU and software the numbers belong to."""
    torch = _torch()
    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        driver = "unknown"
    return {"gpu": props.name, "sms": props.multi_processor_count, "l2_bytes": getattr(props, "L2_cache_size", 0),
            "gpu_mem_bytes": props.total_memory, "driver_maxclocks": driver, "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def time_graph(make_call, set_bytes: float) -> dict:
    """Median per-call time (µs) of ``make_call(i)()`` over rotating input sets, via a CUDA graph."""
    torch = _torch()
    sets = max(2, min(16, math.ceil(2 * L2_BYTES / max(set_bytes, 1))))
    calls = [make_call(i) for i in range(sets)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:  # warm-up outside the graph: kernels load, workspaces are allocated
            call()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    once = max(start.elapsed_time(end) / 1e3, 1e-6)
    replays = max(1, int(SAMPLE_S / once))
    samples = []
    for _ in range(SAMPLES):
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / (replays * sets))
    samples.sort()
    del graph
    return {"median_us": statistics.median(samples), "p10_us": samples[len(samples) // 10],
            "p90_us": samples[-1 - len(samples) // 10], "sets": sets, "replays": replays}


def gemm_cases(quick: bool) -> list[tuple]:
    """(name, M, N, K): BERT, GPT, LLaMA projections, squares up to 8192³, and decode GEMVs."""
    shapes = [
        ("bert_qkv", 512, 768, 768), ("bert_ffn_up", 512, 3072, 768), ("bert_ffn_down", 512, 768, 3072),
        ("bert_b8_qkv", 4096, 768, 768), ("bert_b8_ffn_up", 4096, 3072, 768),
        ("sq1024", 1024, 1024, 1024), ("sq2048", 2048, 2048, 2048), ("sq4096", 4096, 4096, 4096),
        ("sq8192", 8192, 8192, 8192),
        ("llama7b_p512_qkv", 512, 4096, 4096), ("llama7b_p2048_qkv", 2048, 4096, 4096),
        ("llama7b_p2048_up", 2048, 11008, 4096), ("llama7b_p2048_down", 2048, 4096, 11008),
        ("llama7b_p4096_up", 4096, 11008, 4096), ("llama70b_p2048_up", 2048, 28672, 8192),
        ("gpt3_175b_p2048_qkv", 2048, 36864, 12288),
        ("decode_b1_4096", 1, 4096, 4096), ("decode_b1_up", 1, 11008, 4096), ("decode_b1_down", 1, 4096, 11008),
        ("decode_b8_4096", 8, 4096, 4096), ("decode_b8_up", 8, 11008, 4096), ("decode_b32_4096", 32, 4096, 4096),
        ("decode_b32_up", 32, 11008, 4096), ("decode_b64_70b_up", 64, 28672, 8192), ("decode_b1_lmhead", 1, 32000, 4096),
    ]
    return shapes[::3] if quick else shapes


def measure_gemms(rows: list, info: dict, quick: bool) -> None:
    torch = _torch()
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        for name, m, n, k in gemm_cases(quick):
            set_bytes = 2 * (m * k + k * n + m * n)

            def make(i, m=m, n=n, k=k, dtype=dtype):
                a = torch.randn(m, k, device="cuda", dtype=dtype)
                b = torch.randn(k, n, device="cuda", dtype=dtype)
                c = torch.empty(m, n, device="cuda", dtype=dtype)
                return lambda: torch.matmul(a, b, out=c)

            t = time_graph(make, set_bytes)
            rows.append({**info, "class": "gemm", "case": name, "dtype": dtype_name, "m": m, "n": n, "k": k,
                         "flops": 2 * m * n * k, "bytes": set_bytes, **t})
            torch.cuda.empty_cache()


def measure_attention(rows: list, info: dict, quick: bool) -> None:
    torch = _torch()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    heads, hd = 32, 128
    prefill = [(b, s) for s in (512, 1024, 2048, 4096, 8192, 16384, 32768) for b in ((8, 1) if s <= 1024 else (1,))]
    decode = [(b, s) for s in (1024, 4096, 16384, 32768, 65536, 131072) for b in (1, 8)]
    if quick:
        prefill, decode = prefill[::3], decode[::4]
    for causal in (True, False):
        for b, s in prefill:
            set_bytes = 2 * 4 * b * heads * s * hd

            def make(i, b=b, s=s, causal=causal):
                q, k, v = (torch.randn(b, heads, s, hd, device="cuda", dtype=torch.bfloat16) for _ in range(3))

                def call():
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        return sdpa(q, k, v, is_causal=causal)
                return call

            t = time_graph(make, set_bytes)
            flops = 4 * b * heads * s * s * hd // (2 if causal else 1)  # QK and AV; causal computes half
            rows.append({**info, "class": "attention", "case": f"prefill_{'causal' if causal else 'full'}_b{b}_s{s}",
                         "dtype": "bf16", "batch": b, "heads": heads, "kv_heads": heads, "head_dim": hd, "q_len": s,
                         "kv_len": s, "causal": causal, "flops": flops, "bytes": set_bytes, **t})
            torch.cuda.empty_cache()
    for kv_heads in (heads, 8):
        for b, s in decode:
            set_bytes = 2 * (2 * b * heads * hd + 2 * b * kv_heads * s * hd)

            def make(i, b=b, s=s, kv_heads=kv_heads):
                q = torch.randn(b, heads, 1, hd, device="cuda", dtype=torch.bfloat16)
                k, v = (torch.randn(b, kv_heads, s, hd, device="cuda", dtype=torch.bfloat16) for _ in range(2))

                def call():
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                        return sdpa(q, k, v, enable_gqa=kv_heads != heads)
                return call

            t = time_graph(make, set_bytes)
            rows.append({**info, "class": "attention", "case": f"decode_b{b}_kv{s}_kvh{kv_heads}", "dtype": "bf16",
                         "batch": b, "heads": heads, "kv_heads": kv_heads, "head_dim": hd, "q_len": 1, "kv_len": s,
                         "causal": False, "flops": 4 * b * heads * s * hd, "bytes": set_bytes, **t})
            torch.cuda.empty_cache()


def llama_layer(torch, batch: int, q_len: int, kv_len: int, dtype):
    """One LLaMA-2 7B decoder layer (RMSNorm, QKV, RoPE, flash SDPA, O, RMSNorm, SwiGLU) with random weights.

    Returns a zero-argument call that runs it on fixed buffers (graph-capturable)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    d, heads, hd, ffn = 4096, 32, 128, 11008
    dev = "cuda"
    w = {n: torch.randn(shape, device=dev, dtype=dtype) / math.sqrt(shape[0]) for n, shape in
         (("q", (d, d)), ("k", (d, d)), ("v", (d, d)), ("o", (d, d)), ("gate", (d, ffn)), ("up", (d, ffn)),
          ("down", (ffn, d)))}
    g1, g2 = torch.ones(d, device=dev, dtype=dtype), torch.ones(d, device=dev, dtype=dtype)
    x = torch.randn(batch, q_len, d, device=dev, dtype=dtype)
    past = kv_len - q_len
    k_cache = torch.randn(batch, heads, kv_len, hd, device=dev, dtype=dtype)
    v_cache = torch.randn(batch, heads, kv_len, hd, device=dev, dtype=dtype)
    pos = torch.arange(past, kv_len, device=dev, dtype=torch.float32)
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd))
    ang = torch.outer(pos, inv)
    cos, sin = torch.cat([ang.cos()] * 2, -1).to(dtype), torch.cat([ang.sin()] * 2, -1).to(dtype)

    def rms(t, g):
        return t * torch.rsqrt(t.float().pow(2).mean(-1, keepdim=True) + 1e-5).to(dtype) * g

    def rope(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def call():
        h = rms(x, g1)
        q = (h @ w["q"]).view(batch, q_len, heads, hd).transpose(1, 2)
        k = (h @ w["k"]).view(batch, q_len, heads, hd).transpose(1, 2)
        v = (h @ w["v"]).view(batch, q_len, heads, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k_cache[:, :, past:kv_len] = k  # append to the cache in place
        v_cache[:, :, past:kv_len] = v
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # the kernel the attention cases time, so one model serves both
            a = sdpa(q, k_cache, v_cache, is_causal=q_len > 1 and past == 0)
        y = x + a.transpose(1, 2).reshape(batch, q_len, d) @ w["o"]
        h2 = rms(y, g2)
        return y + (torch.nn.functional.silu(h2 @ w["gate"]) * (h2 @ w["up"])) @ w["down"]
    weight_bytes = 2 * (4 * d * d + 3 * d * ffn)
    kv_bytes = 2 * 2 * batch * heads * kv_len * hd
    return call, weight_bytes + kv_bytes + 2 * 2 * batch * q_len * d


def measure_layers(rows: list, info: dict, quick: bool, trace_dir: str | None = None) -> None:
    torch = _torch()
    cases = [("prefill", 1, 512), ("prefill", 1, 2048), ("prefill", 1, 4096), ("prefill", 4, 2048),
             ("decode", 1, 512), ("decode", 1, 2048), ("decode", 1, 4096), ("decode", 8, 2048), ("decode", 8, 4096),
             ("decode", 32, 2048)]
    if quick:
        cases = cases[::3]
    d, ffn, heads, hd = 4096, 11008, 32, 128
    for phase, batch, length in cases:
        q_len = length if phase == "prefill" else 1
        holder = {}

        def make(i, batch=batch, q_len=q_len, length=length):
            call, nbytes = llama_layer(torch, batch, q_len, length, torch.bfloat16)
            holder["bytes"] = nbytes
            return call

        t = time_graph(make, 2 * (4 * d * d + 3 * d * ffn))
        tokens = batch * q_len
        flops = 2 * tokens * (4 * d * d + 3 * d * ffn) + 4 * batch * heads * q_len * length * hd // (2 if phase == "prefill" else 1)
        case = f"llama2_7b_{phase}_b{batch}_{'seq' if phase == 'prefill' else 'kv'}{length}"
        try:
            kernels = profile_kernels(torch, make(0), f"{trace_dir}/{case}.kernels.csv" if trace_dir else None)
        except Exception as err:  # the timing above stands; only the kernel count is lost
            print(f"{case}: profiler failed: {type(err).__name__}: {err}", flush=True)
            kernels = []
        rows.append({**info, "class": "layer", "case": case,
                     "dtype": "bf16", "batch": batch, "q_len": q_len, "kv_len": length, "causal": phase == "prefill",
                     "flops": flops, "bytes": holder["bytes"], "kernels": len(kernels), **t})
        torch.cuda.empty_cache()


def profile_kernels(torch, call, out: str | None) -> list[tuple[str, float]]:
    """(name, GPU µs) of every CUDA kernel one eager ``call()`` launches (torch.profiler); written to ``out`` if given."""
    from torch.profiler import ProfilerActivity, profile

    call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    kernels = [(e.name, e.device_time) for e in prof.events() if e.device_type.name == "CUDA" and e.device_time > 0
               and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
    if out:
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["kernel", "gpu_us"])
            writer.writerows((name[:200], f"{us:.3f}") for name, us in kernels)
    return kernels


def measure_ceilings(rows: list, info: dict) -> None:
    """The two calibration ceilings: device-to-device copy bandwidth and eager launch overhead."""
    torch = _torch()
    n = 1 << 30

    def make(i):
        src = torch.empty(n, device="cuda", dtype=torch.uint8).random_()
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)

    t = time_graph(make, 2 * n)
    rows.append({**info, "class": "ceiling", "case": "d2d_copy_1GiB", "dtype": "u8", "flops": 0, "bytes": 2 * n, **t})
    a = torch.randn(8, 8, device="cuda")
    for _ in range(100):
        a.add_(1)
    torch.cuda.synchronize()
    graph_launch(torch, rows, info, a)
    samples = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        for _ in range(1000):
            a.add_(1)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) / 1000 * 1e6)
    rows.append({**info, "class": "ceiling", "case": "eager_launch_tiny_kernel", "dtype": "fp32", "flops": 64, "bytes": 512,
                 "median_us": statistics.median(samples), "p10_us": sorted(samples)[1], "p90_us": sorted(samples)[-2],
                 "sets": 1, "replays": 1000})


def graph_launch(torch, rows: list, info: dict, a) -> None:
    """Per-kernel time of a chain of 256 tiny kernels captured in one CUDA graph (graph-replayed launch cost)."""
    chain = 256
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        a.add_(1)
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        for _ in range(chain):
            a.add_(1)
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(SAMPLES):
        start.record()
        for _ in range(20):
            graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / (20 * chain))
    samples.sort()
    rows.append({**info, "class": "ceiling", "case": "graph_launch_tiny_kernel", "dtype": "fp32", "flops": 64, "bytes": 512,
                 "median_us": statistics.median(samples), "p10_us": samples[1], "p90_us": samples[-2],
                 "sets": 1, "replays": 20 * chain})


def measure_elementwise(rows: list, info: dict, quick: bool) -> None:
    """bf16 out-of-place adds y = x + x from 64 Ki to 256 Mi elements: the small-kernel time and streaming bandwidth."""
    torch = _torch()
    sizes = [1 << p for p in range(16, 29, 2)]
    for n in sizes[::2] if quick else sizes:
        def make(i, n=n):
            x = torch.randn(n, device="cuda", dtype=torch.bfloat16)
            y = torch.empty_like(x)
            return lambda: torch.add(x, x, out=y)

        t = time_graph(make, 4 * n)
        rows.append({**info, "class": "elementwise", "case": f"add_bf16_{n}", "dtype": "bf16", "flops": n, "bytes": 4 * n, **t})
        torch.cuda.empty_cache()


def _write(path: str, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="a third of the cases (to try the harness)")
    parser.add_argument("--only", choices=["gemm", "attention", "layer", "ceiling", "elementwise"], action="append")
    parser.add_argument("--trace-dir", help="write each layer's kernel list (torch.profiler, one eager call) here")
    args = parser.parse_args()
    torch = _torch()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    info = gpu_info()
    global L2_BYTES
    L2_BYTES = info["l2_bytes"] or L2_BYTES
    rows: list[dict] = []
    steps = {"ceiling": measure_ceilings, "elementwise": measure_elementwise, "gemm": measure_gemms,
             "attention": measure_attention, "layer": measure_layers}
    for name, step in steps.items():
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        try:
            if name == "ceiling":
                step(rows, info)
            elif name == "layer":
                step(rows, info, args.quick, args.trace_dir)
            else:
                step(rows, info, args.quick)
        except Exception as err:  # keep what was measured; say what failed
            print(f"{name}: FAILED after {sum(r['class'] == name for r in rows)} cases: {type(err).__name__}: {err}", flush=True)
            torch.cuda.empty_cache()
        print(f"{name}: {sum(r['class'] == name for r in rows)} cases in {time.time() - t0:.0f} s", flush=True)
        _write(args.out, rows)  # after every stage, so a time-out loses only the stage in flight
    print(f"{'class':<10} {'case':<34} {'dtype':<5} {'median us':>11} {'TFLOP/s':>8} {'GB/s':>8}")
    for r in rows:
        s = r["median_us"] / 1e6
        print(f"{r['class']:<10} {r['case']:<34} {r['dtype']:<5} {r['median_us']:>11.2f} "
              f"{r['flops'] / s / 1e12:>8.1f} {r['bytes'] / s / 1e9:>8.0f}")


if __name__ == "__main__":
    main()
