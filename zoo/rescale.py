"""Measure the unit-variance factors of the example models (LSUV) and write them as data.

    python -m kiln.zoo.rescale [NAME ...]      # default: every example model

A layer is a Conv, Gemm or MatMul whose weight is a float initializer, or a Gather from a
float embedding table: the refilled ones, and the small tensors kept as exported (MobileNetV2's
first layers and depthwise convs, which left alone would still shrink activations to ~1e-3 and
keep ReLU6 from clipping). In topological order, each layer's output standard deviation
is measured with ONNX Runtime (the earlier layers already rescaled) on a seeded random input:
standard normal images, or for BERT token ids drawn from the whole vocabulary, an attention
mask of ones and token types of zeros. The layer's weight and its bias are then divided by it,
so the layer's output has unit variance; for an embedding table that makes its rows unit
variance. The factors go to `data/<name>.scales.json`, which `kiln.zoo.load` applies.

A layer's bias is Conv's or Gemm's third input, or the initializer added to a MatMul's output
(its output, measured, is then the sum). An all-zeros bias is left out (scaling changes
nothing); a non-zero bias shared with another node is refused (one factor could not suit both).

Needs onnxruntime (a test dependency); `kiln.zoo.load` does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import MODELS, apply_factors, materialize, scales_path

#: The shapes the factors are measured at: the usual benchmark shapes.
DIMS = {"batch": 1, "seq": 128}


@dataclass(frozen=True)
class Layer:
    """A layer: its weight, its bias (or None), the value brought to unit variance."""
    op: str
    weight: str
    bias: str | None
    output: str


def _sources(model: onnx.ModelProto) -> dict[str, str]:
    """Identity outputs -> the value they copy (followed to the end of a chain)."""
    copies = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}

    def follow(name: str) -> str:
        while name in copies:
            name = copies[name]
        return name
    return {name: follow(name) for name in copies}


def weighted_layers(model: onnx.ModelProto) -> list[Layer]:
    """Every layer of a model with a float initializer for weight, in topological order."""
    source = _sources(model)
    inits = {t.name: t for t in model.graph.initializer}
    weights = {name for name, t in inits.items() if t.data_type == onnx.TensorProto.FLOAT}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(source.get(name, name), []).append(node)
    layers = []
    for node in model.graph.node:
        inputs = [source.get(name, name) for name in node.input]
        if node.op_type == "Gather" and inputs[0] in weights:
            layers.append(Layer(node.op_type, inputs[0], None, node.output[0]))
            continue
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(inputs) < 2 \
                or inputs[1] not in weights:
            continue
        bias, output = (inputs[2] if len(inputs) > 2 else None), node.output[0]
        after = users.get(output, [])
        if node.op_type == "MatMul" and len(after) == 1 and after[0].op_type == "Add":
            other = [source.get(n, n) for n in after[0].input if n != output]
            if len(other) == 1 and other[0] in inits:
                bias, output = other[0], after[0].output[0]
        if bias is not None:
            if bias not in inits:
                raise ValueError(f"{node.name}: its bias {bias} is not an initializer")
            if not np.any(numpy_helper.to_array(inits[bias])):
                bias = None
            elif len(users[bias]) > 1:
                raise ValueError(f"{node.name}: its non-zero bias {bias} is shared")
        layers.append(Layer(node.op_type, inputs[1], bias, output))
    return layers


def random_feed(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs at DIMS: standard normal floats; int64 token ids over the vocabulary
    (the rows of the table they index), masks of ones, token types of zeros."""
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in model.graph.initializer}
    tables = {n.input[1]: inits[n.input[0]] for n in model.graph.node
              if n.op_type == "Gather" and n.input[0] in inits}
    feed = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        shape = [DIMS[d.dim_param] if d.dim_param else d.dim_value
                 for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            feed[value.name] = rng.standard_normal(shape).astype(np.float32)
        elif "mask" in value.name:
            feed[value.name] = np.ones(shape, np.int64)
        elif value.name in tables:
            feed[value.name] = rng.integers(0, tables[value.name].dims[0], shape, np.int64)
        else:
            feed[value.name] = np.zeros(shape, np.int64)
    return feed


def run_values(model: onnx.ModelProto, names: list[str],
               feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The values `names` of the model on `feed`, by ONNX Runtime with no graph optimization
    (so every intermediate value exists as named)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def unit_variance_factors(model: onnx.ModelProto, seed: int = 0) -> dict[str, float]:
    """LSUV on a materialized model, in place: each layer's weight and bias divided by its
    output's std in turn. Returns the factors, tensor name -> factor."""
    feed = random_feed(model, seed)
    factors: dict[str, float] = {}
    for layer in weighted_layers(model):
        (out,) = run_values(model, [layer.output], feed)
        std = float(np.std(out.astype(np.float64)))
        if not np.isfinite(std) or std == 0:
            raise ValueError(f"{layer.output}: output std {std}")
        step = {name: 1.0 / std for name in (layer.weight, layer.bias) if name is not None}
        apply_factors(model, step)
        factors.update(step)
    return factors


def write_factors(name: str) -> None:
    from . import MODELS_DIR

    model = materialize(onnx.load(str(MODELS_DIR / f"{name}.onnx"),
                                  load_external_data=False))
    output = model.graph.output[0].name
    feed = random_feed(model)
    (before,) = run_values(model, [output], feed)
    factors = unit_variance_factors(model)
    (after,) = run_values(model, [output], feed)
    record = {"generated_by": "python -m kiln.zoo.rescale",
              "input": f"seed 0, batch {DIMS['batch']} (seq {DIMS['seq']}): standard normal "
                       "floats; token ids over the vocabulary, attention mask ones, token "
                       "types zeros",
              "factors": factors}
    scales_path(name).write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name}: {len(factors)} factors; {output} std {np.std(before):.3g} -> "
          f"{np.std(after):.3g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.zoo.rescale",
                                     description="Write the example models' unit-variance "
                                                 "factors (data/<name>.scales.json).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"default: all of {', '.join(MODELS)}")
    names = parser.parse_args(argv).names or MODELS
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"no example model {', '.join(unknown)}")
    for name in names:
        write_factors(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
