"""What `kiln compile` needs beyond the model file, for `kiln inspect`: the input dims with
no value (--dim/--shape) and what the import refuses once they have one (a Reshape whose
shape is a graph input needs --const). Found the way compile finds them, by importing the
model, so that inspect and compile never disagree."""

from __future__ import annotations

import onnx

from ...compiler.errors import KilnError, UnsupportedModelError
from .importer import free_dim_lines, import_model, pinned_dim


def compile_needs(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(free dims, problems): what to do about each input dim compile would ask a value for,
    and each problem compile would stop on after those (found with the free dims set to 1)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    probe: dict[str, tuple[int, ...]] = {}
    for graph_input in inputs:
        shape = [pinned_dim(dim, {}) for dim in graph_input.type.tensor_type.shape.dim]
        if None in shape:
            probe[graph_input.name] = tuple(1 if size is None else size for size in shape)
    try:
        import_model(model, shapes=probe)
    except UnsupportedModelError as exc:
        return free_dim_lines(inputs, {}), [str(problem) for problem in exc.problems]
    except KilnError as exc:
        return free_dim_lines(inputs, {}), [str(exc)]
    return free_dim_lines(inputs, {}), []
