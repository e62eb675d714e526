"""The peers of benchmarks/serve_load.py: ONNX Runtime behind a small FastAPI server, and
ONNX Runtime inside KServe's own `ModelServer`, each speaking the Open Inference Protocol's
REST inference endpoint (JSON tensors and the binary tensor data extension) as `kiln serve`
does, so that one load generator drives all three the same way.

    python -m kiln.benchmarks.serve_load_peers fastapi MODEL.onnx NAME PORT THREADS
    python -m kiln.benchmarks.serve_load_peers kserve MODEL.onnx NAME PORT THREADS

Both give ONNX Runtime THREADS intra-op threads and one inter-op thread (the thread budget
`kiln serve --threads` gets). The FastAPI peer runs the model on one worker thread (one
instance, as `kiln serve` does by default) so that its event loop stays free to parse;
KServe runs a synchronous predict() the way its ModelServer calls it. Neither bounds its
queue: a request waits as long as it takes.

(No `from __future__ import annotations` here: FastAPI reads the endpoint's parameter
types at run time, and the string "Request" would make it a query parameter.)
"""

import asyncio
import concurrent.futures
import json
import logging
import sys

import numpy as np

#: the protocol's datatype names of the dtypes the benchmark models use
DATATYPES = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "FP16": np.float16}
NAMES = {np.dtype(v): k for k, v in DATATYPES.items()}
HEADER = "inference-header-content-length"


def ort_session(path: str, threads: int):
    """An ONNX Runtime session of `path` with `threads` intra-op threads, sequential."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def decode(body: bytes, header_length: str | None) -> tuple[dict[str, np.ndarray], bool]:
    """The inputs of an inference request, and whether it asks for binary outputs."""
    length = int(header_length) if header_length is not None else len(body)
    request = json.loads(body[:length])
    binary, offset, feed = memoryview(body)[length:], 0, {}
    for tensor in request["inputs"]:
        dtype = np.dtype(DATATYPES[tensor["datatype"]])
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            array = np.frombuffer(binary[offset:offset + size], dtype)
            offset += size
        else:
            array = np.asarray(tensor["data"], dtype)
        feed[tensor["name"]] = array.reshape(tensor["shape"])
    return feed, bool((request.get("parameters") or {}).get("binary_data_output"))


def encode(name: str, outputs: dict[str, np.ndarray], binary: bool
           ) -> tuple[bytes, dict[str, str]]:
    """The inference response: JSON, or JSON then the outputs' bytes."""
    items, raw = [], []
    for output_name, array in outputs.items():
        item = {"name": output_name, "datatype": NAMES[array.dtype], "shape": list(array.shape)}
        if binary:
            data = np.ascontiguousarray(array).tobytes()
            item["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            item["data"] = array.reshape(-1).tolist()
        items.append(item)
    head = json.dumps({"model_name": name, "outputs": items}).encode()
    if not binary:
        return head, {"content-type": "application/json"}
    return head + b"".join(raw), {HEADER: str(len(head)),
                                  "content-type": "application/octet-stream"}


def fastapi_app(path: str, name: str, threads: int):
    """The FastAPI peer: /v2/health/ready and /v2/models/NAME/infer."""
    from fastapi import FastAPI, Request, Response

    session = ort_session(path, threads)
    output_names = [o.name for o in session.get_outputs()]
    worker = concurrent.futures.ThreadPoolExecutor(1)
    app = FastAPI()

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(output_names, session.run(output_names, feed)))

    @app.get("/v2/health/ready")
    async def ready() -> dict:
        return {"ready": True}

    @app.post(f"/v2/models/{name}/infer")
    async def infer(request: Request) -> Response:
        feed, binary = decode(await request.body(), request.headers.get(HEADER))
        outputs = await asyncio.get_running_loop().run_in_executor(worker, run, feed)
        body, headers = encode(name, outputs, binary)
        return Response(body, headers=headers)

    return app


def serve_fastapi(path: str, name: str, port: int, threads: int) -> None:
    import uvicorn

    uvicorn.run(fastapi_app(path, name, threads), host="127.0.0.1", port=port,
                log_level="warning", access_log=False)


def serve_kserve(path: str, name: str, port: int, threads: int) -> None:
    """KServe's ModelServer (REST only, one worker) around a kserve.Model running ONNX
    Runtime: KServe decodes the request (JSON or binary) and encodes the answer."""
    import kserve
    from kserve import InferOutput, InferRequest, InferResponse

    class OrtModel(kserve.Model):
        def load(self) -> bool:
            self.session = ort_session(path, threads)
            self.output_names = [o.name for o in self.session.get_outputs()]
            self.ready = True
            return True

        def predict(self, payload: InferRequest, headers=None, response_headers=None
                    ) -> InferResponse:
            feed = {item.name: item.as_numpy() for item in payload.inputs}
            binary = payload.use_binary_outputs
            outputs = []
            for output_name, array in zip(self.output_names,
                                          self.session.run(self.output_names, feed)):
                output = InferOutput(output_name, list(array.shape), NAMES[array.dtype])
                output.set_data_from_numpy(array, binary_data=binary)
                outputs.append(output)
            # the response's id must be a string; the benchmark's requests carry none
            return InferResponse(payload.id or "", self.name, outputs,
                                 use_binary_outputs=binary)

    model = OrtModel(name)
    model.load()
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1,
                                enable_latency_logging=False)
    # a line a request, as `kiln serve` without --access-log writes none
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start([model])


def main(argv: list[str] | None = None) -> int:
    kind, path, name, port, threads = (argv if argv is not None else sys.argv[1:])
    serve = {"fastapi": serve_fastapi, "kserve": serve_kserve}[kind]
    serve(path, name, int(port), int(threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
