"""Three more architectures for the benchmarks, built here in torchvision's layer configuration:
EfficientNet-B0, MobileNetV3-Small and DenseNet-121.

    python -m kiln.zoo.architectures        # writes data/<name>.onnx; then
    python -m kiln.zoo.rescale NAME ...     # measures data/<name>.scales.json

The graphs use the node patterns the TorchScript exporter (opset 17, eval mode) writes for
these networks: batch norm folded into the conv before it (DenseNet's norms that follow a
concat stay BatchNormalization), SiLU as Sigmoid then Mul, HardSwish and HardSigmoid as ops,
squeeze-and-excitation as GlobalAveragePool, two 1x1 convs and a Mul, the classifier as
Flatten then Gemm. Their weights are stored the way the exported example models store theirs:
every float tensor of 2+ dims and 4096+ elements stripped (refilled by `kiln.zoo.load`),
smaller ones (biases, small kernels) kept, drawn from the same deterministic refill.
"""

from __future__ import annotations

import argparse
import math

import onnx
from onnx import TensorProto, helper, numpy_helper

from . import BUILT_MODELS, MODELS_DIR, materialize, stripped_value

class _Builder:
    """Appends nodes and initializers with unique, readable names."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def _unique(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self._unique(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def tensor(self, base: str, dims: list[int], scale: float = 1.0, offset: float = 0.0,
               positive: bool = False) -> str:
        """A weight: stripped when it is large, else the deterministic refill times
        `scale` (`positive`: its magnitude), plus `offset`."""
        name = self._unique(base)
        if len(dims) >= 2 and math.prod(dims) >= 4096:
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", "STRIPPED"
        else:
            values = stripped_value(name, dims) * scale
            if positive:
                values = abs(values)
            tensor = numpy_helper.from_array(values + offset if offset else values, name)
        self.inits.append(tensor)
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             act: str | None = None) -> str:
        """Conv with its folded batch norm as a bias, then the activation."""
        w = self.tensor("weight", [cout, cin // groups, k, k])
        b = self.tensor("bias", [cout], 0.1)
        y = self.node("Conv", [x, w, b], "conv", kernel_shape=[k, k], strides=[stride] * 2,
                      pads=[k // 2] * 4, group=groups)
        return self.activation(y, act)

    def activation(self, x: str, act: str | None) -> str:
        if act is None:
            return x
        if act == "silu":
            return self.node("Mul", [x, self.node("Sigmoid", [x], "sigmoid")], "silu")
        if act == "hardsigmoid":
            return self.node("HardSigmoid", [x], "hardsigmoid", alpha=1 / 6, beta=0.5)
        op = {"relu": "Relu", "hardswish": "HardSwish", "sigmoid": "Sigmoid"}[act]
        return self.node(op, [x], act)

    def squeeze_excite(self, x: str, channels: int, squeezed: int, act: str, gate: str) -> str:
        pooled = self.node("GlobalAveragePool", [x], "avgpool")
        hidden = self.conv(pooled, channels, squeezed, 1, act=act)
        scale = self.conv(hidden, squeezed, channels, 1, act=gate)
        return self.node("Mul", [x, scale], "scale")

    def batch_norm_relu(self, x: str, channels: int) -> str:
        """BatchNormalization (scale near 1, variance at least 1) then ReLU."""
        params = [self.tensor("bn_scale", [channels], 0.1, offset=1.0),
                  self.tensor("bn_bias", [channels], 0.1), self.tensor("bn_mean", [channels], 0.1),
                  self.tensor("bn_var", [channels], 0.1, offset=1.0, positive=True)]
        y = self.node("BatchNormalization", [x, *params], "batchnorm", epsilon=1e-5)
        return self.node("Relu", [y], "relu")

    def classifier(self, x: str, cin: int, cout: int, base: str = "fc") -> str:
        w = self.tensor(f"{base}_weight", [cout, cin])
        b = self.tensor(f"{base}_bias", [cout], 0.1)
        return self.node("Gemm", [x, w, b], base, transB=1)

    def model(self, x: str, logits: str) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "output"
        for node in self.nodes:
            node.input[:] = ["output" if i == logits else i for i in node.input]
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 3, 224, 224])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1000])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="kiln.zoo.architectures")
        model.ir_version = 8
        return model


def _divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: to a multiple of 8, never below 90% of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def efficientnet_b0() -> onnx.ModelProto:
    """MBConv stages (expand, kernel, stride, in, out, repeats), SiLU, SE on every block."""
    stages = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
              (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
              (6, 3, 1, 192, 320, 1)]
    b = _Builder("efficientnet_b0")
    x = b.conv("input", 3, 32, 3, 2, act="silu")
    for expand, k, stride, cin, cout, repeats in stages:
        for i in range(repeats):
            inp, ci, s = x, cin if i == 0 else cout, stride if i == 0 else 1
            wide = ci * expand
            h = b.conv(x, ci, wide, 1, act="silu") if expand != 1 else x
            h = b.conv(h, wide, wide, k, s, groups=wide, act="silu")
            h = b.squeeze_excite(h, wide, max(1, ci // 4), "silu", "sigmoid")
            h = b.conv(h, wide, cout, 1)
            x = b.node("Add", [h, inp], "add") if s == 1 and ci == cout else h
    x = b.conv(x, 320, 1280, 1, act="silu")
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "avgpool")], "flatten")
    return b.model("input", b.classifier(x, 1280, 1000))


def mobilenet_v3_small() -> onnx.ModelProto:
    """Inverted residuals (in, kernel, expanded, out, SE, activation, stride), HardSwish."""
    blocks = [(16, 3, 16, 16, True, "relu", 2), (16, 3, 72, 24, False, "relu", 2),
              (24, 3, 88, 24, False, "relu", 1), (24, 5, 96, 40, True, "hardswish", 2),
              (40, 5, 240, 40, True, "hardswish", 1), (40, 5, 240, 40, True, "hardswish", 1),
              (40, 5, 120, 48, True, "hardswish", 1), (48, 5, 144, 48, True, "hardswish", 1),
              (48, 5, 288, 96, True, "hardswish", 2), (96, 5, 576, 96, True, "hardswish", 1),
              (96, 5, 576, 96, True, "hardswish", 1)]
    b = _Builder("mobilenet_v3_small")
    x = b.conv("input", 3, 16, 3, 2, act="hardswish")
    for cin, k, wide, cout, se, act, stride in blocks:
        inp = x
        h = b.conv(x, cin, wide, 1, act=act) if wide != cin else x
        h = b.conv(h, wide, wide, k, stride, groups=wide, act=act)
        if se:
            h = b.squeeze_excite(h, wide, _divisible(wide // 4), "relu", "hardsigmoid")
        h = b.conv(h, wide, cout, 1)
        x = b.node("Add", [h, inp], "add") if stride == 1 and cin == cout else h
    x = b.conv(x, 96, 576, 1, act="hardswish")
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "avgpool")], "flatten")
    x = b.activation(b.classifier(x, 576, 1024, "fc1"), "hardswish")
    return b.model("input", b.classifier(x, 1024, 1000, "fc2"))


def densenet121() -> onnx.ModelProto:
    """Dense blocks of 6, 12, 24, 16 layers (growth 32, bottleneck 128); every layer reads
    the concat of all features before it, normalized (pre-activation) and ReLU'd."""
    b = _Builder("densenet121")
    x = b.conv("input", 3, 64, 7, 2, act="relu")
    x = b.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    channels = 64
    for index, layers in enumerate((6, 12, 24, 16)):
        features = [x]
        for _ in range(layers):
            joined = features[0] if len(features) == 1 else \
                b.node("Concat", features, "concat", axis=1)
            width = channels + 32 * (len(features) - 1)
            h = b.conv(b.batch_norm_relu(joined, width), width, 128, 1, act="relu")
            features.append(b.conv(h, 128, 32, 3))
        x = b.node("Concat", features, "concat", axis=1)
        channels += 32 * layers
        if index < 3:
            x = b.conv(b.batch_norm_relu(x, channels), channels, channels // 2, 1)
            x = b.node("AveragePool", [x], "avgpool", kernel_shape=[2, 2], strides=[2, 2])
            channels //= 2
    x = b.batch_norm_relu(x, channels)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "avgpool")], "flatten")
    return b.model("input", b.classifier(x, channels, 1000))


BUILDERS = {"efficientnet_b0": efficientnet_b0, "mobilenet_v3_small": mobilenet_v3_small,
            "densenet121": densenet121}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.zoo.architectures",
                                     description="write the built architectures' ONNX files")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"any of {', '.join(BUILT_MODELS)} (default: all)")
    names = parser.parse_args(argv).names or BUILT_MODELS
    unknown = sorted(set(names) - set(BUILT_MODELS))
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}: choose from {BUILT_MODELS}")
    for name in names:
        model = BUILDERS[name]()
        filled = onnx.ModelProto()
        filled.CopyFrom(model)
        onnx.checker.check_model(materialize(filled), full_check=True)
        path = MODELS_DIR / f"{name}.onnx"
        onnx.save(model, str(path))
        print(f"{path}: {len(model.graph.node)} nodes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
