"""The pass pipeline is near-linear in graph size: a complexity bound, not a speed claim.

Each family of generated graphs (kiln.benchmarks.compile_time) is run through the passes at
two sizes of the same structure, 4x apart, counting the Python lines executed (sys.settrace):
a count that does not depend on the machine's load. Linear passes make 4x the lines; a pass
quadratic in the graph makes 16x (before the memory planner indexed its blocks by lifetime,
the unrolled chain made 14.7x, the wide graph 13.4x and the encoder 10.2x).
"""

import sys

import pytest

from kiln.benchmarks.compile_time import chain, encoder, wide
from kiln.driver import kernel_selector
from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes
from kiln.targets import get_target

#: Lines executed at 4x the nodes may grow by at most this factor (linear: 4, quadratic: 16).
BOUND = 6.0


def pass_lines(model) -> tuple[int, int]:
    """(Python lines the pass pipeline executes on `model`, nodes it starts from)."""
    graph = import_model(model)
    graph.metadata["kernel_choice"] = kernel_selector(get_target("host"), "c", None, 1)
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += event == "line"
        return tracer

    nodes = len(graph.nodes)
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run_passes(graph)
    finally:
        sys.settrace(previous)
    return count, nodes


@pytest.mark.parametrize("build, size", [(chain, 32), (wide, 64), (encoder, 2)],
                         ids=["unrolled_chain", "wide_concat", "encoder"])
def test_pass_pipeline_grows_near_linearly(build, size):
    small, small_nodes = pass_lines(build(size))
    large, large_nodes = pass_lines(build(4 * size))
    assert 3.9 <= large_nodes / small_nodes <= 4.1   # the same structure, 4x the nodes
    assert large / small < BOUND, (
        f"{build.__name__}: {small_nodes} -> {large_nodes} nodes took {small} -> {large} "
        f"lines ({large / small:.1f}x); some pass grows faster than the graph")
