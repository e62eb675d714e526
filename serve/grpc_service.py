"""The gRPC side of `kiln serve`: inference.GRPCInferenceService, the Open Inference
Protocol's gRPC API (KServe v2, as Triton defines it), on grpc.aio, on the same event loop
as the REST side.

    ServerLive, ServerReady, ModelReady       health, as /v2/health/live|ready
    ServerMetadata, ModelMetadata             as GET /v2 and GET /v2/models/{m}
    ModelInfer                                inference: raw_input_contents or typed contents
    ModelStatistics, RepositoryIndex          the statistics and repository extensions

Every call goes through the REST application's own methods (http.InferenceApp): the same
readiness, the same checks of a request (the message is turned into the JSON object's form
and checked by protocol.check_infer_request), the same queue, metrics and statistics. So the
two protocols cannot drift apart, and a drain on SIGTERM covers both. Errors are gRPC status
codes: INVALID_ARGUMENT for a bad request (naming the input and what was expected),
NOT_FOUND for an unknown model or version, UNAVAILABLE for a model not ready, a full queue or
a server shutting down (with a retry-after trailer), DEADLINE_EXCEEDED when the request's
timeout passed in the queue, INTERNAL when the model's run failed.

The event loop only decodes and encodes messages; models run on their schedulers' worker
threads, so the health calls are answered however busy the models are.
"""

from __future__ import annotations

import math
import sys
import traceback
from typing import Any, Awaitable, Callable

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message

from .. import __version__
from .errors import BadRequest, ConfigError, RequestError
from .grpc_messages import METHODS, SERVICE, InferTensorContents, ModelInferResponse
from .http import EXTENSIONS, InferenceApp
from .protocol import DATATYPES, InferRequest, check_infer_request, datatype_name
from .repository import ModelVersion

#: HTTP status of a RequestError -> the gRPC status code it is answered with
STATUS_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                405: grpc.StatusCode.UNIMPLEMENTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
                500: grpc.StatusCode.INTERNAL, 503: grpc.StatusCode.UNAVAILABLE,
                504: grpc.StatusCode.DEADLINE_EXCEEDED}

#: datatype -> the InferTensorContents field its values go in (FP16 and BF16 have none:
#: raw bytes only)
CONTENTS_FIELDS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
                   "INT32": "int_contents", "INT64": "int64_contents",
                   "UINT8": "uint_contents", "UINT16": "uint_contents",
                   "UINT32": "uint_contents", "UINT64": "uint64_contents",
                   "FP32": "fp32_contents", "FP64": "fp64_contents",
                   "BYTES": "bytes_contents"}

Handler = Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]


class InferenceService:
    """The calls of inference.GRPCInferenceService over the REST application `app` (its
    repository, metrics, readiness and drain state)."""

    def __init__(self, app: InferenceApp):
        self.app = app
        self.repository = app.repository

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's methods for grpc.aio's server: each decodes its request message,
        answers, and turns a RequestError into its status code."""
        calls: dict[str, Handler] = {
            "ServerLive": self.server_live, "ServerReady": self.server_ready,
            "ModelReady": self.model_ready, "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata, "ModelInfer": self.model_infer,
            "ModelStatistics": self.model_statistics,
            "RepositoryIndex": self.repository_index}
        methods = {}
        for name, call in calls.items():
            request_class, _ = METHODS[name]
            methods[name] = grpc.unary_unary_rpc_method_handler(
                _answering(call), request_deserializer=request_class.FromString,
                response_serializer=lambda message: message.SerializeToString())
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    # -- health and metadata ----------------------------------------------------------------

    async def server_live(self, request: Message, context: grpc.aio.ServicerContext
                          ) -> Message:
        return METHODS["ServerLive"][1](live=True)

    async def server_ready(self, request: Message, context: grpc.aio.ServicerContext
                           ) -> Message:
        ready, _, _ = self.app.readiness()
        return METHODS["ServerReady"][1](ready=ready)

    async def model_ready(self, request: Message, context: grpc.aio.ServicerContext
                          ) -> Message:
        ready, _ = self.app.model_readiness(request.name, request.version or None)
        return METHODS["ModelReady"][1](ready=ready)

    async def server_metadata(self, request: Message, context: grpc.aio.ServicerContext
                              ) -> Message:
        return METHODS["ServerMetadata"][1](name="kiln", version=__version__,
                                            extensions=EXTENSIONS)

    async def model_metadata(self, request: Message, context: grpc.aio.ServicerContext
                             ) -> Message:
        return json_format.ParseDict(
            self.app.model_metadata(request.name, request.version or None),
            METHODS["ModelMetadata"][1]())

    # -- the extensions ---------------------------------------------------------------------

    async def model_statistics(self, request: Message, context: grpc.aio.ServicerContext
                               ) -> Message:
        stats = self.app.statistics(request.name or None, request.version or None)
        return json_format.ParseDict({"model_stats": stats},
                                     METHODS["ModelStatistics"][1](),
                                     ignore_unknown_fields=True)

    async def repository_index(self, request: Message, context: grpc.aio.ServicerContext
                               ) -> Message:
        return json_format.ParseDict(
            {"models": self.repository.index(ready_only=request.ready)},
            METHODS["RepositoryIndex"][1]())

    # -- inference --------------------------------------------------------------------------

    async def model_infer(self, request: Message, context: grpc.aio.ServicerContext
                          ) -> Message:
        # outputs go back as raw bytes when the inputs came so (tritonclient's way), in the
        # typed contents fields when the inputs did
        raw = bool(request.raw_input_contents) or not request.inputs

        async def decode(served: ModelVersion) -> InferRequest:
            return decode_infer_request(request, served)

        def encode(served: ModelVersion, decoded: InferRequest,
                   outputs: dict[str, np.ndarray]) -> Message:
            return encode_infer_response(request.model_name, str(served.version), decoded,
                                         outputs, raw)

        record: dict[str, Any] = {}
        status = 200
        try:
            return await self.app.infer(request.model_name, request.model_version or None,
                                        decode, encode, record=record)
        except RequestError as exc:
            status = exc.status
            raise
        except Exception:   # answered INTERNAL by the gRPC layer
            status = 500
            raise
        finally:
            self.app.log_access(record, status)


def decode_infer_request(message: Message, served: ModelVersion) -> InferRequest:
    """A ModelInferRequest checked against the version `served`: turned into the REST JSON
    object's form (raw_input_contents become the binary data after it) and checked by the
    same function as a REST request. Raises BadRequest naming what is wrong."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequest(f"the request has {len(raw)} raw_input_contents entries for "
                         f"{len(message.inputs)} inputs; give one per input, in the order of "
                         f"the inputs")
    items = []
    for position, tensor in enumerate(message.inputs):
        where = f"input {tensor.name!r}"
        item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype,
                                "shape": list(tensor.shape)}
        given = [field.name for field, _ in tensor.contents.ListFields()]
        if raw:
            if given:
                raise BadRequest(f"{where} has values in contents.{given[0]} while the request "
                                 f"has raw_input_contents; give every input's values in one "
                                 f"of the two")
            size, need = len(raw[position]), _raw_size(tensor.datatype, tensor.shape)
            if need is not None and size != need:
                raise BadRequest(f"{where}: raw_input_contents[{position}] has {size} bytes "
                                 f"but shape {list(tensor.shape)} of {tensor.datatype} takes "
                                 f"{need}")
            item["parameters"] = {"binary_data_size": size}
        else:
            item["data"] = _typed_values(where, tensor.datatype, tensor.contents, given)
        items.append(item)
    decoded = check_infer_request(
        {"id": message.id or None, "parameters": _parameter_values(message.parameters),
         "inputs": items,
         "outputs": [{"name": o.name, "parameters": _parameter_values(o.parameters)}
                     for o in message.outputs] or None},
        # one input's bytes as they came; several joined (the shared checks take one buffer)
        memoryview(raw[0] if len(raw) == 1 else b"".join(raw)), served.inputs, served.outputs)
    return decoded


def _raw_size(datatype: str, shape: Any) -> int | None:
    """Bytes of a tensor of `datatype` and `shape` as the request declares them (None when
    they are not valid: the shared checks then say what is wrong)."""
    dtype = DATATYPES.get(datatype)
    if dtype is None or any(d < 0 for d in shape):
        return None
    return math.prod(shape) * dtype.itemsize


def _typed_values(where: str, datatype: str, contents: Message, given: list[str]) -> list:
    """An input's values from its typed contents field, as a list (the shared checks then
    refuse what does not fit the input's type: a value out of an INT8's range, say)."""
    if datatype not in DATATYPES:
        return []   # an unknown datatype or BYTES: the shared checks say what is wrong
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise BadRequest(f"{where}: {datatype} values have no typed contents field in the "
                         f"protocol; send the tensor's bytes in raw_input_contents")
    if not given:
        raise BadRequest(f"{where} has no values: give them in contents.{field} or, for "
                         f"every input, in raw_input_contents")
    wrong = [name for name in given if name != field]
    if wrong:
        raise BadRequest(f"{where}: {datatype} values go in contents.{field}, not in "
                         f"contents.{wrong[0]}")
    return list(getattr(contents, field))


def _parameter_values(parameters: Any) -> dict[str, Any]:
    """A map of InferParameter as the JSON object's parameters: name -> value."""
    values = {}
    for key, parameter in parameters.items():
        which = parameter.WhichOneof("parameter_choice")
        values[key] = None if which is None else getattr(parameter, which)
    return values


def encode_infer_response(model_name: str, version: str, request: InferRequest,
                          results: dict[str, np.ndarray], raw: bool) -> Message:
    """The ModelInferResponse of `results`: the requested outputs (all, if the request
    named none), in raw_output_contents when `raw` or when an output's type has no typed
    field (FP16, BF16: then all of them, as the protocol wants one way for every output),
    else in the typed contents fields."""
    names = [o.name for o in request.outputs] if request.outputs is not None else \
        list(results)
    datatypes = {name: datatype_name(results[name].dtype) for name in names}
    raw = raw or any(CONTENTS_FIELDS.get(d) is None for d in datatypes.values())
    response = ModelInferResponse(model_name=model_name, model_version=version,
                                  id=request.id or "")
    for name in names:
        array = results[name]
        output = response.outputs.add(name=name, datatype=datatypes[name],
                                      shape=list(array.shape))
        if raw:
            response.raw_output_contents.append(
                np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())
        else:
            output.contents.CopyFrom(InferTensorContents(
                **{CONTENTS_FIELDS[datatypes[name]]: array.reshape(-1).tolist()}))
    return response


def _answering(call: Handler) -> Handler:
    """`call`, with a RequestError answered by its status code and message (and
    Unavailable's retry-after, in seconds, as trailing metadata), and anything else by
    INTERNAL: no request can take the server down."""
    async def answer(request: Message, context: grpc.aio.ServicerContext) -> Message:
        try:
            return await call(request, context)
        except RequestError as exc:
            trailer = () if exc.retry_after is None else \
                (("retry-after", str(int(exc.retry_after))),)
            code = STATUS_CODES.get(exc.status, grpc.StatusCode.UNKNOWN)
            await context.abort(code, exc.message, trailing_metadata=trailer)
        except Exception as exc:   # a bug: answer it, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in kiln serve: "
                                                          f"{type(exc).__name__}: {exc}")
    return answer


def create_server(app: InferenceApp, host: str, port: int, max_message_bytes: int
                  ) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server of the service on `host`:`port` (0: a free port), not started, and
    the port it is bound to; ConfigError if it cannot listen there. Call from the event
    loop it is to run on. Messages up to `max_message_bytes` are accepted (as REST's
    --max-body-mb); larger ones are refused with RESOURCE_EXHAUSTED."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),   # a second server on the same port must fail, not share
    ])
    server.add_generic_rpc_handlers((InferenceService(app).handler(),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc} (--grpc-port; -1 "
                          f"turns gRPC off)") from None
    if bound == 0:   # older grpcio reports a failed bind this way
        raise ConfigError(f"cannot listen for gRPC on {address} (--grpc-port; -1 turns gRPC "
                          f"off)")
    return server, bound
