"""QDQ chains around the 8-bit elementwise ops (passes/qdq_elementwise.py) against ONNX
Runtime running the same QDQ model, bit for bit: Add and Mul over every pair of values
(there ONNX Runtime's fused QLinearAdd rounds differently from the float chain, and Kiln
follows it), broadcast either way, Sigmoid / LeakyRelu / Relu, MaxPool (requantized and
not), AveragePool, GlobalAveragePool, Concat; int8 and uint8. The chains ONNX Runtime
fuses into its QLinear ops leave no dequantize or quantize behind (8-bit in, 8-bit out);
Relu, AveragePool and per-channel ones keep the float chain, still exact."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes

import qdq_elementwise_models as qm
from kernel_build import assert_bits_equal_onnxruntime

DTYPES = {"int8": np.int8, "uint8": np.uint8}
#: builder -> how many quantize nodes it leaves after the passes (the float chains kept)
BUILDERS = {"binary": (qm.binary, 0), "unary": (qm.unary, 1), "concat": (qm.concat, 0),
            "pooling": (qm.pooling, 1), "per_channel": (qm.per_channel, 3)}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("form", list(BUILDERS))
def test_outputs_equal_onnxruntime(tmp_path, form, dtype):
    build, float_chains = BUILDERS[form]
    model, feed = build(np.random.default_rng(zlib.crc32(f"{form}-{dtype}".encode())),
                        DTYPES[dtype])
    graph = run_passes(import_model(model), verify_each=True)
    assert sum(n.op == "quantize" for n in graph.nodes) == float_chains, \
        [n.op for n in graph.nodes]
    assert_bits_equal_onnxruntime(tmp_path, model, feed, form)
