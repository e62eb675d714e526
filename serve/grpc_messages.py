"""The protobuf messages of the gRPC API (inference.proto), as Python classes built at import
time from inference.binpb, the compiled form of inference.proto committed beside it.

The classes live in a descriptor pool of their own, not protobuf's default one: a process
that also imports a client's copy of the same messages (tritonclient.grpc registers
inference.ModelInferRequest and the others in the default pool) would otherwise fail with a
duplicate symbol. And there is no generated Python code, whose version checks tie it to one
range of protobuf releases: the descriptor set's format is stable across all of them.
"""

from __future__ import annotations

from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

PROTO_FILE = "inference.proto"
DESCRIPTOR_SET = "inference.binpb"
SERVICE = "inference.GRPCInferenceService"


def _load_pool() -> descriptor_pool.DescriptorPool:
    data = resources.files(__package__).joinpath(DESCRIPTOR_SET).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


POOL = _load_pool()


def message_class(name: str) -> type[Message]:
    """The class of message `name` of package inference (e.g. "ModelInferRequest")."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"inference.{name}"))


#: method name -> (request class, response class), for every call of the service
METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    method.name: (message_factory.GetMessageClass(method.input_type),
                  message_factory.GetMessageClass(method.output_type))
    for method in POOL.FindServiceByName(SERVICE).methods
}

ModelInferRequest = message_class("ModelInferRequest")
ModelInferResponse = message_class("ModelInferResponse")
InferTensorContents = message_class("InferTensorContents")
