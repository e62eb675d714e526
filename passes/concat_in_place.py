"""Concatenate NHWC channels in place: the producers write straight into the result.

A channel concat of NHWC values copies every input once more. When an input is the result
of an NHWC conv group (whose kernels can write pixel rows with a stride) and nothing else
reads it, that group writes its channels directly into the concat's output instead
(FusedGroup.into = (output, channel offset)); the concat is then left to copy only what was
not written in place, often nothing.

    a = conv{NHWC}(x); b = conv{NHWC}(y); c = concat(a, b, axis=3)
 => conv writes c[..., 0:Ca]; conv writes c[..., Ca:Ca+Cb]; concat copies nothing

Liveness gives the output its bytes from the first writer on. Graph outputs keep their own
buffers (the caller's), so a concat producing one is left as it is.
"""

from __future__ import annotations

from ..compiler.ir import FusedGroup, Graph, Value


def concat_in_place(graph: Graph) -> Graph:
    """Channel concats of conv results cost no copy; runs after fusion."""
    if graph.groups is None:
        return graph
    group_of = {id(n): g for g in graph.groups for n in g.nodes}
    outputs = {id(v) for v in graph.outputs}
    for group in graph.groups:
        node = group.anchor
        if node.op != "concat" or len(group.nodes) != 1 or len(node.output.shape) != 4 \
                or node.attrs["axis"] % 4 != 3 or id(node.output) in outputs:
            continue
        offset = 0
        for value in node.inputs:
            writer = group_of.get(id(value.producer)) if value.producer else None
            if writer is not None and _writes_rows(writer, value) \
                    and [id(u) for u in value.users] == [id(node)] and id(value) not in outputs:
                writer.into = (node.output, offset)
            offset += value.shape[3]
    return graph


def _writes_rows(group: FusedGroup, value: Value) -> bool:
    """Whether `group` produces `value` through an NHWC conv kernel (which takes the output
    row stride from Storage.row_stride), and writes it nowhere else."""
    anchor = group.anchor
    return anchor.op == "conv2d" and anchor.attrs.get("layout") == "NHWC" \
        and group.nodes[-1].output is value and group.into is None
