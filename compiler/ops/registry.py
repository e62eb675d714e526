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
         "movement", "shape")


@dataclass(frozen=True)
class OpDef:
    """One IR op: what it computes (`reference`) and what it produces (`infer`)."""

    name: str
    kind: str
    infer: InferFn
    reference: ReferenceFn
    doc: str = ""

    @property
    def is_elementwise(self) -> bool:
        return self.kind in ("unary", "binary", "ternary")


OPS: dict[str, OpDef] = {}


def op_def(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown IR op '{name}'") from None


def register(name: str, kind: str, infer: InferFn) -> Callable[[ReferenceFn], ReferenceFn]:
    """Decorate a numpy reference `f(*arrays, **attrs)` to declare IR op `name`."""
    assert kind in KINDS, kind

    def wrap(fn: ReferenceFn) -> ReferenceFn:
        if name in OPS:
            raise ValueError(f"IR op '{name}' declared twice")
        OPS[name] = OpDef(name, kind, infer, fn, (fn.__doc__ or "").strip())
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
