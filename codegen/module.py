"""Turn a fused, memory-planned graph into the sources of one artifact: the model's C file
(one kernel per fused group, the run function, tensor descriptors), the weights blob and the
assembly that embeds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from ..compiler.errors import Problem, UnsupportedModelError
from ..compiler.ir import FusedGroup, Graph, Value
from ..compiler.ops.loops import MARKERS
from ..compiler.ops.storage import check_storage_uses
from . import kernel_ir as K
from .c_renderer import CRenderer
from .kernel_verify import verify_kernel
from .loop_control import LoopControl
from .renderers import KernelRenderer
from .lower import LowerContext, Storage
from .kernels import KernelSelector, lower_group, prepack, registered_ops, select_kernels
from .lower.data_dependent import reserve_counts
from .schedules import KernelTarget
from .names import c_comment, c_identifier, c_string

WEIGHT_ALIGN = 64
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined)


@dataclass
class TensorInfo:
    """An input or output as the module and the header describe it."""

    name: str
    dtype_code: int
    dtype_name: str
    shape: tuple[int, ...]
    nbytes: int
    shape_symbol: str
    bound: tuple[int, int] | None = None   # data-dependent: (bounded axis, count's offset)

    @property
    def name_literal(self) -> str:
        return c_string(self.name)


@dataclass
class ModuleSources:
    """Everything the toolchain needs to build the artifact."""

    model_c: str
    weights: bytes
    weights_s: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    arena_size: int
    kernels: int
    #: the arena's parts: planned activations, the kernels' shared workspace, data prepared
    #: at session creation (Winograd's transformed filters)
    arena_parts: dict[str, int] = field(default_factory=dict)


def check_lowerable(graph: Graph) -> None:
    """Raise one error listing every group no kernel of the registry runs."""
    check_storage_uses(graph)
    served = registered_ops()
    problems = [Problem(g.anchor.name, g.anchor.op, "kiln", 0,
                        "no kernel runs this IR op",
                        "this is a gap in Kiln; please report it with the model")
                for g in graph.groups if g.anchor.op not in served]
    if problems:
        raise UnsupportedModelError(problems)


def pack_weights(graph: Graph, replaced: dict[int, np.ndarray] | None = None
                 ) -> tuple[bytes, dict[int, int]]:
    """Concatenate every constant the kernels read, each 64-byte aligned; `replaced` gives
    the data to store instead for some (weights packed for a microkernel)."""
    replaced = replaced or {}
    blob = bytearray()
    offsets: dict[int, int] = {}
    for node in graph.nodes:
        for value in node.inputs:
            if value.is_constant and id(value) not in offsets:
                blob += b"\0" * (-len(blob) % WEIGHT_ALIGN)
                offsets[id(value)] = len(blob)
                data = replaced.get(id(value), value.data)
                blob += np.ascontiguousarray(data, value.dtype.numpy).tobytes()
    return bytes(blob), offsets


def value_names(graph: Graph) -> dict[int, str]:
    taken: set[str] = set()
    return {id(v): c_identifier(v.name, "t_", taken) for v in graph.values()}


def generate(graph: Graph, target_name: str, version: str,
             renderer: KernelRenderer | None = None,
             selector: KernelSelector | None = None, verify: bool = False,
             blob: str = "weights.bin") -> ModuleSources:
    """Render the artifact's sources for a graph that went through fusion and planning;
    `renderer` prints the group kernels (default C); `selector` chooses the kernels (the
    one the passes asked, or portable loops only); `verify` runs the kernel-IR verifier
    over every kernel lowered; `blob` is the file weights.S embeds (the weights)."""
    assert graph.groups is not None and graph.plan is not None, "run the pass pipeline first"
    check_lowerable(graph)
    selector = selector or KernelSelector(KernelTarget(0, 32 * 1024, 1024 * 1024, 1))
    select_kernels(graph, selector)
    vector_bits = selector.vector_bits   # > 0: dense ops use microkernels
    packed = prepack(graph, selector.target)
    weights, offsets = pack_weights(graph, packed)
    storage = Storage(graph, offsets, value_names(graph), vector_bits)
    bounded = reserve_counts(graph, storage)
    c_renderer = CRenderer()   # kernels run at session creation are C whatever renders
    renderer = renderer or c_renderer
    kernel_names: set[str] = set()
    kernels, launches, launched = [], [], []
    control = LoopControl(storage)
    for group in graph.groups:
        if group.anchor.op in MARKERS:   # a loop opens or closes around the kernels
            launches += control.lines(group.anchor)
            continue
        ctx = LowerContext(storage)
        body = lower_group(ctx, group)
        if not body:   # nothing to do at run time (a concat its producers did in place)
            continue
        kernel = K.Kernel(c_identifier(group.name, "k_", kernel_names), _describe(group),
                          list(ctx.buffers.values()), body)
        if verify:
            verify_kernel(kernel)
        for fn in K.functions_called(body):   # shared helpers (microkernels): once each
            if fn.name not in kernel_names:
                kernel_names.add(fn.name)
                kernels.append(renderer.function(fn))
        kernels.append(renderer.kernel(kernel))
        loop = kernel.parallel_loop
        tasks = c_renderer.expr(loop.stop) if loop is not None else "1"
        launched.append(c_string(group.name))
        launches.append(f"KILN_LAUNCH({len(launched) - 1}, "
                        f"kiln_parallel_for(e, {kernel.name}, {tasks}));")
    inits = []
    for name, doc, ctx, body in storage.preparations:
        kernel = K.Kernel(c_identifier(name, "k_", kernel_names), c_comment(doc),
                          list(ctx.buffers.values()), body)
        if verify:
            verify_kernel(kernel)
        for fn in K.functions_called(body):
            if fn.name not in kernel_names:
                kernel_names.add(fn.name)
                kernels.append(c_renderer.function(fn))
        kernels.append(c_renderer.kernel(kernel))
        loop = kernel.parallel_loop
        tasks = c_renderer.expr(loop.stop) if loop is not None else "1"
        inits.append(f"kiln_parallel_for(e, {kernel.name}, {tasks});")
    activations = graph.plan.arena_size
    if storage.scratch_bytes:   # kernels' workspaces sit above the planned arena
        graph.plan.arena_size += -(-storage.scratch_bytes // WEIGHT_ALIGN) * WEIGHT_ALIGN
    workspace = graph.plan.arena_size - activations
    prepared_at = graph.plan.arena_size   # then the data prepared at session creation
    graph.plan.arena_size += storage.prepared_bytes
    inputs = [_info(v, v.name, f"input{i}_shape") for i, v in enumerate(graph.inputs)]
    output_names = graph.metadata.get("output_names") or [v.name for v in graph.outputs]
    outputs = [_info(v, name, f"output{i}_shape", bounded.get(id(v)))
               for i, (v, name) in enumerate(zip(graph.outputs, output_names))]
    model_c = _TEMPLATES.get_template("model.c.j2").render(
        version=version, target=target_name, model_name_comment=c_comment(graph.name),
        model_name_literal=c_string(graph.name), weights_size=len(weights), kernels=kernels,
        launches=launches, inits=inits, prepared_at=prepared_at,
        vector_lanes=(8, 16) if vector_bits else (),
        tensors=inputs + outputs, inputs=inputs, outputs=outputs,
        arena_size=graph.plan.arena_size,
        group_names=launched)
    weights_s = _TEMPLATES.get_template("weights.S.j2").render(
        blob=blob, size=len(weights))
    return ModuleSources(model_c, weights, weights_s, inputs, outputs, graph.plan.arena_size,
                         len(kernels), {"activations": activations, "workspace": workspace,
                                        "prepared": storage.prepared_bytes})


def _info(value: Value, name: str, symbol: str,
          bound: tuple[int, int] | None = None) -> TensorInfo:
    return TensorInfo(name, value.dtype.value, value.dtype.name, tuple(value.shape),
                      value.type.nbytes, symbol, bound)


def _describe(group: FusedGroup) -> str:
    ops = " + ".join(n.op for n in group.nodes)
    nodes = ", ".join(n.name for n in group.nodes)
    out = group.nodes[-1].output
    return c_comment(f"{group.name}: {ops} -> {out.type}  (nodes: {nodes})")
