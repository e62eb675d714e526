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

#: the ops of loops and run-time Ifs (compiler/ops/loops.py): the interpreter runs them as
#: the artifact's run function does, repeating or skipping the nodes of a region
LOOP_OPS = frozenset(("loop_begin", "loop_end", "if_begin", "if_else", "if_end",
                      "loop_carry", "loop_buffer", "loop_next", "loop_write", "loop_result"))


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
    control = _Control(graph.nodes, env)
    at = 0
    while at < len(graph.nodes):
        node = graph.nodes[at]
        if node.op in LOOP_OPS:
            at = control.step(at)
            continue
        at += 1
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


class _Control:
    """Loops and run-time Ifs for run_graph: which node runs next, and the values the loop ops
    write in place (a state's next value, a scan output's slice: the artifact writes them into
    the bytes of the value they update, so here they replace that value's array)."""

    def __init__(self, nodes, env: dict[int, np.ndarray]):
        self.nodes, self.env = nodes, env
        self.root: dict[int, int] = {}        # id(value written in place) -> id(its bytes)
        self.trips: dict[str, int] = {}       # loop -> its iterations this run
        self.ends: dict[str, int] = {}        # region name -> index of its closing marker
        self.begins: dict[str, int] = {}
        self.elses: dict[str, int] = {}
        for i, n in enumerate(nodes):
            if n.op in ("loop_next", "loop_write"):
                written = n.inputs[0]
                self.root[id(n.output)] = self.root.get(id(written), id(written))
            name = n.attrs.get("loop")
            if n.op in ("loop_end", "if_end"):
                self.ends[name] = i
            elif n.op in ("loop_begin", "if_begin"):
                self.begins[name] = i
            elif n.op == "if_else":
                self.elses[name] = i

    def read(self, value: Value) -> np.ndarray:
        if value.is_constant:
            return value.data
        return _read(self.env, value) if id(value) not in self.root else \
            self.env[self.root[id(value)]]

    def _set(self, value: Value, array: np.ndarray) -> None:
        self.env[id(value)] = array

    def step(self, at: int) -> int:
        """Run the loop op at index `at`; the index of the node that runs next."""
        node = self.nodes[at]
        op, attrs, name = node.op, node.attrs, node.attrs.get("loop")
        if op == "loop_begin":
            given = list(node.inputs)
            trip = attrs["bound"]
            if attrs.get("trip"):
                trip = min(max(int(self.read(given.pop(0)).reshape(-1)[0]), 0), trip)
            if attrs.get("cond") and not bool(self.read(given.pop(0)).reshape(-1)[0]):
                trip = 0
            self.trips[name] = trip
            self._set(node.output, np.array(0, np.int64))
            if trip == 0:
                self._set(self.nodes[self.ends[name]].output, np.array(0, np.int64))
                return self.ends[name] + 1
        elif op == "loop_end":
            done = int(self.read(node.inputs[0])) + 1
            stop = attrs.get("cond") and not bool(self.read(node.inputs[1]).reshape(-1)[0])
            if done < self.trips[name] and not stop:
                self.env[id(self.nodes[self.begins[name]].output)] = np.array(done, np.int64)
                return self.begins[name] + 1
            self._set(node.output, np.array(done, np.int64))
        elif op == "if_begin":
            self._set(node.output, np.array(0, np.int64))
            if not bool(self.read(node.inputs[0]).reshape(-1)[0]):
                self._set(self.nodes[self.elses[name]].output, np.array(0, np.int64))
                return self.elses[name] + 1
        elif op == "if_else":   # reached at the end of the then branch: skip the else one
            self._set(self.nodes[self.ends[name]].output, np.array(0, np.int64))
            return self.ends[name] + 1
        elif op == "if_end":
            self._set(node.output, np.array(0, np.int64))
        elif op == "loop_carry":
            self._set(node.output, np.array(self.read(node.inputs[0]), copy=True))
        elif op == "loop_buffer":
            value = node.output
            self._set(value, np.zeros(value.shape, value.dtype.numpy))
        elif op == "loop_next":
            key = self.root[id(node.output)]
            self.env[key] = np.array(self.read(node.inputs[1]), copy=True)
            self.env[id(node.output)] = self.env[key]
        elif op == "loop_write":
            acc, y, counter = node.inputs
            buffer = self.read(acc)
            row = int(self.read(counter))
            if attrs.get("reverse"):
                row = acc.shape[attrs["axis"]] - 1 - row
            index = [slice(None)] * buffer.ndim
            index[attrs["axis"]] = row
            buffer[tuple(index)] = self.read(y)
            self.env[id(node.output)] = buffer
        else:   # loop_result: a copy after the loop
            self._set(node.output, np.array(self.read(node.inputs[0]), copy=True))
        return at + 1
