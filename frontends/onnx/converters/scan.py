"""Control flow with a body run many times: ONNX Scan and Loop, as loops in the artifact.

DESIGN: the body is imported once, between a loop_begin and a loop_end (compiler/ops/loops.py),
and the run function repeats its kernels in a C `for`: code size and compile time do not
depend on the number of iterations. The body's inputs are bound to

    loop-carried states   loop_carry copies of the initial values, made before the loop;
                          loop_next writes each iteration's new value into their bytes
    scan input slices     gather(x, t) along the scan axis (t = length - 1 - iteration
                          for a reverse direction)
    Loop's iteration      the loop's counter;  Loop's condition: true (the body runs only
                          while it holds)

and each scan output is written at slice t of a buffer sized for the most iterations
(loop_write). A Loop's trip count and condition may be known only at run time: the trip
count is clamped to [0, bound] and the loop stops after an iteration whose condition is
false. A Loop whose iteration count is known only at run time reports its scan outputs as
bounded graph outputs (their first dim is the count of iterations run), and needs a bound
for them: a trip count known at compile time. Without scan outputs it needs none.

Unrolled (the body imported once per iteration, inline) only where the loop form cannot
apply: a body whose loop-carried values change shape between iterations (a loop's buffers
have one type), or one that cannot be converted with a run-time iteration number (a Slice
whose bounds are computed from it; unrolled, each iteration's number is a constant). That
needs a static trip count and condition, and at most MAX_UNROLLED_NODES body nodes in all.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from onnx import numpy_helper

from ....compiler.dtypes import DType
from ....compiler.errors import UnsupportedModelError
from ....compiler.ir import Value
from ..importer import ConversionError, convert_nodes
from ..registry import converter, lookup, normalize_domain
from .common import axis_of, reshape

#: The most body nodes one Scan or Loop may unroll to (iterations x nodes in the body).
MAX_UNROLLED_NODES = 100_000
#: The bound of a loop that needs none (no scan outputs): its trip count, or forever.
UNBOUNDED = 1 << 62


class _StateChangesShape(Exception):
    """A loop-carried value's type differs between iterations: the body is unrolled."""


def _check_body(ctx, body: Any, what: str) -> None:
    """Fail with every op of `body` that Kiln cannot convert."""
    missing = [f"{n.op_type} (node '{n.name or n.op_type}')" for n in body.node
               if lookup(normalize_domain(n.domain), n.op_type,
                         ctx.opsets.get(normalize_domain(n.domain), 0)) is None]
    if missing:
        ctx.fail(f"the {what} body uses ops Kiln has no converter for: {', '.join(missing)}",
                 "replace them with supported ops or file an issue")


def _check_length(ctx, iterations: int, body: Any, what: str) -> None:
    """Refuse an unrolling that would grow the graph beyond MAX_UNROLLED_NODES."""
    total = iterations * max(1, len(body.node))
    if total > MAX_UNROLLED_NODES:
        ctx.fail(f"{what} would unroll {iterations} iterations of a {len(body.node)}-node "
                 f"body ({total} nodes, over Kiln's limit of {MAX_UNROLLED_NODES})",
                 "shorten the sequence (--dim/--shape) or rewrite the loop as tensor ops")


def run_body(ctx, body: Any, bindings: Sequence[Value], what: str) -> list[Value]:
    """Convert subgraph `body` inline once, its formal inputs bound to `bindings`."""
    if len(bindings) != len(body.input):
        ctx.fail(f"the {what} body takes {len(body.input)} inputs, but {len(bindings)} "
                 f"are given")
    outer_env, outer_node = ctx.env, ctx.node
    scope = dict(outer_env)
    for tensor in body.initializer:
        scope[tensor.name] = ctx.graph.constant(numpy_helper.to_array(tensor), tensor.name)
    for formal, value in zip(body.input, bindings):
        scope[formal.name] = value
    try:
        convert_nodes(ctx, body.node, scope)
    finally:
        ctx.env, ctx.node = outer_env, outer_node
    outputs = []
    for output in body.output:
        if output.name not in scope:
            ctx.fail(f"the {what} body never produces its output '{output.name}'")
        outputs.append(scope[output.name])
    return outputs


def take(ctx, x: Value, axis: int, index: int) -> Value:
    """x[..., index, ...] along `axis`, that axis removed."""
    starts = [0] * len(x.shape)
    ends = list(x.shape)
    starts[axis], ends[axis] = index, index + 1
    part = ctx.emit("slice", [x], starts=tuple(starts), ends=tuple(ends),
                    steps=(1,) * len(x.shape))
    return reshape(ctx, part, x.shape[:axis] + x.shape[axis + 1:])


def stack(ctx, parts: Sequence[Value], axis: int) -> Value:
    """Stack same-shape `parts` along a new axis `axis`."""
    shape = parts[0].shape
    for part in parts:
        if part.type != parts[0].type:
            ctx.fail(f"a scan output changes type between iterations ({parts[0].type} vs "
                     f"{part.type}); Kiln stacks only same-shaped iteration outputs")
    expanded = [reshape(ctx, p, shape[:axis] + (1,) + shape[axis:]) for p in parts]
    if len(expanded) == 1:
        return expanded[0]
    return ctx.emit("concat", expanded, axis=axis)


def unroll_scan(ctx, body: Any, states: list[Value], scans: list[Value],
                in_axes: Sequence[int], in_dirs: Sequence[int], out_axes: Sequence[int],
                out_dirs: Sequence[int]) -> list[Value]:
    """Scan-9 semantics over static lengths: the final states, then the stacked outputs."""
    lengths = {x.shape[a] for x, a in zip(scans, in_axes)}
    if len(lengths) != 1:
        ctx.fail(f"Scan's inputs have different sequence lengths {sorted(lengths)}")
    length = lengths.pop()
    _check_length(ctx, length, body, "Scan")
    num_outputs = len(body.output) - len(states)
    if num_outputs < 0:
        ctx.fail(f"the Scan body has {len(body.output)} outputs, fewer than its "
                 f"{len(states)} states")
    if length == 0 and num_outputs:
        ctx.fail("a Scan over a zero-length sequence has scan outputs of unknown shape")
    collected: list[list[Value]] = [[] for _ in range(num_outputs)]
    for step in range(length):
        slices = [take(ctx, x, a, length - 1 - step if d else step)
                  for x, a, d in zip(scans, in_axes, in_dirs)]
        results = run_body(ctx, body, states + slices, "Scan")
        for old, new in zip(states, results):
            if old.shape != new.shape:
                ctx.fail(f"a Scan state changes shape from {list(old.shape)} to "
                         f"{list(new.shape)}")
        states = results[:len(states)]
        for bucket, value in zip(collected, results[len(states):]):
            bucket.append(value)
    outputs = []
    for k, parts in enumerate(collected):
        if out_dirs[k]:
            parts = parts[::-1]
        axis = axis_of(ctx, out_axes[k], len(parts[0].shape) + 1, "scan_output_axes entry")
        outputs.append(stack(ctx, parts, axis))
    return states + outputs



def _begin(ctx, states: Sequence[Value], bound: int, trip: Value | None = None,
           cond: Value | None = None) -> tuple[str, Value, list[Value]]:
    """Copy the initial states and open a loop: its name, counter and the carried states."""
    carried = [ctx.emit("loop_carry", [v]) for v in states]
    name = ctx.graph.unique_node_name(f"{ctx.name}_loop")
    given = [v for v in (trip, cond) if v is not None]
    counter = ctx.emit("loop_begin", given, loop=name, bound=bound, trip=trip is not None,
                       cond=cond is not None)
    return name, counter, carried


def _end(ctx, name: str, counter: Value, carried: Sequence[Value], news: Sequence[Value],
         ys: Sequence[Value], out_axes: Sequence[int], out_dirs: Sequence[int], bound: int,
         cond: Value | None = None, bounded: bool = False) -> list[Value]:
    """Close the loop: write each scan output's slice and each next state, then the
    results after the loop (the final states, then the stacked scan outputs)."""
    for state, new in zip(carried, news):
        if state.type != new.type:
            raise _StateChangesShape()
    in_state = {id(v) for v in carried}
    begin = ctx.graph.nodes.index(counter.producer)
    written = []
    for y, axis, reverse in zip(ys, out_axes, out_dirs):
        axis = axis_of(ctx, axis, len(y.shape) + 1, "scan_output_axes entry")
        acc = ctx.emit("loop_buffer", [], dtype=y.dtype,
                       shape=y.shape[:axis] + (bound,) + y.shape[axis:])
        if acc.is_constant:   # nothing to write: no iterations, or empty slices
            written.append(acc)
            continue
        ctx.graph.nodes.remove(acc.producer)   # zeroed once, before the loop
        ctx.graph.nodes.insert(begin, acc.producer)
        written.append(ctx.emit("loop_write", [acc, y, counter], axis=axis,
                                reverse=bool(reverse)))
    # a new state that is itself a state (passed on, or swapped) is copied before any
    # state is overwritten
    news = [ctx.emit("loop_carry", [v]) if id(v) in in_state else v for v in news]
    if cond is not None and id(cond) in in_state:
        cond = ctx.emit("loop_carry", [cond])
    finals = [ctx.emit("loop_next", [s, v]) for s, v in zip(carried, news)]
    count = ctx.emit("loop_end", [counter] + ([cond] if cond is not None else [])
                     + finals + [w for w in written if not w.is_constant],
                     loop=name, cond=cond is not None)
    return [ctx.emit("loop_result", [v, count], bounded=False) for v in finals] + \
        [ctx.emit("loop_result", [v, count], bounded=bounded) for v in written]


def loop_scan(ctx, body: Any, states: list[Value], scans: list[Value],
              in_axes: Sequence[int], in_dirs: Sequence[int], out_axes: Sequence[int],
              out_dirs: Sequence[int]) -> list[Value]:
    """Scan-9 semantics as a loop over the sequence: the final states, then the stacked
    outputs; unrolled where a state changes shape."""
    lengths = {x.shape[a] for x, a in zip(scans, in_axes)}
    if len(lengths) != 1:
        ctx.fail(f"Scan's inputs have different sequence lengths {sorted(lengths)}")
    length = next(iter(lengths))
    mark = len(ctx.graph.nodes)
    name, counter, carried = _begin(ctx, states, length)
    last = ctx.const(np.array(length - 1, np.int64))
    backwards = ctx.emit("sub", [last, counter]) if any(in_dirs) else None
    slices = [ctx.emit("gather", [x, backwards if d else counter], axis=a)
              for x, a, d in zip(scans, in_axes, in_dirs)]
    try:
        results = run_body(ctx, body, carried + slices, "Scan")
        if len(results) < len(states):
            ctx.fail(f"the Scan body has {len(results)} outputs, fewer than its "
                     f"{len(states)} states")
        return _end(ctx, name, counter, carried, results[:len(states)],
                    results[len(states):], out_axes, out_dirs, length)
    except (_StateChangesShape, ConversionError, UnsupportedModelError):
        _abandon(ctx, mark)
        return unroll_scan(ctx, body, states, scans, in_axes, in_dirs, out_axes, out_dirs)


def _abandon(ctx, mark: int) -> None:
    """Drop the nodes of a loop form that cannot apply (from node `mark` on)."""
    for node in reversed(ctx.graph.nodes[mark:]):
        ctx.graph.remove(node)


def _per_input(ctx, values, count: int, what: str) -> list[int]:
    """An attribute with one int per scan input/output (all zero when absent)."""
    if values is None:
        return [0] * count
    values = [int(v) for v in values]
    if len(values) != count:
        ctx.fail(f"Scan's {what} has {len(values)} entries for {count} tensors")
    return values


@converter("Scan", since=8)
def scan_batched(ctx, sequence_lens, *inputs, body=None, num_scan_inputs=None,
                 directions=None):
    """Scan-8: every input has a leading batch axis; the scan axis is axis 1."""
    if body is None or num_scan_inputs is None:
        ctx.fail("Scan needs its body and num_scan_inputs attributes")
    _check_body(ctx, body, "Scan")
    inputs = list(inputs)
    num_states = len(inputs) - num_scan_inputs
    if num_states < 0 or any(v is None for v in inputs):
        ctx.fail(f"Scan has {len(inputs)} inputs for num_scan_inputs={num_scan_inputs}")
    dirs = _per_input(ctx, directions, num_scan_inputs, "directions")
    batch = inputs[0].shape[0] if inputs and len(inputs[0].shape) else 0
    if sequence_lens is not None:
        lens = np.asarray(ctx.value_of(sequence_lens, "Scan's sequence_lens")).reshape(-1)
        full = inputs[-1].shape[1] if num_scan_inputs else 0
        if np.any(lens != full):
            ctx.fail(f"Scan sequence_lens {lens.tolist()} shorter than the full length "
                     f"{full} are not supported", "pad the sequences to one length")
    per_batch: list[list[Value]] = []
    for b in range(batch):
        states = [take(ctx, x, 0, b) for x in inputs[:num_states]]
        scans = [take(ctx, x, 0, b) for x in inputs[num_states:]]
        num_outputs = len(body.output) - num_states
        per_batch.append(loop_scan(ctx, body, states, scans, [0] * num_scan_inputs, dirs,
                                   [0] * num_outputs, [0] * num_outputs))
    if not per_batch:
        ctx.fail("Scan-8 over an empty batch is not supported")
    results = [stack(ctx, [r[i] for r in per_batch], 0) for i in range(len(per_batch[0]))]
    return results[0] if len(results) == 1 else results


@converter("Scan", since=9)
def scan(ctx, *inputs, body=None, num_scan_inputs=None, scan_input_axes=None,
         scan_input_directions=None, scan_output_axes=None, scan_output_directions=None):
    """Scan-9 and later: states, then scan inputs sliced along their scan axes."""
    if body is None or num_scan_inputs is None:
        ctx.fail("Scan needs its body and num_scan_inputs attributes")
    _check_body(ctx, body, "Scan")
    inputs = list(inputs)
    num_states = len(inputs) - num_scan_inputs
    if num_states < 0 or num_scan_inputs < 1 or any(v is None for v in inputs):
        ctx.fail(f"Scan has {len(inputs)} inputs for num_scan_inputs={num_scan_inputs}")
    states, scans = inputs[:num_states], inputs[num_states:]
    in_axes = [axis_of(ctx, a, len(x.shape), "scan_input_axes entry") for a, x in
               zip(_per_input(ctx, scan_input_axes, len(scans), "scan_input_axes"), scans)]
    in_dirs = _per_input(ctx, scan_input_directions, len(scans), "scan_input_directions")
    num_outputs = len(body.output) - num_states
    out_axes = _per_input(ctx, scan_output_axes, num_outputs, "scan_output_axes")
    out_dirs = _per_input(ctx, scan_output_directions, num_outputs, "scan_output_directions")
    results = loop_scan(ctx, body, states, scans, in_axes, in_dirs, out_axes, out_dirs)
    return results[0] if len(results) == 1 else results


def _known_flag(ctx, value: Value, what: str) -> bool:
    """A bool scalar's compile-time value."""
    return bool(np.asarray(ctx.value_of(value, what)).reshape(-1)[0])


def unroll_loop(ctx, body: Any, limit: int | None, running: bool,
                initial: list[Value]) -> list[Value]:
    """Loop with a compile-time trip count and condition, unrolled (its states change
    shape from one iteration to the next)."""
    budget = MAX_UNROLLED_NODES // max(1, len(body.node))
    states = initial
    collected: list[list[Value]] = []
    step = 0
    while running and (limit is None or step < limit):
        if step >= budget:
            _check_length(ctx, step + 1, body, "Loop")
        iteration = ctx.const(np.array(step, dtype=np.int64))
        flag = ctx.const(np.array(running, dtype=np.bool_))
        results = run_body(ctx, body, [iteration, flag] + states, "Loop")
        if len(results) < 1 + len(states):
            ctx.fail("the Loop body produces fewer outputs than its loop-carried values")
        running = _known_flag(ctx, results[0], "Loop's condition after an iteration")
        states = results[1:1 + len(states)]
        scan_values = results[1 + len(states):]
        if not collected:
            collected = [[] for _ in scan_values]
        for bucket, value in zip(collected, scan_values):
            bucket.append(value)
        step += 1
    num_scans = len(body.output) - 1 - len(states)
    if num_scans and not collected:
        ctx.fail("a Loop that runs zero times has scan outputs of unknown shape")
    return states + [stack(ctx, parts, 0) for parts in collected]


@converter("Loop", since=1)
def loop(ctx, trip_count=None, cond=None, *initial, body=None):
    """Loop as a loop: trip count and condition at compile time or at run time."""
    if body is None:
        ctx.fail("Loop needs its body attribute")
    _check_body(ctx, body, "Loop")
    initial = list(initial)
    if any(v is None for v in initial):
        ctx.fail("Loop's loop-carried inputs must all be given")
    if trip_count is None and cond is None:
        ctx.fail("a Loop with neither a trip count nor a condition never ends")
    num_scans = len(body.output) - 1 - len(initial)
    if num_scans < 0:
        ctx.fail("the Loop body produces fewer outputs than its loop-carried values")
    limit = None
    if trip_count is not None and trip_count.is_constant:
        limit = max(0, int(np.asarray(trip_count.data).reshape(-1)[0]))
        trip_count = None
    running = True
    if cond is not None and cond.is_constant:
        running = bool(np.asarray(cond.data).reshape(-1)[0])
        cond = None
    bound = limit if limit is not None else UNBOUNDED
    if not running:
        bound = 0
    if bound == UNBOUNDED and num_scans and trip_count is not None:
        ctx.value_of(trip_count, f"the trip count of a Loop with {num_scans} scan output(s) "
                                 f"(their bound: Kiln sizes their buffers at compile time)")
    if bound == UNBOUNDED and num_scans:
        ctx.fail(f"a Loop with no trip count needs one for its {num_scans} scan output(s): "
                 f"Kiln sizes their buffers at compile time",
                 "give the Loop a trip count (the most iterations) beside its condition")
    mark = len(ctx.graph.nodes)
    name, counter, carried = _begin(ctx, initial, bound, trip_count,
                                    None if cond is None else _as_bool(ctx, cond))
    flag = ctx.const(np.array(True))
    try:
        results = run_body(ctx, body, [counter, flag] + carried, "Loop")
        if len(results) != 1 + len(initial) + num_scans:
            ctx.fail(f"the Loop body produces {len(results)} outputs, not the condition, "
                     f"{len(initial)} loop-carried values and {num_scans} scan outputs")
        stop = results[0]
        if stop.is_constant and bool(np.asarray(stop.data).reshape(-1)[0]):
            stop = None   # never false: the trip count decides
        elif stop is not None:
            stop = _as_bool(ctx, stop)
        outputs = _end(ctx, name, counter, carried, results[1:1 + len(initial)],
                       results[1 + len(initial):], [0] * num_scans, [0] * num_scans, bound,
                       stop, bounded=stop is not None or trip_count is not None)
    except _StateChangesShape:
        if trip_count is not None or cond is not None:
            ctx.fail("a loop-carried value of the Loop changes shape between iterations, "
                     "which only an unrolled loop can do, and its trip count or condition "
                     "is known only at run time", "pin them at compile time (--const)")
        _abandon(ctx, mark)
        outputs = unroll_loop(ctx, body, limit, running, initial)
    except (ConversionError, UnsupportedModelError):   # the body needs its iteration
        # number at compile time (a Slice's bounds): only unrolled iterations have it
        if trip_count is not None or cond is not None:
            raise
        _abandon(ctx, mark)
        outputs = unroll_loop(ctx, body, limit, running, initial)
    if not outputs:
        ctx.fail("Loop has no outputs")
    return outputs[0] if len(outputs) == 1 else outputs


def _as_bool(ctx, flag: Value) -> Value:
    """A condition as a bool scalar."""
    if flag.dtype is not DType.bool:
        flag = ctx.emit("cast", [flag], to=DType.bool)
    return flag
