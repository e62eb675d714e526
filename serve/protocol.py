"""The Open Inference Protocol (KServe v2) over REST: tensor datatypes, the inference request
(JSON tensors, and the binary tensor data extension), the inference response, and the
metadata objects. Pure functions of bytes and arrays: no HTTP here (http.py) and no model
(the caller passes the model's tensor descriptions).

A request's JSON object may be followed by binary tensor data: the header
Inference-Header-Content-Length gives the JSON object's length, and every input whose
parameters carry "binary_data_size" takes its bytes, in the order of the inputs (row-major,
little-endian, BOOL one byte each). Outputs go back as binary when the request's
"binary_data_output" parameter or the output's own "binary_data" says so.

Every check names the input or output at fault and says what was expected, since the caller
is usually a program whose author reads the message once.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import ml_dtypes
import numpy as np

from ..runtime import TensorInfo
from . import jsoncodec
from .errors import BadRequest, ServeError

#: The protocol's datatype names -> numpy dtypes. BYTES (strings) has none: Kiln artifacts
#: take numeric tensors only.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BF16": np.dtype(ml_dtypes.bfloat16),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}

HEADER_LENGTH = "inference-header-content-length"


class UnservableModel(ServeError, ValueError):
    """A model has an input or output whose dtype the protocol has no datatype for."""


def datatype_name(dtype: np.dtype) -> str:
    """The protocol's name of numpy `dtype`; UnservableModel when it has none (Kiln's float8,
    float4 and sub-byte integer storage types)."""
    try:
        return _NAMES[np.dtype(dtype)]
    except KeyError:
        raise UnservableModel(
            f"dtype {np.dtype(dtype).name} has no Open Inference Protocol datatype (the "
            f"protocol has {', '.join(DATATYPES)}); compile the model with that tensor in a "
            f"type the protocol has, e.g. by casting it in the ONNX graph") from None


def tensor_metadata(tensor: TensorInfo) -> dict[str, Any]:
    """A tensor's entry in model metadata: name, datatype and shape."""
    return {"name": tensor.name, "datatype": datatype_name(tensor.dtype),
            "shape": list(tensor.shape)}


@dataclass(frozen=True)
class RequestedOutput:
    """An output the request asks for, and whether it wants it as binary data."""

    name: str
    binary: bool | None = None   # None: as the request's binary_data_output says


@dataclass
class InferRequest:
    """A decoded inference request, its inputs checked against the model's."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput] | None   # None: every output
    binary_output: bool                      # the request's "binary_data_output"
    timeout_us: float | None                 # the request's "timeout" parameter


def parse_infer_request(body: bytes | memoryview, header_length: str | None,
                        inputs: Sequence[TensorInfo],
                        outputs: Sequence[TensorInfo]) -> InferRequest:
    """Decode an inference request's body (with its Inference-Header-Content-Length header's
    value, or None) and check every input against the model's `inputs` (name, datatype,
    shape, data length); raises BadRequest naming what is wrong. Binary inputs are views on
    `body`, not copies."""
    header, binary = _split_body(body, header_length)
    try:
        try:
            return check_infer_request(_decode_header(header, False), binary, inputs, outputs)
        except BadRequest:
            if not jsoncodec.fast():
                raise
        # orjson reads integers past 64 bits as floats: the standard reading judges
        return check_infer_request(_decode_header(header, True), binary, inputs, outputs)
    except jsoncodec.NotJSON as exc:
        raise BadRequest(f"the request body is {exc}") from None


def _decode_header(header: memoryview, exact: bool) -> dict:
    request = jsoncodec.loads(header, exact)
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object with an 'inputs' list")
    return request


def check_infer_request(request: dict, binary: memoryview, inputs: Sequence[TensorInfo],
                        outputs: Sequence[TensorInfo]) -> InferRequest:
    """Check a decoded inference request, the JSON object's form (REST's body, or the gRPC
    message turned into it, so that both protocols get the same checks and messages),
    against the model's `inputs` and `outputs`; `binary` holds the bytes of the inputs with
    a binary_data_size parameter, in their order. Raises BadRequest naming what is wrong."""
    parameters = _parameters(request, "the request")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"the request's 'id' must be a string, got {json.dumps(request_id)}")
    arrays = _decode_inputs(request.get("inputs"), binary, inputs)
    return InferRequest(
        id=request_id, inputs=arrays,
        outputs=_requested_outputs(request.get("outputs"), outputs),
        binary_output=_flag(parameters, "binary_data_output", "the request"),
        timeout_us=_timeout(parameters))


def _split_body(body: bytes | memoryview, header_length: str | None
                ) -> tuple[memoryview, memoryview]:
    view = memoryview(body)
    if header_length is None:
        return view, view[:0]
    text = header_length.strip()
    if not text.isdigit():
        raise BadRequest(f"the Inference-Header-Content-Length header must be a byte count, "
                         f"got {header_length!r}")
    length = int(text)
    if length > len(body):
        raise BadRequest(f"the Inference-Header-Content-Length header says the JSON object "
                         f"is {length} bytes but the body has only {len(body)}")
    return view[:length], view[length:]


def _decode_inputs(items: Any, binary: memoryview,
                   model_inputs: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    expected = {t.name: t for t in model_inputs}
    signature = ", ".join(f"{t.name} ({datatype_name(t.dtype)} {list(t.shape)})"
                          for t in model_inputs)
    if not isinstance(items, list):
        raise BadRequest(f"the request needs an 'inputs' list of tensors; the model's inputs "
                         f"are: {signature}")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"inputs[{position}] must be an object with a 'name', 'shape', "
                             f"'datatype' and 'data'")
        name = item["name"]
        tensor = expected.get(name)
        if tensor is None:
            raise BadRequest(f"unknown input {name!r}; the model's inputs are: {signature}")
        if name in arrays:
            raise BadRequest(f"input {name!r} is given twice")
        where = f"input {name!r}"
        datatype = item.get("datatype")
        want = datatype_name(tensor.dtype)
        if datatype != want:
            if datatype == "BYTES":
                raise BadRequest(f"{where}: datatype BYTES (strings) is not supported by Kiln "
                                 f"models; this input is {want}")
            raise BadRequest(f"{where}: expected datatype {want}, got {json.dumps(datatype)}")
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers, got "
                             f"{json.dumps(shape)}")
        if -1 in tensor.shape and len(shape) == len(tensor.shape) and all(
                want in (-1, got) for want, got in zip(tensor.shape, shape)):
            tensor = dataclasses.replace(tensor, shape=tuple(shape))   # -1: any size
        elif tuple(shape) != tensor.shape:
            raise BadRequest(f"{where}: expected shape {list(tensor.shape)}"
                             + (" (-1: any size)" if -1 in tensor.shape else "")
                             + f", got {shape}")
        parameters = _parameters(item, where)
        size = parameters.get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise BadRequest(f"{where} has both 'data' and the binary_data_size parameter; "
                                 f"give one")
            arrays[name] = _binary_tensor(where, size, binary, offset, tensor)
            offset += size
        elif "data" in item:
            arrays[name] = _json_tensor(where, item["data"], tensor)
        else:
            raise BadRequest(f"{where} has no 'data' (nor a binary_data_size parameter for "
                             f"binary data after the JSON object)")
    missing = [t.name for t in model_inputs if t.name not in arrays]
    if missing:
        raise BadRequest("missing input(s): " + ", ".join(repr(n) for n in missing)
                         + f"; the model's inputs are: {signature}")
    if offset != len(binary):
        raise BadRequest(f"the body has {len(binary)} bytes of binary data after the JSON "
                         f"object but the inputs' binary_data_size parameters add up to "
                         f"{offset}")
    return arrays


def _binary_tensor(where: str, size: Any, binary: memoryview, offset: int,
                   tensor: TensorInfo) -> np.ndarray:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"{where}: binary_data_size must be a byte count, got "
                         f"{json.dumps(size)}")
    need = math.prod(tensor.shape) * tensor.dtype.itemsize
    if size != need:
        raise BadRequest(f"{where}: binary_data_size is {size} bytes but shape "
                         f"{list(tensor.shape)} of {datatype_name(tensor.dtype)} takes {need}")
    if offset + size > len(binary):
        raise BadRequest(f"{where}: its {size} bytes of binary data run past the end of the "
                         f"body ({len(binary) - offset} bytes left after the JSON object and "
                         f"the inputs before it)")
    raw = binary[offset:offset + size]
    array = np.frombuffer(raw, dtype=tensor.dtype.newbyteorder("<")).reshape(tensor.shape)
    if tensor.dtype == np.bool_ and array.size and np.frombuffer(raw, np.uint8).max() > 1:
        raise BadRequest(f"{where}: BOOL binary data must be bytes 0 or 1")
    return array.astype(tensor.dtype, copy=False)


def _json_tensor(where: str, data: Any, tensor: TensorInfo) -> np.ndarray:
    """A JSON 'data' list (flat, row-major, or nested as the shape) as an array of the
    input's dtype, refusing what would need a silent conversion (a fraction for an integer,
    a number for a BOOL, a value out of the type's range)."""
    name = datatype_name(tensor.dtype)
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a list of {name} values (row-major, flat or "
                         f"nested), got {type(data).__name__}")
    try:
        array = np.array(data)
    except ValueError:
        raise BadRequest(f"{where}: 'data' is a nested list of uneven lengths") from None
    numel = math.prod(tensor.shape)
    if array.size != numel or (array.ndim > 1 and array.shape != tensor.shape):
        raise BadRequest(f"{where}: 'data' has {array.size} elements"
                         + (f" in shape {list(array.shape)}" if array.ndim > 1 else "")
                         + f" but shape {list(tensor.shape)} needs {numel}")
    if numel == 0:
        return np.zeros(tensor.shape, tensor.dtype)
    kind = array.dtype.kind
    if tensor.dtype == np.bool_:
        if kind != "b":
            raise BadRequest(f"{where}: BOOL data must be true or false values")
    elif tensor.dtype.kind in "iu":
        if kind in "fO":   # integers beyond int64 turn numpy to floats (losing digits)
            exact = np.array(data, dtype=object)
            if all(type(v) is int for v in exact.reshape(-1)):
                array, kind = exact, "i"   # Python's exact integers, range-checked below
        if kind not in "iu":
            raise BadRequest(f"{where}: {name} data must be integers, got "
                             f"{_kind_name(kind)}")
        info = np.iinfo(tensor.dtype)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise BadRequest(f"{where}: value {bad} is out of the range of {name} "
                             f"({info.min} .. {info.max})")
        return np.array(array.reshape(-1).tolist() if array.dtype.kind == "O" else array,
                        dtype=tensor.dtype).reshape(tensor.shape)
    elif kind == "O" and all(type(v) in (int, float) for v in array.reshape(-1).tolist()):
        try:   # integers past 64 bits among floats: numbers all the same (orjson's reading)
            array = array.astype(np.float64)
        except OverflowError:
            raise BadRequest(f"{where}: an integer is out of the range of {name}") from None
    elif kind not in "iuf":
        raise BadRequest(f"{where}: {name} data must be numbers, got {_kind_name(kind)}")
    return array.astype(tensor.dtype).reshape(tensor.shape)


def _kind_name(kind: str) -> str:
    return {"b": "booleans", "f": "fractions", "U": "strings", "O": "mixed or non-numeric "
            "values", "i": "integers", "u": "integers"}.get(kind, f"values of kind {kind}")


def _requested_outputs(items: Any, model_outputs: Sequence[TensorInfo]
                       ) -> list[RequestedOutput] | None:
    if items is None:
        return None
    known = [t.name for t in model_outputs]
    if not isinstance(items, list):
        raise BadRequest("the request's 'outputs' must be a list of {\"name\": ...} objects")
    chosen = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"outputs[{position}] must be an object with a 'name'")
        name = item["name"]
        if name not in known:
            raise BadRequest(f"unknown output {name!r}; the model's outputs are: "
                             + ", ".join(known))
        where = f"output {name!r}"
        parameters = _parameters(item, where)
        if "classification" in parameters:
            raise BadRequest(f"{where}: the classification extension is not supported")
        binary = _flag(parameters, "binary_data", where) if "binary_data" in parameters \
            else None
        chosen.append(RequestedOutput(name, binary))
    return chosen


def _parameters(item: dict, where: str) -> dict:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be an object")
    return parameters


def _flag(parameters: dict, name: str, where: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {name!r} must be true or false, got "
                         f"{json.dumps(value)}")
    return value


def _timeout(parameters: dict) -> float | None:
    value = parameters.get("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise BadRequest(f"the request's 'timeout' parameter must be a positive number of "
                         f"microseconds, got {json.dumps(value)}")
    return float(value)


def encode_infer_response(model_name: str, version: str, request_id: str | None,
                          results: dict[str, np.ndarray],
                          requested: list[RequestedOutput] | None,
                          binary_output: bool) -> tuple[list[bytes | memoryview],
                                                        dict[str, str]]:
    """The response body, as the pieces to write one after another, and its content headers:
    a JSON object, followed by the binary outputs' bytes when any output goes back as binary
    data. A binary output's piece is a view on its array (bytes, not elements: len() is its
    size), so that the server writes it without copying it first."""
    chosen = requested if requested is not None else [RequestedOutput(n) for n in results]
    entries, pieces = [], []
    for wanted in chosen:
        array = results[wanted.name]
        entry: dict[str, Any] = {"name": wanted.name, "datatype": datatype_name(array.dtype),
                                 "shape": list(array.shape)}
        if wanted.binary if wanted.binary is not None else binary_output:
            raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).reshape(-1)
            entry["parameters"] = {"binary_data_size": raw.nbytes}
            pieces.append(memoryview(raw.view(np.uint8)))
            entries.append(jsoncodec.dumps(entry))
        else:   # the entry's JSON with the data spliced in
            entries.append(jsoncodec.dumps(entry)[:-1] + b',"data":'
                           + jsoncodec.dumps_array(array) + b"}")
    response: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if request_id is not None:
        response["id"] = request_id
    header = jsoncodec.dumps(response)[:-1] + b',"outputs":[' + b",".join(entries) + b"]}"
    if not pieces:
        return [header], {"content-type": "application/json"}
    return [header, *pieces], {"content-type": "application/octet-stream",
                               HEADER_LENGTH: str(len(header))}
