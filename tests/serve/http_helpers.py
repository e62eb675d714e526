"""Plain HTTP requests to a server under test (http.client: nothing between the test and
the bytes on the wire), and a reader of its Prometheus metrics."""

from __future__ import annotations

import http.client
import json


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30.0
            ) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; (status, lower-cased headers, body)."""
    host, port = url.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def post_json(url: str, path: str, obj) -> tuple[int, dict[str, str], dict]:
    status, headers, body = request(url, "POST", path, json.dumps(obj).encode(),
                                    {"Content-Type": "application/json"})
    return status, headers, json.loads(body)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample of the server's /metrics (0 if absent)."""
    status, _, body = request(url, "GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        if metric_name != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if all(found.get(k) == json.dumps(v) for k, v in labels.items()):
            return float(value)
    return 0.0
