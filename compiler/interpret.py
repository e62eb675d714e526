"""A numpy interpreter for the graph IR: runs every node's reference (compiler.ops).

A debugging and testing aid: it is the frontend's correctness check against ONNX Runtime
before codegen exists, and a way to see what any intermediate Value holds.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import InputError
from .ir import Graph, Value
from .ops import evaluate


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray],
              keep: bool = False) -> dict[str, np.ndarray]:
    """Evaluate `graph` on `feeds` (input name -> array); returns output name -> array.

    Outputs are keyed by graph.metadata["output_names"] (the model's names) when present,
    else by the output Values' names. With `keep`, every Value computed is returned too,
    keyed by its IR name.
    """
    env: dict[int, np.ndarray] = {}
    missing = [v.name for v in graph.inputs if v.name not in feeds]
    if missing:
        raise InputError(f"no value fed for input(s) {', '.join(missing)}")
    for value in graph.inputs:
        env[id(value)] = _checked_feed(value, feeds[value.name])
    computed: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        arrays = [_read(env, v) for v in node.inputs]
        try:
            results = evaluate(node.op, arrays, node.attrs)
        except Exception as exc:
            raise RuntimeError(f"evaluating node '{node.name}' ({node.op}, inputs "
                               f"{[str(v.type) for v in node.inputs]}): {exc}") from exc
        for value, result in zip(node.outputs, results):
            if result.shape != value.shape or result.dtype != value.dtype.numpy:
                raise RuntimeError(f"node '{node.name}' ({node.op}) produced "
                                   f"{result.dtype}{list(result.shape)}, but its output "
                                   f"is typed {value.type}")
            env[id(value)] = result
            if keep:
                computed[value.name] = result
    names = graph.metadata.get("output_names") or [v.name for v in graph.outputs]
    outputs = {name: _read(env, v) for name, v in zip(names, graph.outputs)}
    return {**computed, **outputs} if keep else outputs


def _read(env: dict[int, np.ndarray], value: Value) -> np.ndarray:
    if value.is_constant:
        return value.data
    try:
        return env[id(value)]
    except KeyError:
        raise RuntimeError(f"value '{value.name}' is read before it is computed") from None


def _checked_feed(value: Value, array) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != value.dtype.numpy or array.shape != value.shape:
        raise InputError(f"input '{value.name}' expects {value.type}, got "
                         f"{array.dtype}{list(array.shape)}")
    return array
