"""A lowered model as the kernels an unfused implementation launches, with their FLOPs and bytes.

Every matmul Einsum is a kernel of its own; every run of consecutive other Einsums (RMSNorm,
RoPE, softmax, an activation) is one operator kernel that reads its inputs from memory once and
writes back only what other kernels read. Tiered-memory, GPU and PIM models all start from this.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.ir import DTYPE_BYTES


@dataclass(frozen=True)
class Op:
    """One kernel as work: FLOPs and the bytes it reads and writes, weights and KV among them;
    ``matmul`` when it multiplies (a GEMM or GEMV) rather than streams elementwise."""

    name: str
    flops: float
    in_bytes: float
    out_bytes: float
    weight_bytes: float
    kv_bytes: float
    matmul: bool = False


def model_ops(cfg, phase: str, batch: int = 1, seq: int | None = None, kv_len: int | None = None) -> tuple[list[Op], list[Op], int]:
    """(one decoder layer's kernels, the LM head's kernels, layers) from the Transformer lowering.

    A kernel is what an unfused implementation launches: every matmul Einsum alone, and every
    run of consecutive other Einsums (RMSNorm, RoPE, softmax, SwiGLU's gate) as one operator
    that reads its inputs from HBM once and writes back only what others read."""
    from workloads import lower

    program = lower(cfg, phase, batch=batch, seq=seq, kv_len=kv_len)
    kinds, views = program.meta["kinds"], program.meta.get("views", {})
    out = {}
    for seg in program.segments:
        c = seg.cascade
        einsums = [e for e in c.einsums if e.name not in views.get(seg.name, ())]  # views are not work
        for e in c.einsums:  # a view (past keys as part of all keys) has its source's kind
            if e.name in views.get(seg.name, ()) and any(kinds.get(a.tensor) == "kv" for a in e.inputs):
                kinds = {**kinds, e.output.tensor: "kv"}
        groups: list[list] = []
        for e in einsums:
            matmul = "mac" in c.einsum_op_counts(e)
            if matmul or not groups or groups[-1][-1][1]:
                groups.append([(e, matmul)])
            else:
                groups[-1].append((e, matmul))
        out[seg.name] = ([_kernel(c, [e for e, _ in g], kinds) for g in groups], seg.repeat)
    layer, layers = out["layer"]
    head = out.get("head", ([], 1))[0]
    return layer, head, layers


def _kernel(c, group: list, kinds: dict) -> Op:
    """One kernel of Einsums ``group``: FLOPs, and the bytes it reads and writes through HBM."""
    made = {e.output.tensor for e in group}
    flops, reads, written = 0.0, {}, 0.0
    for e in group:
        counts = c.einsum_op_counts(e)
        flops += 2 * counts.get("mac", 0) + sum(n for op, n in counts.items() if op != "mac")
        reads.update({a.tensor: c.tensor_bytes(a.tensor) for a in e.inputs if a.tensor not in made})
    outside = {a.tensor for e in c.einsums if e not in group for a in e.inputs} | set(c.outputs)
    for e in group:
        if e.output.tensor in outside:
            written += c.output_points(e) * DTYPE_BYTES[c.tensor(e.output.tensor).dtype]
    return Op("+".join(e.name for e in group), flops, float(sum(reads.values())), float(written),
              float(sum(b for t, b in reads.items() if kinds.get(t) == "weight")),
              float(sum(b for t, b in reads.items() if kinds.get(t) == "kv")),
              any("mac" in c.einsum_op_counts(e) for e in group))
