"""Schedules as data: schedule files replay kernels and schedules, misfits are clear errors,
and default schedules keep the thread budget busy."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln import __version__
from kiln.codegen.kernels import KernelSelector
from kiln.codegen.lower.gemm import microkernel_bits
from kiln.codegen.module import generate
from kiln.codegen.schedules import KernelTarget, ScheduleError
from kiln.driver import OptionError, compile_detailed
from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes
from kiln.runtime import load
from kiln.targets import get_target
from reference import assert_matches, run_onnxruntime

VECTOR_BITS = microkernel_bits(get_target("host"), None)
needs_vectors = pytest.mark.skipif(VECTOR_BITS < 256, reason="the GEMM and Winograd kernels "
                                   "need a host with AVX2 or wider vectors")
_RNG = np.random.default_rng(7)


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    data = (_RNG.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    return numpy_helper.from_array(data, name)


def _conv(x: str, y: str, c: int, oc: int, k: int, inits: list, stride: int = 1,
          group: int = 1) -> onnx.NodeProto:
    inits += [_weight(f"{y}_w", oc, c // group, k, k), _weight(f"{y}_b", oc)]
    return helper.make_node("Conv", [x, f"{y}_w", f"{y}_b"], [y], name=y, pads=[k // 2] * 4,
                            strides=[stride, stride], group=group)


def _model(nodes: list, inputs: list, output: tuple[str, list[int]], inits: list
           ) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "schedules", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                             for n, s in inputs],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_then_linear() -> onnx.ModelProto:
    """A 3x3 conv Winograd runs by default, then a linear layer on the pooled channels."""
    inits: list = [_weight("fc_w", 32, 40), _weight("fc_b", 40)]
    nodes = [_conv("x", "conv", 32, 32, 3, inits), helper.make_node("Relu", ["conv"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc_w"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "fc_b"], ["y"])]
    return _model(nodes, [("x", [2, 32, 16, 16])], ("y", [2, 40]), inits)


def _lines(path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def _write(path, lines: list[dict]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


@needs_vectors
def test_schedule_file_changes_a_tile_and_a_kernel(tmp_path):
    model = _conv_then_linear()
    feed = {"x": _RNG.standard_normal((2, 32, 16, 16)).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    dumped = tmp_path / "default.jsonl"
    compile_detailed(model, output=tmp_path / "default.so", keep_sources=tmp_path / "default",
                     dump_schedule=dumped)
    lines = {line["group"]: line for line in _lines(dumped)}
    assert lines["conv"]["kernel"] == "conv_nhwc_winograd"
    assert lines["fc"]["kernel"] == "matmul_gemm_packed"

    conv, fc = lines["conv"], lines["fc"]
    fc["schedule"].update(mr=1, nv=3)
    conv["kernel"] = "conv_nhwc_gemm"
    conv["schedule"] = dict(fc["schedule"], mr=5, nv=2)
    edited = _write(tmp_path / "edited.jsonl", [conv, fc])
    compile_detailed(model, output=tmp_path / "edited.so", keep_sources=tmp_path / "edited",
                     schedule=edited)
    before = (tmp_path / "default" / "model.c").read_text()
    after = (tmp_path / "edited" / "model.c").read_text()
    lanes = 16 if VECTOR_BITS >= 512 else 8
    assert "Winograd" in before and "Winograd" not in after
    assert f"kiln_mk_v{lanes}_1x3" in after and f"kiln_mk_v{lanes}_1x3" not in before
    assert f"kiln_mk_v{lanes}_5x2" in after
    with load(tmp_path / "edited.so", threads=2) as session:
        (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


@needs_vectors
def test_a_line_without_a_schedule_chooses_the_kernel_with_its_default(tmp_path):
    model = _conv_then_linear()
    feed = {"x": _RNG.standard_normal((2, 32, 16, 16)).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    dumped = tmp_path / "default.jsonl"
    compile_detailed(model, output=tmp_path / "default.so", dump_schedule=dumped)
    conv = next(line for line in _lines(dumped) if line["group"] == "conv")
    conv.update(kernel="conv_nhwc_gemm", schedule=None)
    chosen = tmp_path / "chosen.jsonl"
    compile_detailed(model, output=tmp_path / "chosen.so",
                     schedule=_write(tmp_path / "line.jsonl", [conv]), dump_schedule=chosen)
    replayed = {line["group"]: line for line in _lines(chosen)}
    assert replayed["conv"]["kernel"] == "conv_nhwc_gemm"
    assert replayed["conv"]["schedule"]["mr"] >= 1   # the gemm kernel's default, in full
    assert "x_nhwc_pad" in replayed   # the padded copy of its input that kernel reads
    with load(tmp_path / "chosen.so", threads=2) as session:
        (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


@needs_vectors
def test_a_line_from_a_conv_with_bias_serves_the_same_conv_without_one(tmp_path):
    """Two exports of one network often differ only in the conv's bias (folded BatchNorm or
    none): the bias is an epilogue operand, so one tuned line serves both."""
    model = _conv_then_linear()
    dumped = tmp_path / "biased.jsonl"
    compile_detailed(model, output=tmp_path / "biased.so", dump_schedule=dumped)
    conv = next(line for line in _lines(dumped) if line["group"] == "conv")
    conv.update(kernel="conv_nhwc_gemm", schedule=None)

    conv_node = next(n for n in model.graph.node if n.op_type == "Conv")
    del conv_node.input[2]
    feed = {"x": _RNG.standard_normal((2, 32, 16, 16)).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    chosen = tmp_path / "chosen.jsonl"
    compile_detailed(model, output=tmp_path / "bare.so", dump_schedule=chosen,
                     schedule=_write(tmp_path / "line.jsonl", [conv]))
    assert {line["group"]: line for line in _lines(chosen)}["conv"]["kernel"] == "conv_nhwc_gemm"
    with load(tmp_path / "bare.so", threads=2) as session:
        (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


def test_a_commutative_epilogue_matches_in_either_operand_order(tmp_path):
    """`mm + bias` (one exporter) and `bias + mm` (another) are one schedule line."""
    signatures = []
    for order in (["mm", "fc_b"], ["fc_b", "mm"]):
        model = _conv_then_linear()
        add = next(n for n in model.graph.node if n.op_type == "Add")
        add.input[:] = order
        dumped = tmp_path / f"{order[0]}.jsonl"
        compile_detailed(model, output=tmp_path / f"{order[0]}.so", dump_schedule=dumped)
        signatures.append(next(line for line in _lines(dumped)
                               if line["group"] == "fc")["signature"])
    assert signatures[0] == signatures[1]
    assert [node["op"] for node in signatures[0]["nodes"]] == ["matmul", "add"]


def test_dump_then_replay_gives_the_same_artifact(tmp_path):
    inits: list = [_weight("fc_w", 64, 24)]
    nodes = [_conv("x", "a", 16, 32, 3, inits), helper.make_node("Relu", ["a"], ["ar"]),
             _conv("ar", "b", 32, 64, 1, inits),
             _conv("b", "c", 64, 64, 3, inits, stride=2, group=64),
             _conv("c", "d", 64, 64, 3, inits, stride=2, group=2),
             helper.make_node("GlobalAveragePool", ["d"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc")]
    model = _model(nodes, [("x", [1, 16, 20, 20])], ("y", [1, 24]), inits)
    dumped = tmp_path / "chosen.jsonl"
    first, again = tmp_path / "first" / "model.so", tmp_path / "again" / "model.so"
    first.parent.mkdir()
    again.parent.mkdir()
    compile_detailed(model, output=first, dump_schedule=dumped, threads_max=3)
    assert {line["group"] for line in _lines(dumped)} >= {"a", "b", "c", "d", "fc"}
    compile_detailed(model, output=again, schedule=dumped, threads_max=3)
    assert first.read_bytes() == again.read_bytes()
    assert "THREADS_MAX 3" in first.with_suffix(".h").read_text()


def test_every_group_runs_a_registry_kernel_whose_schedule_replays(tmp_path):
    """Elementwise chains and row kernels are registry entries too: the split of a long loop
    and a softmax's partial sums come from their schedules, and a file changes them."""
    n = 20000
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
             helper.make_node("Relu", ["sq"], ["r"]),
             helper.make_node("Reshape", ["r", "rows"], ["m"], name="rows2d"),
             helper.make_node("Softmax", ["m"], ["y"], name="soft", axis=1)]
    inits = [numpy_helper.from_array(np.array([100, n // 100], np.int64), "rows")]
    model = _model(nodes, [("x", [n])], ("y", [100, n // 100]), inits)
    feed = {"x": _RNG.standard_normal(n).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    dumped = tmp_path / "default.jsonl"
    compile_detailed(model, output=tmp_path / "d.so", keep_sources=tmp_path / "d",
                     dump_schedule=dumped, threads_max=2)
    lines = {line["kernel"]: line for line in _lines(dumped)}
    chunk = get_target("host").l1d_bytes // 8
    assert lines["elementwise_loops"]["schedule"] == {"chunk": chunk}
    lanes = 16 if VECTOR_BITS >= 512 else 8
    assert lines["softmax_rows"]["schedule"] == {"partials": lanes}
    before = (tmp_path / "d" / "model.c").read_text()
    assert f"(task * {chunk})" in before and f"k_square, {-(-n // chunk)}))" in before

    lines["elementwise_loops"]["schedule"]["chunk"] = 1000
    lines["softmax_rows"]["schedule"]["partials"] = 3
    edited = _write(tmp_path / "edited.jsonl", list(lines.values()))
    compile_detailed(model, output=tmp_path / "e.so", keep_sources=tmp_path / "e",
                     schedule=edited, threads_max=2)
    after = (tmp_path / "e" / "model.c").read_text()
    assert "(task * 1000)" in after and "k_square, 20))" in after
    assert "l < 3;" in after and "l < 3;" not in before
    with load(tmp_path / "e.so", threads=2) as session:
        (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


@needs_vectors
def test_schedules_that_do_not_fit_are_errors_naming_the_group(tmp_path):
    model = _conv_then_linear()
    dumped = tmp_path / "default.jsonl"
    compile_detailed(model, output=tmp_path / "m.so", dump_schedule=dumped)
    lines = {line["group"]: line for line in _lines(dumped)}

    def attempt(*changed: dict) -> str:
        path = _write(tmp_path / "bad.jsonl", list(changed))
        with pytest.raises(ScheduleError) as error:
            compile_detailed(model, output=tmp_path / "bad.so", schedule=path)
        return str(error.value)

    wide = dict(lines["fc"], schedule=dict(lines["fc"]["schedule"], nv=4, mr=1))
    if VECTOR_BITS >= 512:   # 64 columns of a 40-column output
        message = attempt(wide)
        assert "group 'fc'" in message and "wider than the tensor's 40 columns" in message
    tall = dict(lines["fc"], schedule=dict(lines["fc"]["schedule"], mr=3))
    message = attempt(tall)
    assert "group 'fc'" in message and "taller" in message

    message = attempt(dict(lines["fc"], kernel="conv_nhwc_winograd",
                           schedule=lines["conv"]["schedule"]))
    assert "group 'fc'" in message and "runs conv2d" in message
    band = {"mr": 6, "nv": 2, "min_positions": 1, "max_positions": 9, "k_chunk": 8,
            "min_tasks": 1}
    message = attempt(dict(lines["conv"], kernel="conv_nchw_band", schedule=band))
    assert "group 'conv'" in message and "chosen at the group stage" in message
    message = attempt(dict(lines["conv"], schedule=dict(lines["conv"]["schedule"], block=5)))
    assert "group 'conv'" in message and "not a multiple" in message

    assert "no kernel named 'conv_fft'" in attempt(dict(lines["conv"], kernel="conv_fft"))
    assert "WinogradSchedule.m = 9 is out of range" in attempt(
        dict(lines["conv"], schedule=dict(lines["conv"]["schedule"], m=9)))
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ScheduleError, match="line 1 of .*not JSON"):
        compile_detailed(model, output=tmp_path / "bad.so", schedule=tmp_path / "bad.jsonl")


@needs_vectors
def test_a_kernel_that_does_not_apply_is_refused(tmp_path):
    inits: list = []
    model = _model([_conv("x", "down", 32, 32, 3, inits, stride=2)], [("x", [1, 32, 32, 32])],
                   ("down", [1, 32, 16, 16]), inits)
    dumped = tmp_path / "default.jsonl"
    compile_detailed(model, output=tmp_path / "m.so", dump_schedule=dumped)
    (line,) = [line for line in _lines(dumped) if line["group"] == "down"]
    assert line["kernel"] == "conv_nhwc_gemm"
    line.update(kernel="conv_nhwc_winograd", schedule={"m": 2, "block": 28, "min_tasks": 8})
    with pytest.raises(ScheduleError) as error:
        compile_detailed(model, output=tmp_path / "bad.so",
                         schedule=_write(tmp_path / "bad.jsonl", [line]))
    assert "group 'down'" in str(error.value) and "does not apply" in str(error.value)
    assert "stride 1" in str(error.value)


def _thread_model() -> onnx.ModelProto:
    """A conv of every NHWC kind, two NCHW GEMM convs (grouped), a linear layer, batch 2."""
    inits: list = [_weight("fc_w", 64, 1000)]
    nodes = [_conv("x", "wino", 32, 32, 3, inits), helper.make_node("Relu", ["wino"], ["w1"]),
             _conv("w1", "point", 32, 64, 1, inits),
             _conv("point", "depth", 64, 64, 3, inits, stride=2, group=64),
             _conv("depth", "down", 64, 64, 3, inits, stride=2),
             _conv("down", "band", 64, 64, 3, inits, group=2),
             _conv("band", "im2col", 64, 64, 3, inits, stride=2, group=2),
             helper.make_node("GlobalAveragePool", ["im2col"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc")]
    return _model(nodes, [("x", [2, 32, 56, 56])], ("y", [2, 1000]), inits)


@needs_vectors
@pytest.mark.parametrize("threads", [1, 2, 4, 8, 16])
def test_default_schedules_give_every_thread_work(threads):
    target = KernelTarget(VECTOR_BITS, 32 << 10, 1 << 20, threads)
    selector = KernelSelector(target, "x86_64")
    graph = import_model(_thread_model())
    graph.metadata["kernel_choice"] = selector
    sources = generate(run_passes(graph), "x86_64", __version__, selector=selector)
    launches = dict(re.findall(r"kiln_parallel_for\(e, k_(\w+), (\d+)\)", sources.model_c))
    dense = {"conv_nhwc_winograd", "conv_nhwc_gemm", "conv_nhwc_depthwise", "conv_nchw_band",
             "conv_nchw_im2col", "matmul_gemm_packed"}
    kernels = {g.name: g.kernel.kernel for g in graph.groups
               if g.kernel is not None and g.kernel.kernel in dense}
    assert set(kernels.values()) == dense
    for name, kernel in kernels.items():
        assert int(launches[name]) >= threads, (name, kernel, launches[name])


@pytest.mark.parametrize("threads", [1, 2, 4, 8, 16])
def test_default_row_reductions_give_every_thread_work(threads, tmp_path):
    """A reduction over H and W of [1, 32, 32, 512] keeps 512 elements per row: its
    default splits the row so that every thread of the budget gets a part."""
    node = helper.make_node("ReduceMean", ["x"], ["y"], name="pool", axes=[1, 2])
    model = _model([node], [("x", [1, 32, 32, 512])], ("y", [1, 1, 1, 512]), [])
    selector = KernelSelector(KernelTarget(VECTOR_BITS, 32 << 10, 1 << 20, threads), "x86_64")
    graph = import_model(model)
    graph.metadata["kernel_choice"] = selector
    sources = generate(run_passes(graph), "x86_64", __version__, selector=selector)
    (group,) = graph.groups
    assert group.kernel.kernel == "reduce_loops"
    (tasks,) = re.findall(r"kiln_parallel_for\(e, k_pool, (\d+)\)", sources.model_c)
    assert int(tasks) >= threads
    if threads == 16:   # the split rows still reduce to ONNX Runtime's result
        feed = {"x": _RNG.standard_normal((1, 32, 32, 512)).astype(np.float32)}
        compile_detailed(model, output=tmp_path / "m.so", threads_max=threads)
        with load(tmp_path / "m.so", threads=2) as session:
            (actual,) = session.run(feed).values()
        assert_matches(actual, run_onnxruntime(model, feed)[0])


def test_kiln_kernels_lists_the_registry(capsys):
    from kiln.cli import main

    assert main(["kernels"]) == 0
    text = capsys.readouterr().out
    for name in ("conv_nhwc_winograd", "conv_nhwc_gemm", "matmul_gemm_packed", "conv_direct"):
        assert re.search(rf"^{name} \(", text, re.M), name
    assert "mr in [1, 16]" in text and "min_tasks in [1, 65536]" in text


def test_threads_max_must_be_a_count(tmp_path):
    with pytest.raises(OptionError, match="threads_max=0"):
        compile_detailed(_conv_then_linear(), output=tmp_path / "m.so", threads_max=0)


def test_architecture_doc_shows_the_registry():
    from pathlib import Path

    from kiln.codegen.kernels import kernel_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    assert kernel_table(markdown=True) in doc, "regenerate with `kiln kernels --markdown`"


def test_renderers_are_chosen_by_name(tmp_path):
    from kiln.codegen.renderers import UnknownRendererError

    with pytest.raises(UnknownRendererError, match="emit='cuda'.*'c'.*'llvm'"):
        compile_detailed(_conv_then_linear(), output=tmp_path / "m.so", emit="cuda")
