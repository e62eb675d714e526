"""The graph IR: a Graph owns Nodes in topological order; Values know producer and users.

Every Value has a static TensorType: the frontend pins symbolic dims before building the IR.
Constants are Values whose `data` is a numpy array. Ops are Kiln's normalized vocabulary
(see compiler/ops/), not raw ONNX.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from .dtypes import DType


@dataclass(frozen=True)
class TensorType:
    """A dtype and a fully static shape."""

    dtype: DType
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.dtype.nbytes(self.numel)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"


class Value:
    """A tensor in the graph: a graph input, a node's output, or a constant (`data` set)."""

    def __init__(self, name: str, type: TensorType, data: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.data = data
        self.producer: Node | None = None
        self.users: list[Node] = []

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One op applied to input Values, producing output Values. `attrs` hold static params."""

    def __init__(self, op: str, inputs: list[Value], outputs: list[Value],
                 attrs: dict[str, Any] | None = None, name: str = ""):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        self.name = name or op

    @property
    def output(self) -> Value:
        (out,) = self.outputs
        return out

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


@dataclass
class FusedGroup:
    """Nodes that codegen emits as one kernel. For an anchored group (conv, matmul, ...)
    nodes[0] is the anchor and the rest is its elementwise epilogue, in order."""

    name: str
    nodes: list[Node]
    #: (value, channel offset): the group writes its output as channels [offset, offset +
    #: C) of this NHWC value instead of into bytes of its own (a concat done in place)
    into: tuple["Value", int] | None = None
    #: the kernel and schedule that run it (a compiler.kernel_choice.KernelDecision), set
    #: by codegen's kernel selection for the groups the kernel registry has entries for
    kernel: Any = None

    @property
    def anchor(self) -> Node:
        return self.nodes[0]

    @property
    def inputs(self) -> list[Value]:
        """Values the group reads that it does not produce, in first-use order."""
        inside = {id(v) for n in self.nodes for v in n.outputs}
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for value in node.inputs:
                if id(value) not in inside:
                    seen.setdefault(id(value), value)
        return list(seen.values())

    def outputs(self, graph: "Graph") -> list[Value]:
        """Values produced here that are read outside the group or are graph outputs."""
        members = {id(n) for n in self.nodes}
        graph_outputs = {id(v) for v in graph.outputs}
        return [v for n in self.nodes for v in n.outputs
                if id(v) in graph_outputs or any(id(u) not in members for u in v.users)]


@dataclass
class MemoryPlan:
    """Where each intermediate Value lives in the one activation arena (byte offsets)."""

    offsets: dict[int, int] = field(default_factory=dict)   # id(Value) -> offset
    arena_size: int = 0
    lower_bound: int = 0   # peak bytes live at once: no plan can use less

    def offset(self, value: Value) -> int:
        return self.offsets[id(value)]


class Graph:
    """Nodes in topological order plus the graph's inputs and outputs."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.metadata: dict[str, Any] = {}
        self.groups: list[FusedGroup] | None = None   # set by the fusion pass
        self.plan: MemoryPlan | None = None           # set by memory planning
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._counter = itertools.count()

    # -- construction ------------------------------------------------------------------
    def unique_name(self, hint: str, taken: set[str] | None = None) -> str:
        """A value name (or, with `taken`, a name from another namespace) not yet used."""
        taken = self._names if taken is None else taken
        name = hint or "v"
        while name in taken:
            name = f"{hint or 'v'}_{next(self._counter)}"
        taken.add(name)
        return name

    def unique_node_name(self, hint: str) -> str:
        """A node name not yet used by any node of this graph."""
        return self.unique_name(hint, self._node_names)

    def rename(self, value: Value, hint: str) -> None:
        """Give `value` the name `hint` (made unique); names only label, never link."""
        self._names.discard(value.name)
        value.name = self.unique_name(hint)

    def add_input(self, name: str, type: TensorType) -> Value:
        value = Value(self.unique_name(name), type)
        self.inputs.append(value)
        return value

    def constant(self, data: np.ndarray, name: str = "const") -> Value:
        data = np.asarray(data)
        value = Value(self.unique_name(name), TensorType(DType.from_numpy(data.dtype), data.shape),
                      data)
        return value

    def add_node(self, op: str, inputs: list[Value], out_types: list[TensorType],
                 attrs: dict[str, Any] | None = None, name: str = "",
                 out_names: list[str] | None = None) -> Node:
        """Append a node (inputs must already be defined) and create its output Values."""
        names = out_names or [f"{name or op}_out{i}" if len(out_types) > 1 else (name or op)
                              for i in range(len(out_types))]
        outputs = [Value(self.unique_name(n), t) for n, t in zip(names, out_types)]
        node = Node(op, inputs, outputs, attrs, self.unique_node_name(name or op))
        self.append(node)
        return node

    def append(self, node: Node) -> None:
        self.insert(len(self.nodes), node)

    def insert(self, index: int, node: Node) -> None:
        for value in node.outputs:
            value.producer = node
            self._names.add(value.name)
        for value in node.inputs:
            value.users.append(node)
        self.nodes.insert(index, node)

    # -- rewriting -----------------------------------------------------------------------
    def remove(self, node: Node) -> None:
        """Drop a node; its outputs must be unused (or about to be replaced). Their names
        become free again, so a replacement can take them (`insert` takes them back)."""
        for value in node.inputs:
            value.users.remove(node)
        for value in node.outputs:
            value.producer = None
            self._names.discard(value.name)
        self.nodes.remove(node)

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every user of `old` (and the graph outputs) read `new` instead.

        `users` holds a node once per input slot it reads the value through.
        """
        for user in old.users:
            user.inputs = [new if v is old else v for v in user.inputs]
            new.users.append(user)
        old.users = []
        self.outputs = [new if v is old else v for v in self.outputs]

    def set_input(self, node: Node, index: int, new: Value) -> None:
        """Make input slot `index` of `node` read `new`."""
        old = node.inputs[index]
        old.users.remove(node)
        node.inputs[index] = new
        new.users.append(node)

    # -- queries -------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        """Every Value in the graph once: inputs, constants and node outputs."""
        seen: set[int] = set()
        for value in itertools.chain(self.inputs,
                                     (v for n in self.nodes for v in n.inputs + n.outputs),
                                     self.outputs):
            if id(value) not in seen:
                seen.add(id(value))
                yield value

    def constants(self) -> list[Value]:
        return [v for v in self.values() if v.is_constant]

    def op_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes))


def all_users(values: Iterable[Value]) -> list[Node]:
    """The distinct nodes reading any of `values`, in no particular order."""
    seen: dict[int, Node] = {}
    for value in values:
        for user in value.users:
            seen[id(user)] = user
    return list(seen.values())
