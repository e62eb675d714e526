"""Helpers for pass tests: build small graphs by hand, run them, compare printed IR."""

from __future__ import annotations

import textwrap

import numpy as np

from kiln.compiler.dtypes import DType
from kiln.compiler.ir import Graph, TensorType, Value
from kiln.compiler.interpret import run_graph
from kiln.compiler.ops import infer_types
from kiln.compiler.printer import print_graph
from kiln.compiler.verifier import verify

F32 = DType.float32
CONV_ATTRS = dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)


def f32(*shape: int) -> TensorType:
    return TensorType(F32, tuple(shape))


def op(graph: Graph, name: str, kind: str, inputs: list[Value], **attrs) -> Value:
    """Add node `kind(inputs)` named `name` (its output gets the same name)."""
    types = infer_types(kind, [v.type for v in inputs], attrs)
    return graph.add_node(kind, inputs, types, attrs, name=name).output


def conv(graph: Graph, name: str, x: Value, out_channels: int, bias: bool = True,
         seed: int = 0, **attrs) -> Value:
    """A 3x3 conv2d (padding 1 keeps the size) with random constant weights."""
    rng = np.random.default_rng(seed)
    channels = x.shape[1]
    w = graph.constant(rng.standard_normal((out_channels, channels, 3, 3)).astype(np.float32),
                       f"{name}_w")
    inputs = [x, w]
    if bias:
        inputs.append(graph.constant(rng.standard_normal(out_channels).astype(np.float32),
                                     f"{name}_b"))
    return op(graph, name, "conv2d", inputs, **{**CONV_ATTRS, **attrs})


def batch_norm(graph: Graph, name: str, x: Value, seed: int = 1, exact: bool = False
               ) -> Value:
    """batch_norm over x's channels with random parameters, or (`exact`, at most 4 channels)
    ones whose folded forms are exact: k = gamma / sqrt(var) = [0.5, 2, 2, 0.5],
    beta - mean * k = [-0.5, 1, -4, 0] (epsilon 0)."""
    c = x.shape[1]
    if exact:
        params = [[1, 2, 1, 0.5], [0, 1, 0, 0], [1, 0, 2, 0], [4, 1, 0.25, 1]]
        params = [np.array(p[:c]) for p in params]
    else:
        rng = np.random.default_rng(seed)
        params = [rng.uniform(0.5, 1.5, c), rng.standard_normal(c), rng.standard_normal(c),
                  rng.uniform(0.5, 2.0, c)]
    values = [graph.constant(p.astype(np.float32), f"{name}_{label}")
              for p, label in zip(params, ("gamma", "beta", "mean", "var"))]
    return op(graph, name, "batch_norm", [x] + values, epsilon=0.0 if exact else 1e-5)


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate the graph with the ops' numpy references (compiler.interpret); the outputs
    in order."""
    return list(run_graph(graph, feeds).values())


def random_feeds(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.shape).astype(v.dtype.numpy) for v in graph.inputs}


def check(graph: Graph, expected: str) -> None:
    """Verify the graph and compare its printed IR with `expected` (dedented)."""
    verify(graph)
    actual = print_graph(graph)
    want = textwrap.dedent(expected).strip() + "\n"
    assert actual == want, f"printed IR differs.\n--- actual ---\n{actual}--- expected ---\n{want}"
