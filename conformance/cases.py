"""The node tests as data: find them, read their stored inputs/outputs, compare results."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..compiler.dtypes import DType

#: The issue's tolerances: rtol 1e-3, atol 1e-7; integers and bools exactly; NaN equals NaN.
RTOL, ATOL = 1e-3, 1e-7
#: float16 outputs: two float16 ulps (2**-9), since the reference rounds every intermediate
#: to float16 while Kiln may keep float32 inside a fused kernel.
RTOL_FLOAT16 = 2.0 ** -9
#: An element whose exact value is ~0 inherits the reference's rounding noise from the other
#: elements (e.g. an inverse DFT): errors within 4 ulps of the output's largest magnitude
#: (in the output's dtype) also match.
NOISE_ULPS = 4


@dataclass(frozen=True)
class NodeTest:
    """One backend test: a folder with model.onnx and test_data_set_*/ of .pb tensors."""

    name: str
    folder: Path

    @property
    def model_path(self) -> Path:
        """model.onnx in the test's folder; a light model-zoo test names its .onnx file."""
        return self.folder if self.folder.suffix == ".onnx" else self.folder / "model.onnx"


def discover(root: Path, pattern: str | None = None) -> list[NodeTest]:
    """The node tests under `root` (a node/ folder) whose names match `pattern`, sorted."""
    regex = re.compile(pattern) if pattern else None
    tests = []
    for folder in sorted(Path(root).iterdir()):
        if not (folder / "model.onnx").is_file():
            continue
        if regex is not None and not regex.search(folder.name):
            continue
        tests.append(NodeTest(folder.name, folder))
    return tests


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def primary_op(model: onnx.ModelProto, test_name: str) -> str:
    """The op a test is about: its single node's op, or for expanded (multi-node) tests the
    ONNX op whose snake_case name is the longest prefix of the test name."""
    ops = {n.op_type for n in model.graph.node}
    if len(ops) == 1:
        return ops.pop()
    stem = test_name[len("test_"):] if test_name.startswith("test_") else test_name
    best = ""
    for snake, op in _schema_names().items():
        if (stem == snake or stem.startswith(snake + "_")) and len(snake) > len(_snake(best)):
            best = op
    return best or stem


_SCHEMAS: dict[str, str] = {}


def _schema_names() -> dict[str, str]:
    if not _SCHEMAS:
        for schema in onnx.defs.get_all_schemas_with_history():
            if schema.domain in ("", "ai.onnx"):
                _SCHEMAS[_snake(schema.name)] = schema.name
                _SCHEMAS[schema.name.lower()] = schema.name
    return _SCHEMAS


def read_tensor(path: Path) -> np.ndarray:
    """A stored TensorProto as numpy (raises onnx/protobuf errors for other protos)."""
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def discover_light(root: Path) -> list[NodeTest]:
    """The model-zoo networks of the wheel's light/ folder (light_*.onnx)."""
    return [NodeTest(path.stem, path) for path in sorted(Path(root).glob("light_*.onnx"))]


def _light_data_set(test: NodeTest, model: onnx.ModelProto
                    ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """ONNX's runner feeds a light model arange(n) / n in each input's shape (unknown dims
    1) and stores the outputs beside the model as <name>_output_<i>.pb."""
    initializers = {t.name for t in model.graph.initializer}
    feed = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in graph_input.type.tensor_type.shape.dim)
        count = int(np.prod(shape))
        feed[graph_input.name] = (np.arange(count).reshape(shape) / count).astype(np.float32)
    expected = [read_tensor(test.folder.with_name(f"{test.name}_output_{i}.pb"))
                for i in range(len(model.graph.output))]
    return feed, expected


def load_data_set(test: NodeTest, model: onnx.ModelProto, index: int = 0
                  ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The feed (keyed by the model's real input names) and the expected outputs in order."""
    if test.folder.suffix == ".onnx":
        return _light_data_set(test, model)
    folder = test.folder / f"test_data_set_{index}"
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    count = len(list(folder.glob("input_*.pb")))
    feed = {names[i]: read_tensor(folder / f"input_{i}.pb") for i in range(count)}
    outputs = len(list(folder.glob("output_*.pb")))
    expected = [read_tensor(folder / f"output_{i}.pb") for i in range(outputs)]
    return feed, expected


def compare(actual: np.ndarray, expected: np.ndarray) -> str | None:
    """None when `actual` matches `expected`, else what differs (one line)."""
    actual = np.asarray(actual)
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != expected {expected.dtype}"
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    if _is_storage(expected.dtype):
        return _compare_storage(actual, expected)
    if expected.dtype.kind in "fc":
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
        both_nan = np.isnan(a) & np.isnan(e)
        same = (a == e) | both_nan
        with np.errstate(invalid="ignore", over="ignore"):
            rtol = RTOL_FLOAT16 if expected.dtype == np.float16 else RTOL
            finite = np.abs(e[np.isfinite(e)])
            noise = NOISE_ULPS * np.finfo(expected.dtype).eps * (finite.max() if finite.size
                                                                 else 0.0)
            close = np.abs(a - e) <= max(ATOL, noise) + rtol * np.abs(e)
        bad = ~(same | close)
        if bad.any():
            count = int(bad.sum())
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            return (f"{count}/{bad.size} elements differ, e.g. at {where}: "
                    f"{a[where]!r} vs expected {e[where]!r}")
        return None
    if not np.array_equal(actual, expected):
        bad = actual != expected
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
        return (f"{int(np.sum(bad))}/{bad.size} elements differ, e.g. at {where}: "
                f"{actual[where]!r} vs expected {expected[where]!r}")
    return None


def _is_storage(dtype: np.dtype) -> bool:
    """Whether `dtype` is an ml_dtypes storage type (bfloat16, float8, int4, ...)."""
    try:
        return DType.from_numpy(dtype).is_storage
    except KeyError:
        return False


def _compare_storage(actual: np.ndarray, expected: np.ndarray) -> str | None:
    """ml_dtypes storage types (bfloat16, float8, float4, int4, int2, ...): exactly, as the
    float32 values they stand for, NaN equal to NaN."""
    try:
        a = actual.astype(np.float32)
        e = expected.astype(np.float32)
    except (TypeError, ValueError):
        return f"cannot compare dtype {expected.dtype} as float32"
    bad = ~((a == e) | (np.isnan(a) & np.isnan(e)))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
        return (f"{int(bad.sum())}/{bad.size} elements differ, e.g. at {where}: "
                f"{a[where]!r} vs expected {e[where]!r}")
    return None
