"""The order of a quantized compile, for the driver: check the options and the samples,
build the float model with its quantized tensors observable, run it over the samples to
calibrate their ranges, and (for the accuracy report) build the quantized model the same
way and compare the two on the samples. Both helper artifacts are built for this host (the
machine that runs them) in a folder removed afterwards; the driver then builds the real one
with the QuantizeRequest returned."""

from __future__ import annotations

import difflib
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..compiler.errors import KilnError
from ..compiler.ir import Graph
from ..passes.observe_quantized import OBSERVED
from ..passes.observe_quantized import REQUEST as OBSERVE
from ..passes.quantize import MODES, REQUEST, QuantizeRequest
from ..runtime.loader import load
from .report import Accuracy, Row
from .samples import check_samples, count, feeds, read_samples
from .statistics import METHODS, calibrate as measure

#: the calibration method when none is given (chosen by measurement: docs/quantization.md)
DEFAULT_METHOD = "minmax"


class QuantizeOptionError(KilnError, ValueError):
    """The quantization options do not fit together, or name what is not there."""


@dataclass(frozen=True)
class QuantizeOptions:
    """What the user asked for, checked."""

    mode: str
    calibration: Any = None
    method: str = DEFAULT_METHOD
    keep_float: tuple[str, ...] = ()
    report: bool = False


def quantize_options(quantize: str | None, calibration: Any, calibrate: str | None,
                     keep_float: Sequence[str] | None, report: bool) -> QuantizeOptions | None:
    """The options checked against each other (None: no quantization asked for)."""
    keep = tuple(keep_float or ())
    if isinstance(keep_float, str):
        keep = (keep_float,)
    if quantize is None:
        given = [flag for flag, value in (("--calibration", calibration),
                                          ("--calibrate", calibrate),
                                          ("--keep-float", keep), ("--quant-report", report))
                 if value]
        if given:
            raise QuantizeOptionError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''}"
                                      f" --quantize int8 (quantize='int8')")
        return None
    if quantize not in MODES:
        raise QuantizeOptionError(f"--quantize {quantize!r}: give one of {', '.join(MODES)} "
                                  f"(int8: static, calibrated; dynamic: matmul activations "
                                  f"quantized at run time)")
    if calibrate is not None and calibrate not in METHODS:
        raise QuantizeOptionError(f"--calibrate {calibrate!r}: give one of {', '.join(METHODS)}")
    if quantize == "dynamic":
        given = [flag for flag, value in (("--calibration", calibration),
                                          ("--calibrate", calibrate), ("--quant-report", report))
                 if value]
        if given:
            raise QuantizeOptionError(f"{', '.join(given)}: --quantize dynamic measures "
                                      f"activations at run time and takes no calibration; use "
                                      f"--quantize int8 to calibrate")
    elif calibration is None:
        raise QuantizeOptionError("--quantize int8 needs calibration samples: "
                                  "--calibration SAMPLES.npz (one array per input, samples "
                                  "along the first axis)")
    return QuantizeOptions(quantize, calibration, calibrate or DEFAULT_METHOD, keep, report)


def named_nodes(proto: Any) -> Any:
    """`proto`, or a copy whose unnamed nodes are named for their first output, so every
    layer has a name of its own (the report shows it, --keep-float finds it)."""
    if all(n.name for n in proto.graph.node):
        return proto
    named = type(proto)()
    named.CopyFrom(proto)
    taken = {n.name for n in named.graph.node}
    for node in named.graph.node:
        if not node.name and node.output and node.output[0] not in taken:
            node.name = node.output[0]
            taken.add(node.name)
    return named


def _keep_float(names: Sequence[str], proto: Any) -> frozenset[str]:
    """The node names --keep-float means (an output name stands for its node)."""
    by_output = {o: n.name for n in proto.graph.node for o in n.output if o}
    nodes = {n.name for n in proto.graph.node if n.name}
    known = sorted(nodes | set(by_output))
    unknown = [n for n in names if n not in nodes and n not in by_output]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hints.append(f"'{name}'" + (f" (near: {', '.join(close)})" if close else ""))
        raise QuantizeOptionError(f"--keep-float names no node of the model: "
                                  f"{'; '.join(hints)}; give ONNX node names or output names "
                                  f"(the accuracy report names each quantized layer)")
    return frozenset(n if n in nodes else by_output[n] for n in names)


#: build(metadata, output path) -> the CompileResult of an artifact for this host
Build = Callable[[dict, Path], Any]


def prepare(options: QuantizeOptions, proto: Any, graph: Graph, build: Build,
            progress: Callable[[str], None] | None = None
            ) -> tuple[QuantizeRequest, list[Row], int]:
    """The request the quantize pass reads, the accuracy rows (empty unless options.report)
    and the number of samples; `proto` is the model as named_nodes gives it, `graph` the
    imported model (its pinned inputs)."""
    keep = _keep_float(options.keep_float, proto)
    if options.mode == "dynamic":
        return QuantizeRequest("dynamic", keep), [], 0
    samples = check_samples(read_samples(options.calibration), graph.inputs)
    n = count(samples)
    with tempfile.TemporaryDirectory(prefix="kiln-calibrate-") as folder, \
            ExitStack() as sessions:
        if progress is not None:
            progress("building the float model to calibrate")
        calibration = build({REQUEST: QuantizeRequest("int8", keep), OBSERVE: True},
                            Path(folder) / "calibration.so")
        float_model = sessions.enter_context(load(calibration.library))
        observed = [o.name for o in float_model.outputs if o.name.startswith(OBSERVED)]
        fed = [r.name for r in calibration.quantized if r.name in samples]
        if not calibration.quantized:
            raise QuantizeOptionError("the model has no conv or matmul by a constant float "
                                      "weight outside --keep-float: nothing to quantize")

        def run():
            for i, feed in enumerate(feeds(samples)):
                if progress is not None:
                    progress(f"calibrating ({options.method}): sample {i + 1} of {n}")
                out = float_model.run(feed)
                yield {**{name[len(OBSERVED):]: out[name] for name in observed},
                       **{name: feed[name] for name in fed}}

        request = QuantizeRequest("int8", keep, measure(run, options.method))
        if not options.report:
            return request, [], n
        if progress is not None:
            progress("building the quantized model for the accuracy report")
        quantized = build({REQUEST: request, OBSERVE: True}, Path(folder) / "report.so")
        rows = _compare(float_model, sessions.enter_context(load(quantized.library)),
                        quantized.quantized, samples, progress)
    return request, rows, n


def _compare(float_model: Any, quantized_model: Any, records: Sequence[Any], samples: dict,
             progress: Callable[[str], None] | None) -> list[Row]:
    rows = {OBSERVED + r.name: Row(r.name, "activation", list(r.layers), r.scale, r.zero_point)
            for r in records}
    rows.update({o.name: Row(o.name, "output") for o in float_model.outputs
                 if not o.name.startswith(OBSERVED) and o.dtype.kind == "f"})
    accuracy = Accuracy(rows)
    n = count(samples)
    for i, feed in enumerate(feeds(samples)):
        if progress is not None:
            progress(f"comparing the quantized model with float: sample {i + 1} of {n}")
        f, q = float_model.run(feed), quantized_model.run(feed)
        f.update({OBSERVED + name: array for name, array in feed.items()})
        for name in rows:
            accuracy.see(name, f[name], q[name])
    return accuracy.finish()
