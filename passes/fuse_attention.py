"""Rewrite multi-head attention, as exporters write it, into one `attention` op.

    Qh = transpose(reshape(q), 0 2 1 3)      Kt = transpose(reshape(k), 0 2 3 1)
    Vh = transpose(reshape(v), 0 2 1 3)
    s  = matmul(Qh, Kt) [* c | / c] [+ mask]
    o  = transpose(matmul(softmax(s, last axis), Vh), 0 2 1 3) [-> reshape to b, s, h*d]

becomes attention(q, k, v[, mask]): one kernel that computes a block of rows of one head's
scores, masks them, normalizes them and multiplies by V while they sit in cache, reading
q, k, v where the projections wrote them and writing heads merged; the transposes, the
reshapes and the [b, h, s, s] round trips through memory disappear, and so do ten kernel
launches per layer. Only float32, and only where one head's K^T and a block of scores fit
in a kernel's stack workspace.
"""

from __future__ import annotations

from ..compiler.dtypes import DType
from ..compiler.ir import Graph, Node, Value
from ..compiler.ops.attention import fits_stack
from .dce import dce
from .patterns import other_input, replace_with, scalar_constant, sole_reader


def fuse_attention(graph: Graph) -> Graph:
    """Each matched attention block becomes one attention op; its nodes are dropped."""
    changed = False
    for node in list(graph.nodes):
        if node.op == "softmax" and node in graph.nodes:
            match = _match(graph, node)
            if match is not None:
                last, inputs, attrs = match
                replace_with(graph, last, "attention", inputs, attrs)
                changed = True
    return dce(graph) if changed else graph


def _producer(value: Value, op: str) -> Node | None:
    node = value.producer
    return node if node is not None and node.op == op else None


def _split_heads(value: Value, perm: tuple[int, ...]) -> Value | None:
    """The [b, s, h, d]-laid-out tensor that transpose `value` (with `perm`) reads,
    looking through a reshape (which keeps the layout)."""
    node = _producer(value, "transpose")
    if node is None or tuple(node.attrs["perm"]) != perm or node.inputs[0].type.rank != 4:
        return None
    source = node.inputs[0]
    reshape = _producer(source, "reshape")
    if reshape is not None and reshape.inputs[0].type.numel == source.type.numel:
        return reshape.inputs[0]
    return source


def _match(graph: Graph, softmax: Node):
    """(last node, inputs, attrs) of the attention block around `softmax`, else None."""
    x = softmax.inputs[0]
    if x.dtype is not DType.float32 or x.type.rank != 4 or softmax.attrs["axis"] != 3:
        return None
    b, h, sq, sk = x.shape
    # scores side: [+ mask] after [* or / scale] after matmul(Qh, Kt)
    current, mask, scale = x, None, 1.0
    node = current.producer
    if node is not None and node.op == "add":
        scores = next((v for v in node.inputs if _leads_to_scores(v)), None)
        mask = other_input(node, scores) if scores is not None else None
        if mask is None or not _broadcasts(mask, x.shape) or \
                sole_reader(graph, scores, "add") is None:
            return None
        current = scores
        node = current.producer
    if node is not None and node.op in ("mul", "div"):
        scores = next((v for v in node.inputs if _producer(v, "matmul") is not None), None)
        factor = other_input(node, scores) if scores is not None else None
        c = scalar_constant(factor) if factor is not None else None
        if c is None or (node.op == "div" and (c == 0 or node.inputs[0] is not scores)) or \
                sole_reader(graph, scores, node.op) is None:
            return None
        scale = c if node.op == "mul" else 1.0 / c
        current = scores
    qk = _producer(current, "matmul")
    if qk is None or sole_reader(graph, current, ("mul", "div", "add", "softmax")) is None:
        return None
    q = _split_heads(qk.inputs[0], (0, 2, 1, 3))
    k = _split_heads(qk.inputs[1], (0, 2, 3, 1))
    # output side: matmul(P, Vh) -> transpose 0 2 1 3 [-> reshape]
    pv = sole_reader(graph, softmax.output, "matmul")
    if q is None or k is None or pv is None or pv.inputs[0] is not softmax.output:
        return None
    v = _split_heads(pv.inputs[1], (0, 2, 1, 3))
    merge = sole_reader(graph, pv.output, "transpose")
    if v is None or merge is None or tuple(merge.attrs["perm"]) != (0, 2, 1, 3):
        return None
    d = pv.output.shape[3]
    if q.type.numel != b * sq * h * d or k.type.numel != b * sk * h * d or \
            v.type.numel != b * sk * h * d or any(t.dtype is not DType.float32
                                                  for t in (q, k, v)):
        return None
    if not fits_stack(sk, d):
        return None
    last = merge
    reshape = sole_reader(graph, merge.output, "reshape")
    if reshape is not None:
        last = reshape
    attrs = {"batch": b, "heads": h, "seq_q": sq, "seq_k": sk, "head_dim": d,
             "scale": float(scale), "out_shape": tuple(last.output.shape)}
    return last, [q, k, v] + ([mask] if mask is not None else []), attrs


def _leads_to_scores(value: Value) -> bool:
    """`value` is matmul(..) or matmul(..) times or over something."""
    node = value.producer
    if node is not None and node.op in ("mul", "div"):
        return any(_producer(v, "matmul") is not None for v in node.inputs)
    return node is not None and node.op == "matmul"


def _broadcasts(mask: Value, shape: tuple[int, ...]) -> bool:
    """`mask` is float32 and broadcasts (numpy rules) to `shape` without growing it."""
    if mask.dtype is not DType.float32 or mask.type.rank > len(shape):
        return False
    lead = len(shape) - mask.type.rank
    return all(m in (1, shape[lead + i]) for i, m in enumerate(mask.shape))
