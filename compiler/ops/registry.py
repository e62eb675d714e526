"""The registry of IR ops: name -> OpDef (kind, shape rule, numpy reference)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..dtypes import DType
from ..ir import TensorType

InferFn = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]
ReferenceFn = Callable[..., Any]

#: The kinds codegen dispatches on.
KINDS = ("unary", "binary", "ternary", "conv", "matmul", "pool", "reduce", "softmax", "norm",
         "movement", "shape", "recurrent", "loop")

#: How fusion treats an op. elementwise / broadcast: joins the kernel of what it reads
#: (same shape) or starts an elementwise group; out_elementwise and reduction: anchors a
#: kernel that applies the elementwise chain after it as an epilogue; injective (data
#: movement) and opaque: a kernel of its own.
PATTERNS = ("elementwise", "broadcast", "injective", "reduction", "out_elementwise", "opaque")
#: How the channels-last pass treats an op. carried: elementwise, runs in whatever layout
#: its inputs come in; carried_axis: the same, with its `axis` attribute remapped (concat);
#: channels_last: has an NHWC form (attrs layout="NHWC"); axes: a reduction whose `axes`
#: are remapped; fixed: stays in the layout it was imported in.
LAYOUT_RULES = ("carried", "carried_axis", "channels_last", "axes", "fixed")

_KIND_RULES = {"unary": ("elementwise", "carried"), "binary": ("broadcast", "carried"),
               "ternary": ("broadcast", "carried"), "conv": ("out_elementwise", "channels_last"),
               "matmul": ("out_elementwise", "fixed"),
               "pool": ("out_elementwise", "channels_last"), "reduce": ("reduction", "axes"),
               "softmax": ("opaque", "fixed"), "norm": ("reduction", "fixed"),
               "movement": ("injective", "fixed"), "shape": ("opaque", "fixed"),
               "recurrent": ("opaque", "fixed"), "loop": ("opaque", "fixed")}


@dataclass(frozen=True)
class OpDef:
    """One IR op: what it computes (`reference`) and what it produces (`infer`)."""

    name: str
    kind: str
    infer: InferFn
    reference: ReferenceFn
    doc: str = ""
    pattern: str = "opaque"     # PATTERNS: how fusion treats it
    layout_rule: str = "fixed"  # LAYOUT_RULES: how the channels-last pass treats it
    #: False: the importer keeps the node even when its inputs are constants, so a pass can
    #: still read what it was built from (a dequantized weight stays 8-bit for the QDQ
    #: pass); fold_constants folds it once that pass has run
    folds_at_import: bool = True
    #: a binary op whose operands may be swapped without changing its result
    commutative: bool = False

    @property
    def is_elementwise(self) -> bool:
        return self.kind in ("unary", "binary", "ternary")

    @property
    def takes_epilogue(self) -> bool:
        """Its kernels apply the elementwise chain that follows it (fusion gives them one)."""
        return self.pattern in ("out_elementwise", "reduction")


OPS: dict[str, OpDef] = {}


def op_def(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown IR op '{name}'") from None


def register(name: str, kind: str, infer: InferFn, pattern: str | None = None,
             layout_rule: str | None = None, folds_at_import: bool = True,
             commutative: bool = False) -> Callable[[ReferenceFn], ReferenceFn]:
    """Decorate a numpy reference `f(*arrays, **attrs)` to declare IR op `name`; its fusion
    pattern and layout rule default to its kind's."""
    assert kind in KINDS, kind
    pattern = pattern or _KIND_RULES[kind][0]
    layout_rule = layout_rule or _KIND_RULES[kind][1]
    assert pattern in PATTERNS and layout_rule in LAYOUT_RULES, (pattern, layout_rule)

    def wrap(fn: ReferenceFn) -> ReferenceFn:
        if name in OPS:
            raise ValueError(f"IR op '{name}' declared twice")
        OPS[name] = OpDef(name, kind, infer, fn, (fn.__doc__ or "").strip(), pattern,
                          layout_rule, folds_at_import, commutative)
        return fn

    return wrap


def infer_types(op: str, types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return op_def(op).infer(types, attrs)


def evaluate(op: str, arrays: list[np.ndarray], attrs: dict[str, Any]) -> list[np.ndarray]:
    """Run the numpy reference of `op`; results keep the dtypes `infer` promises."""
    definition = op_def(op)
    result = definition.reference(*arrays, **attrs)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    types = definition.infer([TensorType(DType.from_numpy(a.dtype), a.shape) for a in arrays],
                             attrs)
    return [np.asarray(r).astype(t.dtype.numpy, copy=False).reshape(t.shape)
            for r, t in zip(results, types)]


# -- shared shape rules ---------------------------------------------------------------------

def same_as_first(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [types[0]]


def broadcast(types: list[TensorType], attrs: dict[str, Any], dtype: DType | None = None
              ) -> list[TensorType]:
    shape = tuple(np.broadcast_shapes(*(t.shape for t in types)))
    return [TensorType(dtype or types[0].dtype, shape)]


def broadcast_bool(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return broadcast(types, attrs, DType.bool)
