"""What `kiln compile` needs beyond the model file, for `kiln inspect`: the input dims with
no value (--dim/--shape) and what the import refuses once they have one (a Reshape whose
shape is a graph input needs --const). Found the way compile finds them, by importing the
model, so that inspect and compile never disagree."""

from __future__ import annotations

import onnx

from ...compiler.errors import KilnError, UnsupportedModelError
from .importer import free_dim_lines, import_model, pinned_dim


def compile_needs(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(free dims, problems): a line for each input dim compile would ask a value for, and
    each problem compile would stop on after those (found with the free dims set to 1)."""
    initializers = {t.name for t in model.graph.initializer}
    free: list[str] = []
    probe: dict[str, tuple[int, ...]] = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        declared = list(graph_input.type.tensor_type.shape.dim)
        shape = [pinned_dim(dim, {}) for dim in declared]
        lines = free_dim_lines(graph_input.name, declared, shape)
        if lines:
            free += lines
            probe[graph_input.name] = tuple(1 if size is None else size for size in shape)
    try:
        import_model(model, shapes=probe)
    except UnsupportedModelError as exc:
        return free, [str(problem) for problem in exc.problems]
    except KilnError as exc:
        return free, [str(exc)]
    return free, []
