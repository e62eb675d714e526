"""Single-node cases for Scan/Loop, BitCast, integer and quantized linear algebra, 3-D
pooling, ReverseSequence, Col2Im, Det and TensorScatter (same OpCase records as op_cases.py).
References: ONNX Runtime, or onnx.reference where ONNX Runtime has no kernel (BitCast,
TensorScatter)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from op_cases import OpCase, make_case, rand

F = onnx.TensorProto.FLOAT


def _with_onnx_reference(case: OpCase) -> OpCase:
    """The case, its expected outputs computed by onnx's reference evaluator."""
    evaluator = ReferenceEvaluator(case.model)
    names = [o.name for o in case.model.graph.output]
    return dataclasses.replace(case, expected=dict(zip(names, evaluator.run(None,
                                                                            case.inputs))))


def _scan_body(num_scans: int, shape: list[int]) -> onnx.GraphProto:
    """state' = state + sum of slices; emits state' and state' * slice0."""
    nodes, total = [], "s"
    for k in range(num_scans):
        nodes.append(helper.make_node("Add", [total, f"x{k}"], [f"acc{k}"]))
        total = f"acc{k}"
    nodes.append(helper.make_node("Identity", [total], ["s_out"]))
    nodes.append(helper.make_node("Mul", [total, "x0"], ["y_out"]))
    inputs = [helper.make_tensor_value_info("s", F, shape)]
    inputs += [helper.make_tensor_value_info(f"x{k}", F, shape) for k in range(num_scans)]
    return helper.make_graph(nodes, "body", inputs,
                             [helper.make_tensor_value_info("s_out", F, shape),
                              helper.make_tensor_value_info("y_out", F, shape)])


def _control_cases() -> list[OpCase]:
    out = []
    init = rand((3,), seed="scan_init")
    xs = rand((5, 3), seed="scan_x")
    x2 = rand((3, 5), seed="scan_x2")
    out.append(make_case("Scan-9-two-inputs", "Scan", 9, {"init": init, "a": xs, "b": xs * 2},
                         attrs={"body": _scan_body(2, [3]), "num_scan_inputs": 2},
                         outputs=["final", "ys"]))
    out.append(make_case("Scan-16-axes-directions", "Scan", 16,
                         {"init": init, "a": xs, "b": x2},
                         attrs={"body": _scan_body(2, [3]), "num_scan_inputs": 2,
                                "scan_input_axes": [0, 1], "scan_input_directions": [1, 0],
                                "scan_output_axes": [-1], "scan_output_directions": [1]},
                         outputs=["final", "ys"]))
    batch_init = rand((2, 3), seed="scan_binit")
    batch_x = rand((2, 4, 3), seed="scan_bx")
    out.append(make_case("Scan-8-batched", "Scan", 8, {"init": batch_init, "a": batch_x},
                         attrs={"body": _scan_body(1, [3]), "num_scan_inputs": 1,
                                "directions": [1]},
                         order=["", "init", "a"], outputs=["final", "ys"]))
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Add", ["v", "fi"], ["v_out"]),
         helper.make_node("Mul", ["v_out", "v_out"], ["sq"]),
         helper.make_node("Identity", ["c"], ["c_out"])], "loop_body",
        [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
         helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", F, [2])],
        [helper.make_tensor_value_info("c_out", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", F, [2]),
         helper.make_tensor_value_info("sq", F, [2])])
    out.append(make_case("Loop-16-trip-count", "Loop", 16, {"v": rand((2,), seed="loop_v")},
                         {"m": np.array(4, np.int64), "cond": np.array(True)},
                         attrs={"body": body}, order=["m", "cond", "v"],
                         outputs=["v_final", "squares"]))
    for source, target, dtype in ((np.float32, onnx.TensorProto.INT32, "f32-i32"),
                                  (np.int32, F, "i32-f32"),
                                  (np.uint16, onnx.TensorProto.INT16, "u16-i16"),
                                  (np.float64, onnx.TensorProto.INT64, "f64-i64")):
        x = rand((3, 4), seed=f"bits{dtype}")
        if np.dtype(source).kind in "iu":
            x = np.random.default_rng(7).integers(0, 60000, (3, 4)).astype(source)
        else:
            x = x.astype(source)
        out.append(_with_onnx_reference(make_case(f"BitCast-26-{dtype}", "BitCast", 26,
                                                  {"x": x}, attrs={"to": target})))
    return out


def _quantized_cases() -> list[OpCase]:
    out = []
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (4, 64), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 5), dtype=np.uint8)
    out.append(make_case("MatMulInteger-10-per-column", "MatMulInteger", 10,
                         {"a": a, "b": b},
                         {"a_zp": np.array([77], np.uint8),
                          "b_zp": rng.integers(0, 256, (5,), dtype=np.uint8)}))
    a8 = rng.integers(-128, 128, (2, 3, 40), dtype=np.int8)
    b8 = rng.integers(-128, 128, (40, 6), dtype=np.int8)
    out.append(make_case("MatMulInteger-10-int8-batched", "MatMulInteger", 10,
                         {"a": a8, "b": b8}, {"a_zp": np.array(3, np.int8),
                                              "b_zp": np.array(-2, np.int8)}))
    x = rng.integers(0, 256, (1, 3, 9, 9), dtype=np.uint8)
    w = rng.integers(0, 256, (4, 3, 3, 3), dtype=np.uint8)
    out.append(make_case("ConvInteger-10", "ConvInteger", 10, {"x": x},
                         {"w": w, "x_zp": np.array(128, np.uint8),
                          "w_zp": np.array(90, np.uint8)},
                         attrs={"pads": [1, 1, 1, 1], "strides": [2, 1]}))
    out.append(_with_onnx_reference(make_case(
        "ConvInteger-10-per-channel", "ConvInteger", 10, {"x": x},
        {"w": w, "x_zp": np.array(128, np.uint8),
         "w_zp": rng.integers(0, 256, (4,), dtype=np.uint8)},
        attrs={"pads": [1, 1, 1, 1], "strides": [2, 1]})))
    qa = rng.integers(0, 256, (2, 3, 16), dtype=np.uint8)
    qb = rng.integers(0, 256, (16, 4), dtype=np.uint8)
    f32 = np.float32
    out.append(make_case("QLinearMatMul-10-uint8-3d", "QLinearMatMul", 10, {"a": qa, "b": qb},
                         {"a_scale": f32(0.02), "a_zp": np.uint8(120), "b_scale": f32(0.03),
                          "b_zp": np.uint8(130), "y_scale": f32(0.5), "y_zp": np.uint8(128)},
                         order=["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale",
                                "y_zp"]))
    out.append(make_case("QLinearMatMul-21-int8-per-column", "QLinearMatMul", 21,
                         {"a": qa.astype(np.int16).clip(-128, 127).astype(np.int8)[0],
                          "b": (qb.astype(np.int16) - 128).astype(np.int8)},
                         {"a_scale": f32(0.05), "a_zp": np.int8(-4),
                          "b_scale": np.linspace(0.01, 0.04, 4).astype(f32),
                          "b_zp": np.array([0, 3, -2, 1], np.int8), "y_scale": f32(0.3),
                          "y_zp": np.int8(-7)},
                         order=["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale",
                                "y_zp"]))
    qx = rng.integers(-128, 128, (1, 2, 6, 6), dtype=np.int8)
    qw = rng.integers(-128, 128, (3, 2, 3, 3), dtype=np.int8)
    out.append(make_case("QLinearConv-10-per-channel-bias", "QLinearConv", 10, {"x": qx},
                         {"x_scale": f32(0.05), "x_zp": np.int8(-3), "w": qw,
                          "w_scale": np.array([0.01, 0.02, 0.015], f32),
                          "w_zp": np.zeros(3, np.int8), "y_scale": f32(0.7),
                          "y_zp": np.int8(5),
                          "bias": rng.integers(-500, 500, (3,), dtype=np.int32)},
                         order=["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale",
                                "y_zp", "bias"], attrs={"pads": [1, 1, 1, 1]}))
    out.append(make_case("DynamicQuantizeLinear-11", "DynamicQuantizeLinear", 11,
                         {"x": rand((3, 7), seed="dql")}, outputs=["y", "scale", "zp"]))
    out.append(make_case("DynamicQuantizeLinear-11-positive", "DynamicQuantizeLinear", 11,
                         {"x": rand((10,), seed="dqlp", low=0.5, high=3.0)},
                         outputs=["y", "scale", "zp"]))
    return out


def _pool3d_cases() -> list[OpCase]:
    out = []
    x = rand((1, 2, 6, 7, 5), seed="pool3d")
    variants = {
        "default": {"kernel_shape": [2, 2, 2]},
        "pads-strides": {"kernel_shape": [3, 2, 3], "pads": [1, 0, 1, 1, 1, 1],
                         "strides": [2, 2, 1]},
        "dilations-ceil": {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 2],
                           "strides": [2, 2, 2], "ceil_mode": 1},
        "same-upper": {"kernel_shape": [3, 3, 2], "auto_pad": "SAME_UPPER",
                       "strides": [2, 2, 2]},
    }
    for name, attrs in variants.items():
        out.append(make_case(f"MaxPool-12-3d-{name}", "MaxPool", 12, {"x": x}, attrs=attrs))
        out.append(make_case(f"AveragePool-19-3d-{name}", "AveragePool", 19, {"x": x},
                             attrs=attrs))
    out.append(make_case("AveragePool-19-3d-count-pad", "AveragePool", 19, {"x": x},
                         attrs={"kernel_shape": [3, 3, 3], "pads": [1, 1, 1, 1, 1, 1],
                                "count_include_pad": 1}))
    vol = rand((1, 4, 3, 4, 3), seed="ct3d")
    out.append(make_case("ConvTranspose-11-3d", "ConvTranspose", 11, {"x": vol},
                         {"w": rand((4, 3, 2, 3, 2), seed="ct3dw"),
                          "b": rand((3,), seed="ct3db")}))
    out.append(make_case("ConvTranspose-11-3d-strides-pads-groups", "ConvTranspose", 11,
                         {"x": vol}, {"w": rand((4, 1, 3, 2, 3), seed="ct3dw2")},
                         attrs={"strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1],
                                "dilations": [1, 2, 1], "group": 2,
                                "output_padding": [1, 0, 0]}))
    out.append(make_case("LpPool-18-3d", "LpPool", 18, {"x": x},
                         attrs={"kernel_shape": [2, 3, 2], "p": 3, "strides": [1, 2, 1]}))
    return out


def _rearrange_cases() -> list[OpCase]:
    out = []
    x = rand((5, 3, 2), seed="revseq")
    out.append(make_case("ReverseSequence-10-time-major", "ReverseSequence", 10,
                         {"x": x, "lens": np.array([5, 1, 3], np.int64)},
                         attrs={"batch_axis": 1, "time_axis": 0}))
    out.append(make_case("ReverseSequence-10-batch-major", "ReverseSequence", 10,
                         {"x": rand((3, 5, 2), seed="revseqb"),
                          "lens": np.array([2, 5, 4], np.int64)},
                         attrs={"batch_axis": 0, "time_axis": 1}))
    cols = rand((2, 2 * 6, 9), seed="col2im")
    out.append(make_case("Col2Im-18-strides-pads-dilations", "Col2Im", 18, {"x": cols},
                         {"image": np.array([5, 6], np.int64),
                          "block": np.array([2, 3], np.int64)},
                         attrs={"strides": [2, 1], "pads": [1, 0, 0, 1],
                                "dilations": [1, 2]}))
    data = rand((2, 3, 4, 5), seed="gnd")
    out.append(make_case("GatherND-13-batch-dims-1", "GatherND", 13,
                         {"data": data, "idx": np.array([[[1, -1], [2, 0], [0, 3]],
                                                         [[0, 0], [2, 2], [1, 1]]], np.int64)},
                         attrs={"batch_dims": 1}))
    out.append(make_case("GatherND-13-batch-dims-2", "GatherND", 13,
                         {"data": data, "idx": np.array([[[1], [3]], [[0], [2]], [[1], [1]]]
                                                        ).reshape(2, 3, 1, 1).astype(np.int64)},
                         attrs={"batch_dims": 2}))
    for name, equation, shapes in (("batch-diagonal", "bii->bi", [(2, 4, 4)]),
                                   ("trace", "ii", [(5, 5)]),
                                   ("diagonal-matmul", "iij,jk->ik", [(3, 3, 4), (4, 2)])):
        operands = {f"x{i}": rand(shape, seed=f"ein{name}{i}")
                    for i, shape in enumerate(shapes)}
        out.append(make_case(f"Einsum-12-{name}", "Einsum", 12, operands,
                             attrs={"equation": equation}))
    spectrum = rand((2, 5, 3, 2), seed="irfft")
    for length in (8, 7):
        out.append(_with_onnx_reference(make_case(
            f"DFT-20-inverse-onesided-{length}", "DFT", 20, {"x": spectrum},
            {"n": np.array(length, np.int64), "axis": np.array(1, np.int64)},
            attrs={"inverse": 1, "onesided": 1}, order=["x", "n", "axis"])))
    out.append(_with_onnx_reference(make_case(
        "BatchNormalization-15-training", "BatchNormalization", 15,
        {"x": rand((3, 4, 5, 2), seed="bnt")},
        {"s": rand((4,), seed="bns"), "b": rand((4,), seed="bnb"),
         "mean": rand((4,), seed="bnm"), "var": rand((4,), seed="bnv", low=0.5, high=2.0)},
        attrs={"training_mode": 1, "momentum": 0.8, "epsilon": 1e-3},
        outputs=["y", "running_mean", "running_var"])))
    for n in (3, 4):
        out.append(make_case(f"Det-22-{n}x{n}", "Det", 22, {"x": rand((2, 3, n, n),
                                                                     seed=f"det{n}")}))
    cache = rand((2, 3, 6, 4), seed="tscache")
    update = rand((2, 3, 3, 4), seed="tsupdate")
    for mode in ("linear", "circular"):
        writes = np.array([1, 3] if mode == "linear" else [4, 2], np.int64)
        out.append(_with_onnx_reference(make_case(
            f"TensorScatter-24-{mode}", "TensorScatter", 24,
            {"cache": cache, "update": update, "writes": writes}, attrs={"mode": mode})))
    return out


def _sampling_cases() -> list[OpCase]:
    """MaxPool's Indices, MaxUnpool, RoiAlign, DeformConv."""
    out = []
    x = rand((2, 3, 7, 6), seed="argmax")
    for order in (0, 1):
        out.append(make_case(f"MaxPool-12-indices-order{order}", "MaxPool", 12, {"x": x},
                             attrs={"kernel_shape": [3, 2], "strides": [2, 2],
                                    "pads": [1, 0, 1, 1], "storage_order": order},
                             outputs=["y", "indices"]))
    out.append(make_case("MaxPool-12-indices-3d", "MaxPool", 12,
                         {"x": rand((1, 2, 4, 5, 4), seed="argmax3")},
                         attrs={"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]},
                         outputs=["y", "indices"]))
    values = rand((1, 2, 2, 3), seed="unpool")
    where = np.array([[[[0, 3, 5], [13, 14, 22]], [[1, 8, 11], [12, 19, 23]]]], np.int64)
    out.append(make_case("MaxUnpool-11", "MaxUnpool", 11, {"x": values, "i": where},
                         attrs={"kernel_shape": [2, 2], "strides": [2, 2]}))
    image = rand((2, 3, 10, 9), seed="roi")
    rois = np.array([[0, 0, 8, 7], [1.5, 2.2, 6.3, 9.1], [-2, 3, 4, 12], [5, 5, 5.5, 6]],
                    np.float32)
    batch = np.array([0, 1, 1, 0], np.int64)
    for mode, transform in (("avg", "half_pixel"), ("avg", "output_half_pixel"),
                            ("max", "half_pixel")):
        out.append(make_case(f"RoiAlign-16-{mode}-{transform}", "RoiAlign", 16,
                             {"x": image, "rois": rois, "batch": batch},
                             attrs={"mode": mode, "coordinate_transformation_mode": transform,
                                    "output_height": 3, "output_width": 4,
                                    "sampling_ratio": 2, "spatial_scale": 0.9}))
    dx = rand((1, 4, 6, 5), seed="deform")
    dw = rand((6, 2, 3, 3), seed="deformw")
    offsets = rand((1, 2 * 9 * 2, 5, 2), seed="deformo") * 1.5
    mask = rand((1, 2 * 9, 5, 2), seed="deformm", low=0.0, high=1.0)
    out.append(_with_onnx_reference(make_case(
        "DeformConv-19-groups-mask", "DeformConv", 19,
        {"x": dx, "w": dw, "offset": offsets, "b": rand((6,), seed="deformb"), "mask": mask},
        attrs={"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2]})))
    return out


def more_cases() -> list[OpCase]:
    """Every case of this file."""
    return (_control_cases() + _quantized_cases() + _pool3d_cases() + _rearrange_cases()
            + _sampling_cases())
