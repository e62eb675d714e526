"""Transformer encoders: both BERT test models (TorchScript and dynamo exporters) compile for
x86_64 at seq 128 and at another seq pinned from the same file, and match ONNX Runtime; the
encoder fusions (LayerNorm, GELU, attention softmax) fire on them."""

from __future__ import annotations

import numpy as np
import pytest

from reference import assert_model_output, run_onnxruntime
from kiln import zoo


def bert_feed(seq: int, padded_from: int | None = None, seed: int = 5) -> dict[str, np.ndarray]:
    """Token ids in the vocabulary, a mask with trailing padding, two segments."""
    rng = np.random.default_rng(seed)
    mask = np.ones((1, seq), np.int64)
    if padded_from is not None:
        mask[:, padded_from:] = 0
    types = np.zeros((1, seq), np.int64)
    types[:, seq // 2:] = 1
    return {"input_ids": rng.integers(0, 30522, (1, seq)).astype(np.int64),
            "attention_mask": mask, "token_type_ids": types}


@pytest.mark.slow
@pytest.mark.parametrize("seq", [128, 40])
@pytest.mark.parametrize("name", zoo.BERT_MODELS)
def test_bert_matches_onnxruntime(name, seq, compile_and_load):
    model = zoo.load(name)
    session = compile_and_load(model, dims={"batch": 1, "seq": seq})
    assert [s.shape for s in session.inputs] == [(1, seq)] * 3
    feed = bert_feed(seq, padded_from=seq - seq // 4)
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = session.run(feed).values()
    assert_model_output(actual, expected, what=f"{name} seq {seq}")


@pytest.mark.parametrize("name", zoo.BERT_MODELS)
def test_bert_encoder_fusions_fire(name):
    """After the pipeline: LayerNorm is one op, GELU is one op in its matmul's epilogue, and
    each layer's attention (QK^T, scale, mask add, softmax, xV, head transposes) is one
    attention kernel reading q, k and v where their projections wrote them."""
    from kiln.frontends.onnx import import_model
    from kiln.passes.manager import run_passes

    graph = run_passes(import_model(zoo.load(name), dims={"batch": 1, "seq": 16}))
    ops = graph.op_histogram()
    assert ops.get("layer_norm", 0) >= 5 and ops.get("gelu", 0) >= 2, ops
    assert "erf" not in ops, ops
    kernels = [[n.op for n in g.nodes] for g in graph.groups]
    assert all(k[0] == "matmul" for k in kernels if "gelu" in k), kernels
    assert ops.get("attention", 0) == 4 and "softmax" not in ops, ops
    assert "transpose" not in ops, ops
    for node in graph.nodes:
        if node.op == "attention":
            assert len(node.inputs) == 4 and node.attrs["heads"] == 4, node.attrs
            assert all(v.producer.op == "add" for v in node.inputs[:3]), node.inputs
