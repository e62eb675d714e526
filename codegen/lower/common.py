"""What every lowering shares: where tensors live, index arithmetic, fused epilogues."""

from __future__ import annotations

from typing import Callable, Sequence

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Graph, Node, Value
from .. import kernel_ir as K
from .scalar import scalar_expr

class Storage:
    """Where each Value of the graph lives at run time (decided once per module)."""

    def __init__(self, graph: Graph, weight_offsets: dict[int, int], c_names: dict[int, str],
                 vector_bits: int = 0):
        self.inputs = {id(v): i for i, v in enumerate(graph.inputs)}
        self.outputs = {id(v): i for i, v in enumerate(graph.outputs)}
        self.plan = graph.plan
        self.weights = weight_offsets
        self.c_names = c_names
        self.vector_bits = vector_bits   # 0: scalar loops only; else the microkernels' width
        self.scratch_base = graph.plan.arena_size
        self.scratch_bytes = 0           # kernels run one at a time: they share the scratch
        self.prepared_bytes = 0          # data made at session creation, after the scratch
        #: (name, doc, context, body) of each kernel that fills a prepared buffer
        self.preparations: list[tuple[str, str, "LowerContext", list[K.Stmt]]] = []
        #: id(value) -> (value it is a channel slice of, channel offset): FusedGroup.into
        self.views = {id(g.nodes[-1].output): g.into for g in graph.groups or []
                      if g.into is not None}

    @property
    def lanes(self) -> int:
        """float32 lanes of one microkernel vector (AVX-512: 16, narrower: 8)."""
        return 16 if self.vector_bits >= 512 else 8

    def prepared(self, name: str, dtype, numel: int, doc: str,
                 fill: Callable[["LowerContext", K.Buffer], list[K.Stmt]]) -> K.Buffer:
        """A buffer computed once per session, at its creation, by the kernel fill(ctx, buf)
        returns (weights in a layout too big to ship: Winograd's transformed filters);
        kernels read it, read-only, from the arena's prepared region."""
        buffer = K.Buffer(name, dtype, numel, "prepared", self.prepared_bytes)
        self.prepared_bytes += -(-numel * dtype.itemsize // 64) * 64
        ctx = LowerContext(self)
        ctx.buffers[id(buffer)] = buffer
        self.preparations.append((name, doc, ctx, fill(ctx, buffer)))
        return buffer

    def scratch(self, name: str, dtype, numel: int) -> K.Buffer:
        """A kernel's workspace (im2col, packed panels): arena bytes above the planned ones."""
        self.scratch_bytes = max(self.scratch_bytes, numel * dtype.itemsize)
        return K.Buffer(name, dtype, numel, "arena", self.scratch_base)

    def row_stride(self, value: Value) -> int:
        """Elements between consecutive pixels of an NHWC value: its channels, or those of
        the value it is a channel slice of."""
        if id(value) in self.views:
            return self.views[id(value)][0].shape[-1]
        return value.shape[-1]

    def buffer(self, value: Value) -> K.Buffer:
        key = id(value)
        name = self.c_names[key]
        numel = value.type.numel
        if key in self.views:   # a channel slice: its first element inside the whole
            base, offset = self.views[key]
            whole = self.buffer(base)
            assert whole.storage == "arena", "passes/concat_in_place.py aliases arena values"
            return K.Buffer(name, value.dtype, base.type.numel - offset, whole.storage,
                            whole.location + offset * value.dtype.itemsize)
        if key in self.outputs:
            return K.Buffer(name, value.dtype, numel, "output", self.outputs[key])
        if key in self.inputs:
            return K.Buffer(name, value.dtype, numel, "input", self.inputs[key])
        if key in self.weights:
            return K.Buffer(name, value.dtype, numel, "weight", self.weights[key])
        return K.Buffer(name, value.dtype, numel, "arena", self.plan.offset(value))


class LowerContext:
    """State while lowering one group: fresh names and the buffers the kernel touches."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.names = K.Names()
        self.buffers: dict[int, K.Buffer] = {}

    def buf(self, value: Value) -> K.Buffer:
        if id(value) not in self.buffers:
            self.buffers[id(value)] = self.storage.buffer(value)
        return self.buffers[id(value)]

    def load(self, value: Value, index: K.Expr) -> K.Expr:
        """Read `value` at `index`; a one-element constant becomes a literal."""
        if value.is_constant and value.type.numel == 1:
            return K.const(value.data.reshape(()).item(), value.dtype)
        return K.Load(self.buf(value), index)


def strides(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    out = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        out[i] = out[i + 1] * shape[i + 1]
    return out


def flat_index(shape: Sequence[int], idx: Sequence[K.Expr]) -> K.Expr:
    """Row-major offset of multi-index `idx` in a tensor of `shape`."""
    total: K.Expr = K.const(0)
    for i, s in zip(idx, strides(shape)):
        total = total + i * s
    return total


def broadcast_index(shape: Sequence[int], out_shape: Sequence[int],
                    out_idx: Sequence[K.Expr]) -> K.Expr:
    """Offset into a tensor of `shape` broadcast (numpy rules) to `out_shape`."""
    lead = len(out_shape) - len(shape)
    idx = [K.const(0) if d == 1 else out_idx[lead + i] for i, d in enumerate(shape)]
    return flat_index(shape, idx)


#: one op of a fused epilogue: (op, inputs with None for the running value, attrs, dtype)
Step = tuple[str, tuple[Value | None, ...], dict, DType]


def steps_of(nodes: Sequence[Node], source: Value | None, bias: Value | None = None
             ) -> list[Step]:
    """The chain `nodes` as steps: each node's reads of the previous result (of `source`
    for the first) become the running value. `bias` (an anchor's own bias input) is added
    first when given."""
    steps: list[Step] = []
    if bias is not None:
        steps.append(("add", (None, bias), {}, bias.dtype))
    running = source
    for node in nodes:
        steps.append((node.op, tuple(None if running is not None and v is running else v
                                     for v in node.inputs),
                      dict(node.attrs), node.output.dtype))
        running = node.output
    return steps


def apply_steps(ctx: LowerContext, steps: Sequence[Step], acc: K.Expr | None,
                out_shape: Sequence[int], out_idx: Sequence[K.Expr],
                shape_of: Callable[[Value], Sequence[int]] = lambda v: v.shape
                ) -> tuple[list[K.Stmt], K.Expr]:
    """Apply `steps` to `acc` (the running value at output position `out_idx`); other
    operands are loaded, broadcast to `out_shape` (`shape_of` may give them a coalesced
    shape). Returns local definitions and the final expression: a running value read more
    than once by a step is bound to a local rather than computed twice."""
    stmts: list[K.Stmt] = []
    current = acc
    for op, inputs, attrs, dtype in steps:
        if sum(v is None for v in inputs) > 1 and not isinstance(current, (K.Var, K.Const)):
            local = ctx.names.var("v", current.dtype)
            stmts.append(K.Let(local, current))
            current = local
        args = [current if v is None else ctx.load(v, broadcast_index(shape_of(v), out_shape,
                                                                       out_idx))
                for v in inputs]
        current = scalar_expr(op, args, attrs, dtype)
    return stmts, current


def epilogue(ctx: LowerContext, nodes: Sequence[Node], source: Value | None,
             acc: K.Expr | None, out_shape: Sequence[int], out_idx: Sequence[K.Expr],
             shape_of: Callable[[Value], Sequence[int]] = lambda v: v.shape
             ) -> tuple[list[K.Stmt], K.Expr]:
    """apply_steps for the elementwise chain `nodes` following `source` (None: an
    elementwise group, whose first node loads all its inputs)."""
    return apply_steps(ctx, steps_of(nodes, source), acc, out_shape, out_idx, shape_of)


def group_output(ctx: LowerContext, group: FusedGroup) -> Value:
    """The single value a group writes (fusion keeps intermediates inside)."""
    return group.nodes[-1].output
