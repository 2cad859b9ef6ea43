"""Tiered-memory systems in simpy: decoder layers streamed DDR -> HBM -> on-chip, fused or kernel by kernel.

A step (one decode token, or one prefill) is a list of *chunks* flowing through stages: the
DDR stage reads the chunk's DDR-resident bytes, the HBM stage its HBM bytes (DDR bytes pass
through HBM on their way in), the compute stage its FLOPs, launches and collectives. Each
stage serves one chunk at a time, and at most ``depth`` chunks wait between two stages, so
prefetch overlaps compute and whichever stage is busiest binds -- the result says which.

- fused (a whole decoder layer as one streaming kernel, SN40L): a layer is a few chunks of its
  weights and KV cache; intermediates stay on chip; one launch per layer, and a launch is a
  kernel boundary: the pipeline drains, the launch takes its time, the next layer fills it;
- unfused (kernel by kernel, GPUs or an SN40L without fusion): every Einsum of the layer is a
  kernel that reads its inputs from and writes its output to HBM, one launch each, one after
  another.

Tensor parallelism splits every layer over the sockets (each does 1/p of its FLOPs and bytes)
and adds two ring all-reduces of the activations per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor

from arch.tiered import TieredArch, load_tiered, with_values
from mappers.placement import Item, Placement, place
from workloads.kernels import model_ops

CHUNKS_PER_LAYER = 16  # pieces a fused layer's weights stream in, so compute overlaps the stream


@dataclass(frozen=True)
class StepResult:
    """One simulated step: its time, each stage's busy time, launches and events."""

    seconds: float
    busy: dict
    kernels: int
    events: int
    placement: Placement | None = None

    @property
    def bound(self) -> str:
        """The busiest stage: the tier (or compute) that binds."""
        return max(self.busy, key=self.busy.get)


def run_pipeline(chunks: list[dict[str, float]], rates: dict[str, float | None], depth: int = 2) -> tuple[float, dict, int]:
    """Simulate ``chunks`` through the stages of ``rates`` (in order) with simpy.

    A chunk's work at a stage is in that stage's units (bytes, FLOPs); a ``None`` rate means the
    work is already seconds. A chunk with a ``"launch"`` entry starts a new kernel: it waits until
    every earlier chunk has left the last stage, then the launch takes that many seconds (a
    kernel boundary drains the pipeline). Returns (seconds, busy seconds per stage and for
    "launch", events)."""
    import simpy

    env = simpy.Environment()
    names = list(rates)
    queues = [simpy.Store(env, capacity=depth) for _ in names[1:]]
    finished = [env.event() for _ in chunks]
    busy = dict.fromkeys(names + ["launch"], 0.0)
    events = [0]

    def stage(k: int):
        name, rate = names[k], rates[names[k]]
        for i, chunk in enumerate(chunks):
            if k:
                yield queues[k - 1].get()
            elif "launch" in chunk:
                if i:
                    yield finished[i - 1]
                yield env.timeout(chunk["launch"])
                busy["launch"] += chunk["launch"]
            work = chunk.get(name, 0.0)
            t = work if rate is None else work / rate
            if t > 0:
                yield env.timeout(t)
                busy[name] += t
                events[0] += 1
            if k < len(names) - 1:
                yield queues[k].put(i)
            else:
                finished[i].succeed()

    for k in range(len(names)):
        env.process(stage(k))
    env.run()
    return env.now, busy, events[0]


def _allreduce_seconds(arch: TieredArch, nbytes: float, p: int) -> float:
    """An all-reduce of ``nbytes`` over ``p`` sockets, the faster of a ring (2(p-1)/p of the bytes
    per link, 2(p-1) latency steps) and one-shot (every socket sends its bytes to the p-1 others
    at once: (p-1) times the bytes, one latency), as collective libraries choose by size."""
    if p <= 1:
        return 0.0
    bw = arch.bytes_per_s(arch.need("network.bandwidth"))
    lat = arch.need("network.latency_us") * 1e-6
    ring = 2 * (p - 1) / p * nbytes / bw + 2 * (p - 1) * lat
    one_shot = (p - 1) * nbytes / bw + lat
    return min(ring, one_shot)


def step(arch: TieredArch | str, cfg, phase: str = "decode", batch: int = 1, seq: int | None = None,
         kv_len: int | None = None, sockets: int | None = None, fused: bool | None = None,
         launch: str | None = None, depth: int = 2) -> StepResult:
    """One decode token (or one prefill) of ``cfg`` on ``arch``: fused or kernel by kernel (default:
    what the arch does), ``launch`` "software" or "hardware" (default: the arch's), over ``sockets``
    sockets of tensor parallelism (default: the node's)."""
    arch = load_tiered(arch)
    p = sockets or arch.sockets
    fused = arch.fused_layers if fused is None else fused
    launch_s = arch.need(f"launch.{launch or arch.launch.mode}_us") * 1e-6
    layer, head, layers = model_ops(cfg, phase, batch, seq, kv_len)
    peak = arch.peak_tflops * 1e12
    hbm_bw = arch.bytes_per_s(arch.need("tiers.hbm.bandwidth"))
    ddr_bw = arch.bytes_per_s(arch.need("tiers.ddr.bandwidth"))
    w_layer = sum(o.weight_bytes for o in layer) / p
    kv_layer = sum(o.kv_bytes for o in layer) / p
    w_head = sum(o.weight_bytes for o in head) / p
    placement = place([Item("layer_weights", w_layer, layers, w_layer), Item("layer_kv", kv_layer, layers, kv_layer),
                       Item("head_weights", w_head, 1, w_head)],
                      arch.tiers[1:], where=f"{arch.name} ({p} sockets)")
    in_hbm = {name: placement.counts.get((name, "hbm"), 0) for name in ("layer_weights", "layer_kv", "head_weights")}
    tokens = batch * (1 if phase == "decode" else (seq or cfg.max_seq))
    act = tokens * cfg.hidden * 2  # the activations each all-reduce sums
    ar = 2 * _allreduce_seconds(arch, act, p) if p > 1 else 0.0
    chunks: list[dict[str, float]] = []
    kernels = 0
    for ops, repeat in ((layer, layers), (head, 1)):
        for index in range(repeat if ops else 0):  # DDR-resident layers spread evenly, so the DDR stream never idles
            if ops is layer:
                far = (_far(index, layers, in_hbm["layer_weights"]), _far(index, layers, in_hbm["layer_kv"]))
            else:
                far = (in_hbm["head_weights"] == 0, False)
            reduce_s = ar if ops is layer else 0.0
            new = _fused_chunks(ops, p, far, peak, launch_s, reduce_s) if fused else \
                _unfused_chunks(ops, p, far, peak, hbm_bw, ddr_bw, launch_s, reduce_s)
            chunks += new
            kernels += 1 if fused else len(ops)
    rates = {"ddr": ddr_bw, "hbm": hbm_bw, "compute": None} if fused else {"compute": None}
    seconds, busy, events = run_pipeline(chunks, rates, depth)
    return StepResult(seconds, busy, kernels, events, placement)


def _fused_chunks(ops, p: int, far: tuple[bool, bool], peak: float, launch_s: float, reduce_s: float) -> list[dict]:
    """One fused layer (one kernel): its weights, KV cache and input/output streamed in
    CHUNKS_PER_LAYER pieces (the DDR-resident part through DDR too), its FLOPs spread over them,
    the launch before the first and the all-reduces after the last."""
    flops = sum(o.flops for o in ops) / p
    w, kv = sum(o.weight_bytes for o in ops) / p, sum(o.kv_bytes for o in ops) / p
    io = (ops[0].in_bytes - ops[0].weight_bytes + ops[-1].out_bytes) / p  # the layer's input and output
    n = CHUNKS_PER_LAYER
    chunks = [{"ddr": (w * far[0] + kv * far[1]) / n, "hbm": (w + kv + io) / n, "compute": flops / n / peak}
              for _ in range(n)]
    chunks[0]["launch"] = launch_s
    chunks[-1]["compute"] += reduce_s
    return chunks


def _unfused_chunks(ops, p: int, far: tuple[bool, bool], peak: float, hbm_bw: float, ddr_bw: float,
                    launch_s: float, reduce_s: float) -> list[dict]:
    """One layer kernel by kernel: each kernel launched, then max(its FLOPs, its bytes through HBM
    (and DDR for what lives there)); the all-reduces as one more step."""
    chunks = []
    for o in ops:
        from_ddr = (o.weight_bytes * far[0] + o.kv_bytes * far[1]) / p
        memory = (o.in_bytes + o.out_bytes) / p / hbm_bw + from_ddr / ddr_bw
        chunks.append({"launch": launch_s, "compute": max(o.flops / p / peak, memory)})
    if reduce_s:
        chunks.append({"compute": reduce_s})
    return chunks


def _far(index: int, total: int, near: int) -> bool:
    """Whether layer ``index`` of ``total`` is one of the ``total - near`` kept in the far tier, spread evenly."""
    far = total - near
    return (index + 1) * far // total > index * far // total


# Composition of experts ---------------------------------------------------------------------


def expert_bytes(cfg, dtype_bytes: int = 2) -> float:
    """An expert's weights: every parameter of ``cfg`` in ``dtype_bytes``."""
    from workloads.zoo import param_count

    return float(param_count(cfg)["total"] * dtype_bytes)


@dataclass(frozen=True)
class CoECapacity:
    """How many experts a node holds in fast memory (before spilling) and in all its memory."""

    arch: str
    expert_bytes: float
    reserved_hbm_bytes: float
    in_hbm: int
    in_all_tiers: int
    holds_experts_in: str  # where experts live: "ddr" (SN40L) or "hbm" (GPUs, spilling to host)


def coe_capacity(arch: TieredArch | str, expert_cfg, reserved_hbm_bytes: float = 0.0) -> CoECapacity:
    """Experts that fit: in the node's HBM after ``reserved_hbm_bytes`` (router, KV cache), and in
    HBM and DDR together (SN40L keeps every expert in DDR; a DGX spills to host memory)."""
    arch = load_tiered(arch)
    e = expert_bytes(expert_cfg)
    hbm = arch.tier("hbm").capacity * arch.sockets - reserved_hbm_bytes
    ddr = arch.tier("ddr").capacity * arch.sockets
    home = "ddr" if arch.fused_layers else "hbm"
    return CoECapacity(arch.name, e, reserved_hbm_bytes, max(0, floor(hbm / e)),
                       floor(ddr / e) if home == "ddr" else max(0, floor(hbm / e)) + floor(ddr / e), home)


def switch_seconds(arch: TieredArch | str, expert_cfg) -> float:
    """Time to bring one expert into HBM: its bytes over the node's load bandwidth (DDR->HBM or host->GPU),
    every socket copying its 1/p shard at once."""
    arch = load_tiered(arch)
    return expert_bytes(expert_cfg) / arch.bytes_per_s(arch.need("load_bandwidth"))


@dataclass(frozen=True)
class CoEResult:
    """A stream of prompts through router, expert switch and expert: totals and per-part times."""

    arch: str
    experts: int
    prompts: int
    seconds: float
    switch_seconds: float
    switches: int
    expert_seconds: float
    router_seconds: float


def coe_run(arch: TieredArch | str, expert_cfg, experts: int, routes: list[int], new_tokens: int = 20,
            prompt_tokens: int = 128, hbm_slots: int | None = None, values: dict | None = None) -> CoEResult:
    """Run prompts routed to ``routes`` (expert ids) one after another (simpy): the router, the
    switch when the expert is not in HBM (an LRU cache of ``hbm_slots`` experts; default: as
    many as HBM holds beside the router and KV cache; the first ``hbm_slots`` experts are loaded
    before the stream starts), then ``new_tokens`` decode steps of the expert. On a DGX, experts
    beyond what HBM holds stay in host memory and are copied in."""
    import simpy

    arch = load_tiered(arch)
    if values:
        arch = with_values(arch, values)
    kv = expert_cfg.layers * 2 * expert_cfg.kv_heads * expert_cfg.head_dim * 2 * (prompt_tokens + new_tokens)
    router_bytes = expert_bytes(expert_cfg)
    cap = coe_capacity(arch, expert_cfg, router_bytes + kv)
    if experts > cap.in_all_tiers:
        from mappers.placement import PlacementError

        raise PlacementError(f"placement on {arch.name}: {experts} experts of {cap.expert_bytes / 1e9:.2f} GB need "
                             f"{experts * cap.expert_bytes / 1e12:.2f} TB but the node holds {cap.in_all_tiers} "
                             f"({cap.in_all_tiers * cap.expert_bytes / 1e12:.2f} TB); short by "
                             f"{(experts - cap.in_all_tiers) * cap.expert_bytes / 1e12:.2f} TB")
    slots = hbm_slots if hbm_slots is not None else cap.in_hbm
    if cap.holds_experts_in == "hbm" and experts <= cap.in_hbm:
        slots = experts  # a DGX whose HBM holds every expert never switches
    prefill = step(arch, expert_cfg, "prefill", seq=prompt_tokens).seconds
    decode = step(arch, expert_cfg, "decode", kv_len=prompt_tokens).seconds
    switch = switch_seconds(arch, expert_cfg)
    env = simpy.Environment()
    resident: list[int] = list(range(min(slots, experts)))  # the experts that fit are loaded before the stream
    totals = {"switch": 0.0, "switches": 0, "expert": 0.0, "router": 0.0}

    def prompts():
        for expert in routes:
            yield env.timeout(prefill)  # the router reads the prompt and picks the expert
            totals["router"] += prefill
            if expert in resident:
                resident.remove(expert)
            else:
                if slots and len(resident) >= slots:
                    resident.pop(0)
                yield env.timeout(switch)
                totals["switch"] += switch
                totals["switches"] += 1
            if slots:
                resident.append(expert)
            t = prefill + new_tokens * decode
            yield env.timeout(t)
            totals["expert"] += t

    env.process(prompts())
    env.run()
    return CoEResult(arch.name, experts, len(routes), env.now, totals["switch"], totals["switches"], totals["expert"],
                     totals["router"])
