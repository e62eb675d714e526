"""A Kiln model as a Ray Serve deployment: Ray runs the replicas (and scales them with its
autoscaler), each replica one `kiln.runtime.load` session of a compiled artifact, reached
through a Ray DeploymentHandle (`infer`, numpy in and out) or through Ray's HTTP proxy
with the Open Inference Protocol's infer request (`POST /v2/models/NAME/infer`: JSON or
binary tensors, decoded and checked by kiln.serve.protocol, as `kiln serve` does).

    pip install 'ray[serve]'    # not a Kiln extra: 80 MB, some 30 packages
    python deploy/ray/kiln_ray.py model.so [--name model] [--max-replicas 4] [--port 8000]

Each replica takes `threads` runtime threads and asks Ray for as many CPUs, so that Ray
never packs more threads onto a node than it has cores. Scaling down (or a new version of
the app) stops a replica gracefully: Ray routes no new requests to it and lets the ones it
has finish.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
from ray import serve

#: Ray's autoscaler: replicas between these, aiming at this many requests per replica
AUTOSCALING = {"min_replicas": 2, "max_replicas": 4, "target_ongoing_requests": 2,
               "upscale_delay_s": 5, "downscale_delay_s": 30}


@serve.deployment(autoscaling_config=AUTOSCALING, graceful_shutdown_timeout_s=20,
                  max_ongoing_requests=8)
class KilnModel:
    """One replica: the artifact at `artifact`, loaded with `threads` runtime threads, served
    as model `name`."""

    def __init__(self, artifact: str, name: str = "model", threads: int = 1):
        from kiln.runtime import load

        self.name = name
        self.session = load(artifact, threads=threads)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs for `feed` (input name -> array)."""
        return self.session.run(feed)

    def replica(self) -> dict[str, Any]:
        """Which process answers (to see the load spread over the replicas)."""
        return {"pid": os.getpid(), "model": self.name}

    async def __call__(self, request) -> Any:
        """`POST /v2/models/NAME/infer` as the Open Inference Protocol has it."""
        from starlette.responses import Response

        from kiln.serve.errors import RequestError
        from kiln.serve.protocol import HEADER_LENGTH, encode_infer_response, \
            parse_infer_request

        path = request.url.path.rstrip("/")
        if request.method != "POST" or path != f"/v2/models/{self.name}/infer":
            return _error(404, f"no endpoint {request.method} {path}; this deployment "
                               f"answers POST /v2/models/{self.name}/infer")
        try:
            decoded = parse_infer_request(await request.body(),
                                          request.headers.get(HEADER_LENGTH),
                                          self.session.inputs, self.session.outputs)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        outputs = self.session.run(decoded.inputs)
        pieces, headers = encode_infer_response(self.name, "1", decoded.id, outputs,
                                                decoded.outputs, decoded.binary_output)
        return Response(b"".join(pieces), headers=headers)


def _error(status: int, message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def application(artifact: str, name: str = "model", threads: int = 1,
                min_replicas: int = 2, max_replicas: int = 4,
                autoscaling: dict[str, Any] | None = None) -> serve.Application:
    """The Ray Serve application of `artifact`, with `min_replicas` to `max_replicas`
    replicas of `threads` runtime threads (and Ray CPUs) each; `autoscaling` overrides
    fields of AUTOSCALING (Ray's AutoscalingConfig: initial_replicas, downscale_delay_s,
    ...)."""
    scaling = {**AUTOSCALING, "min_replicas": min_replicas, "max_replicas": max_replicas,
               **(autoscaling or {})}
    return KilnModel.options(autoscaling_config=scaling,
                             ray_actor_options={"num_cpus": threads}).bind(
        os.path.abspath(artifact), name, threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="a compiled model.so")
    parser.add_argument("--name", default="model", help="the model's name in the URL")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads a replica")
    parser.add_argument("--min-replicas", type=int, default=2)
    parser.add_argument("--max-replicas", type=int, default=4)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(application(args.artifact, args.name, args.threads, args.min_replicas,
                          args.max_replicas), name=args.name, route_prefix="/")
    print(f"serving {args.artifact} as http://{args.host}:{args.port}/v2/models/{args.name}"
          f"/infer (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
