"""Make the tensors the quantize pass recorded outputs of the artifact, so the driver can
read them: their float values in the calibration build (what calibration measures), their
dequantized values in the report build (what the accuracy report compares with those).

Runs when graph.metadata["observe_quantized"] is set; each tensor becomes one more output
named OBSERVED + its float tensor's name, after the model's own outputs. A graph input is
left out: its values are the samples themselves.
"""

from __future__ import annotations

from ..compiler.ir import Graph
from .quantize import RECORD

#: the metadata flag that asks for it
REQUEST = "observe_quantized"
#: what each observed tensor's output name starts with
OBSERVED = "kiln.observed:"


def observe_quantized(graph: Graph) -> Graph:
    """Append every recorded tensor to the graph outputs (see the module docstring)."""
    if not graph.metadata.get(REQUEST):
        return graph
    names = list(graph.metadata.get("output_names") or [v.name for v in graph.outputs])
    inputs = {id(v) for v in graph.inputs}
    for record in graph.metadata.get(RECORD, []):
        if id(record.observed) in inputs:
            continue
        graph.outputs.append(record.observed)
        names.append(OBSERVED + record.name)
    graph.metadata["output_names"] = names
    return graph
