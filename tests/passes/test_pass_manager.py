"""The pass manager and the whole pipeline on a small ResNet-like network."""

import numpy as np
import pytest

from kiln.compiler.errors import KilnError
from kiln.compiler.ir import Graph
from kiln.compiler.verifier import VerificationError
from kiln.passes.manager import PIPELINE, Pass, pass_names, run_passes

from pass_helpers import batch_norm, conv, f32, op, random_feeds, run


def resnet_like(blocks: int = 3) -> Graph:
    """Stem conv+bn+relu, then residual blocks (block 1 with a shortcut conv), with
    identities and a shape op the importer might have left behind."""
    g = Graph("resnetish")
    x = g.add_input("x", f32(1, 3, 16, 16))
    h = op(g, "stem_relu", "relu", [batch_norm(g, "stem_bn", conv(g, "stem", x, 8))])
    for i in range(blocks):
        a = op(g, f"b{i}_relu1", "relu",
               [batch_norm(g, f"b{i}_bn1", conv(g, f"b{i}_conv1", h, 8, seed=i), seed=i)])
        a = op(g, f"b{i}_id", "identity", [a])
        b = batch_norm(g, f"b{i}_bn2", conv(g, f"b{i}_conv2", a, 8, bias=False, seed=9 + i))
        shortcut = h
        if i == 1:
            shortcut = conv(g, f"b{i}_down", h, 8, seed=20)
        h = op(g, f"b{i}_out", "relu", [op(g, f"b{i}_add", "add", [b, shortcut])])
    op(g, "unused", "shape", [h])
    pooled = op(g, "pool", "reduce_mean", [h], axes=(2, 3), keepdims=False)
    side = batch_norm(g, "side_bn", pooled)   # not after a conv: decomposed into mul + add
    g.outputs = [side]
    return g


def test_pipeline_order():
    assert [p.name for p in PIPELINE] == ["qdq_to_integer", "fuse_integer_dequantize",
                                          "qdq_elementwise", "fold_constants", "dce",
                                          "fuse_layer_norm", "fuse_gelu", "fuse_swish", "fuse_attention",
                                          "fold_batchnorm",
                                          "decompose", "fold_constants", "dce",
                                          "quantize", "qdq_to_integer",
                                          "fuse_integer_dequantize", "observe_quantized", "dce",
                                          "channels_last", "pad_convs", "pad_qconv_channels",
                                          "fuse", "concat_in_place", "loop_in_place",
                                          "plan_memory"]
    assert all(p.why for p in PIPELINE)


def test_pipeline_keeps_results_and_verifies_each_pass():
    g = resnet_like()
    feeds = random_feeds(g)
    (before,) = run(g, feeds)
    lines = []
    run_passes(g, verify_each=True, log=lines.append)
    (after,) = run(g, feeds)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    assert len(lines) == len(PIPELINE)
    assert "batch_norm" not in g.op_histogram() and "identity" not in g.op_histogram()
    kernels = ["+".join(n.op for n in grp.nodes) for grp in g.groups]
    assert [grp.name for grp in g.groups][:4] == ["stem", "b0_conv1", "b0_conv2", "b1_conv1"]
    block = ["conv2d+relu", "conv2d+add+relu"]
    assert kernels == ["conv2d+relu"] + block + ["conv2d+relu", "conv2d"] + block[1:] + block \
        + ["reduce_mean+mul+add"]
    assert g.plan.lower_bound <= g.plan.arena_size <= 2 * g.plan.lower_bound


def test_dump_after_a_named_pass():
    g = resnet_like(blocks=1)
    dumps = []
    run_passes(g, dump_after={"fuse"}, log=dumps.append)
    (dump,) = [d for d in dumps if d.startswith("// IR after")]
    assert dump.startswith("// IR after pass 21: fuse\ngraph resnetish(")
    assert "  group stem (conv2d+relu) -> %stem_relu {" in dump and "plan arena" not in dump


def test_dump_goes_to_stderr_without_log(capsys):
    run_passes(resnet_like(blocks=1), dump_after={"plan_memory"})
    assert "plan arena=" in capsys.readouterr().err


def test_unknown_pass_name_is_a_user_error():
    with pytest.raises(KilnError, match="no pass named fusion; passes are: qdq_to_integer, "
                                        "fuse_integer_dequantize, qdq_elementwise, "
                                        "fold_constants"):
        run_passes(resnet_like(blocks=1), dump_after={"fusion"})


def test_verify_each_names_the_pass_that_broke_the_graph():
    def breaks(graph: Graph) -> Graph:
        graph.nodes.reverse()
        return graph

    pipeline = [PIPELINE[3], Pass("breaks", breaks, "a bug")]
    assert pass_names(pipeline) == ["fold_constants", "breaks"]
    with pytest.raises(VerificationError, match=r"after pass 1 \(breaks\)"):
        run_passes(resnet_like(blocks=1), verify_each=True, pipeline=pipeline)
