"""The pass pipeline: a flat, ordered list of named passes, each with why it runs.

`run_passes` runs them in order; in tests (and debug runs) it verifies the graph after each
pass, and `--dump-ir-after PASS` prints the IR a named pass leaves behind.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from ..compiler.errors import KilnError
from ..compiler.ir import Graph
from ..compiler.printer import print_graph
from ..compiler.verifier import VerificationError, verify
from .channels_last import channels_last
from .concat_in_place import concat_in_place
from .dce import dce
from .decompose import decompose
from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fuse import fuse
from .fuse_attention import fuse_attention
from .fuse_gelu import fuse_gelu
from .fuse_integer_dequantize import fuse_integer_dequantize
from .fuse_layer_norm import fuse_layer_norm
from .fuse_swish import fuse_swish
from .loop_in_place import loop_in_place
from .pad_convs import pad_convs
from .pad_qconv_channels import pad_qconv_channels
from .plan_memory import plan_memory
from .observe_quantized import observe_quantized
from .qdq_elementwise import qdq_elementwise
from .qdq_to_integer import qdq_to_integer
from .quantize import quantize


@dataclass(frozen=True)
class Pass:
    """One stage of the pipeline: a function Graph -> Graph and the reason it runs."""

    name: str
    fn: Callable[[Graph], Graph]
    why: str


PIPELINE: list[Pass] = [
    Pass("qdq_to_integer", qdq_to_integer,
         "dequantize -> conv/matmul -> quantize -> integer qconv2d/qmatmul, weights 8-bit "
         "(before folding turns dequantized weights into float)"),
    Pass("fuse_integer_dequantize", fuse_integer_dequantize,
         "int32 qmatmul -> cast -> * (a_scale * b_scale) [+ bias] -> one float32 qmatmul"),
    Pass("qdq_elementwise", qdq_elementwise,
         "dequantize -> add/mul/concat/pool/sigmoid/... -> quantize -> ONNX Runtime's 8-bit "
         "integer arithmetic (its QLinear* fusions), reading and writing 8-bit"),
    Pass("fold_constants", fold_constants,
         "compute what is known at compile time; drop identities"),
    Pass("dce", dce, "drop nodes whose results nobody reads"),
    Pass("fuse_layer_norm", fuse_layer_norm, "decomposed LayerNorm chains -> one layer_norm"),
    Pass("fuse_gelu", fuse_gelu, "x*0.5*(1+erf(x/sqrt2)) -> gelu, so it joins a matmul epilogue"),
    Pass("fuse_swish", fuse_swish,
         "x*sigmoid(x) -> swish, x*relu6(x+3)/6 -> hard_swish: one read of x, in an epilogue"),
    Pass("fuse_attention", fuse_attention,
         "QK^T, scale, mask, softmax, xV and the head transposes -> one attention kernel"),
    Pass("fold_batchnorm", fold_batchnorm, "merge batch_norm into the conv before it"),
    Pass("decompose", decompose, "lower the remaining batch_norms to mul + add"),
    Pass("fold_constants", fold_constants, "fold what decomposition made constant"),
    Pass("dce", dce, "drop what folding left unread"),
    Pass("quantize", quantize,
         "a float model quantized when asked (--quantize): QDQ around its convs and "
         "matmuls, or run-time quantized matmuls (after BatchNorm folding, on final weights)"),
    Pass("qdq_to_integer", qdq_to_integer, "the QDQ pairs quantize wrote -> integer ops"),
    Pass("fuse_integer_dequantize", fuse_integer_dequantize,
         "the int32 qmatmuls of --quantize dynamic -> float32 epilogues"),
    Pass("observe_quantized", observe_quantized,
         "the quantized tensors as extra outputs, for calibration and the accuracy report"),
    Pass("dce", dce, "drop the float weights and the nodes quantization left unread"),
    Pass("channels_last", channels_last,
         "convs and the ops between them in NHWC on vector targets; transposes at the edges"),
    Pass("pad_convs", pad_convs, "dense NHWC convs read an explicitly zero-padded input"),
    Pass("pad_qconv_channels", pad_qconv_channels,
         "NHWC int8 convs read whole 4-channel words: few channels padded by the zero point"),
    Pass("fuse", fuse, "group nodes into the kernels codegen emits"),
    Pass("concat_in_place", concat_in_place,
         "conv groups write their channels straight into the NHWC concat that reads them"),
    Pass("loop_in_place", loop_in_place,
         "loop states and scan outputs written into their own buffers, iteration after "
         "iteration"),
    Pass("plan_memory", plan_memory, "place intermediates in one fixed-size arena"),
]


class UnknownPassError(KilnError, ValueError):
    """A pass name given by the user (e.g. --dump-ir-after) names no pass."""


def pass_names(pipeline: Iterable[Pass] = PIPELINE) -> list[str]:
    """Each pass name once, in pipeline order."""
    return list(dict.fromkeys(p.name for p in pipeline))


def run_passes(graph: Graph, verify_each: bool = False, dump_after: set[str] | None = None,
               log: Callable[[str], None] | None = None,
               pipeline: list[Pass] | None = None) -> Graph:
    """Run `pipeline` (default PIPELINE) over `graph`.

    verify_each: run the verifier on the input and after every pass.
    dump_after: pass names after which to print the IR (every run of a repeated pass).
    log: where dumps and one line per pass (time, node count) go; dumps go to stderr
    when it is None.
    """
    pipeline = PIPELINE if pipeline is None else pipeline
    dump_after = set(dump_after or ())
    unknown = sorted(dump_after - set(pass_names(pipeline)))
    if unknown:
        raise UnknownPassError(f"no pass named {', '.join(unknown)}; passes are: "
                               f"{', '.join(pass_names(pipeline))}")
    write = log if log is not None else _stderr
    if verify_each:
        verify(graph)
    for index, stage in enumerate(pipeline):
        start = time.perf_counter()
        graph = stage.fn(graph)
        elapsed = time.perf_counter() - start
        if log is not None:
            log(f"pass {index}: {stage.name} ({elapsed * 1e3:.1f} ms): "
                f"{len(graph.nodes)} nodes")
        if verify_each:
            try:
                verify(graph)
            except VerificationError as exc:
                raise VerificationError(f"after pass {index} ({stage.name}): {exc}") from None
        if stage.name in dump_after:
            write(f"// IR after pass {index}: {stage.name}\n{print_graph(graph)}")
    return graph


def _stderr(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
