"""Version changes without downtime against a running `kiln serve`: under a steady load of
requests that name no version, a second version appears (found by polling the repository),
takes over, and the first is removed and drains, with not one failed request; a broken new
version loaded through the repository API leaves the old one serving and says why; and
the server's counters equal what the clients saw."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time

import numpy as np
import pytest

from kiln.serve.budget import ThreadBudget
from kiln.serve.repository import UNLOADING, Repository
from serve_helpers import Connection, add_model, binary_answer, binary_body, metric, \
    post_json, request

CLIENTS = 4
REQUESTS = 2000
#: seconds between the server's looks at the repository
POLL = 0.1


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def index(url: str, model: str) -> dict[str, tuple[str, str]]:
    status, _, entries = post_json(url, "/v2/repository/index", {})
    assert status == 200
    return {e["version"]: (e["state"], e["reason"]) for e in entries
            if e["name"] == model and "version" in e}


class Load:
    """CLIENTS threads sending conv requests (no version named) until stop(); each records
    the status and model_version of every answer, in order."""

    def __init__(self, url: str, model: str):
        self.url, self.model = url, model
        self.seen: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _run(self, i: int) -> None:
        body, headers = binary_body("x", np.ones((1, 3, 16, 16), np.float32))
        connection = Connection(self.url)
        try:
            while not self._stop.is_set():
                status, answer_headers, answer = connection.post(
                    f"/v2/models/{self.model}/infer", body, headers)
                version = binary_answer(answer_headers, answer)[0]["model_version"] \
                    if status == 200 else answer.decode()
                self.seen[i].append((status, version))
        finally:
            connection.close()

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.seen)

    def versions(self) -> set[str]:
        return {v for s in self.seen for status, v in list(s) if status == 200}

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def test_a_new_version_takes_over_under_load_without_a_failed_request(artifacts, tmp_path):
    """Version 2 appears, then version 1 is removed, then config.json changes (version 2 is
    loaded again): all under load, not one request fails."""
    from kiln.serve.server import BackgroundServer, ServeOptions

    folder = add_model(tmp_path, "vconv", artifacts["conv"],
                       config={"version_policy": {"all": {}}, "threads_per_instance": 1})
    options = ServeOptions(http_port=0, threads=2, poll_repository=POLL)
    with BackgroundServer(tmp_path, options) as background:
        url = background.url
        load = Load(url, "vconv")
        try:
            wait_until(lambda: load.count >= 200, "the first requests")
            staging = folder / ".incoming"   # hidden: the poll skips it until renamed
            staging.mkdir()
            shutil.copy(artifacts["conv"], staging / "model.so")
            staging.rename(folder / "2")
            wait_until(lambda: "2" in load.versions(), "answers from version 2")
            shutil.rmtree(folder / "1")
            wait_until(lambda: "1" not in index(url, "vconv"), "version 1 to drain")
            # a changed config: version 2 is loaded again beside itself and swapped
            (folder / "config.json").write_text(json.dumps(
                {"version_policy": {"all": {}}, "threads_per_instance": 1,
                 "max_queue_size": 32}))
            repository = background.server.repository
            wait_until(lambda: repository.version("vconv", None).config.max_queue_size == 32,
                       "version 2 loaded again")
            wait_until(lambda: load.count >= REQUESTS, f"{REQUESTS} requests", 120)
        finally:
            load.stop()
        failures = [(status, v) for s in load.seen for status, v in s if status != 200]
        assert not failures, failures[:5]
        for answers in load.seen:   # each client moved from 1 to 2 once, never back
            versions = [v for _, v in answers]
            assert versions == sorted(versions) and versions[-1] == "2", versions[-5:]
        assert load.versions() == {"1", "2"}
        assert index(url, "vconv") == {"2": ("READY", "")}
        served = {v: metric(url, "kiln_inference_requests_total", model="vconv", version=v,
                            outcome="success") for v in ("1", "2")}
        assert served == {v: sum(1 for s in load.seen for _, seen in s if seen == v)
                          for v in ("1", "2")}
        assert metric(url, "kiln_runtime_threads") == 1   # version 1's thread given back


def test_a_broken_new_version_leaves_the_old_one_serving_with_the_reason(artifacts, tmp_path):
    from kiln.serve.server import BackgroundServer, ServeOptions

    folder = add_model(tmp_path, "fconv", artifacts["conv"],
                       config={"threads_per_instance": 1})   # latest 1: version 2 replaces 1
    options = ServeOptions(http_port=0, threads=1)
    with BackgroundServer(tmp_path, options) as background:
        url = background.url
        (folder / "2").mkdir()
        (folder / "2" / "model.so").write_bytes(b"not a shared library")
        status, _, answer = post_json(url, "/v2/repository/models/fconv/load", {})
        assert status == 400 and "version 2" in answer["error"], answer
        assert "still serves" in answer["error"]
        states = index(url, "fconv")
        assert states["1"][0] == "READY"
        assert states["2"][0] == "UNAVAILABLE" and "model.so" in states["2"][1], states
        status, _, body = request(url, "GET", "/v2/models/fconv/ready")
        assert status == 200 and "version 2" in json.loads(body)["reason"]
        status, _, body = request(url, "GET", "/v2/models/fconv/versions/2/ready")
        assert status == 400 and "model.so" in json.loads(body)["error"]
        x = np.ones((1, 3, 16, 16), np.float32)
        status, headers, body = request(url, "POST", "/v2/models/fconv/infer",
                                        *binary_body("x", x))
        assert status == 200 and binary_answer(headers, body)[0]["model_version"] == "1"
        shutil.copy(artifacts["conv"], folder / "2" / "model.so")   # fixed: now it loads
        status, _, answer = post_json(url, "/v2/repository/models/fconv/load", {})
        assert status == 200, answer
        status, headers, body = request(url, "POST", "/v2/models/fconv/infer",
                                        *binary_body("x", x))
        assert status == 200 and binary_answer(headers, body)[0]["model_version"] == "2"
        wait_until(lambda: index(url, "fconv") == {"2": ("READY", "")}, "version 1 to drain")
        assert metric(url, "kiln_runtime_threads") == 1


@pytest.mark.parametrize("change", ["config", "unchanged"])
def test_loading_again_keeps_serving(artifacts, tmp_path, change):
    """The load API on a model that serves: a changed config loads a new copy beside the
    old (the old drains); an unchanged model keeps its sessions as they are."""
    from kiln.serve.server import BackgroundServer, ServeOptions

    folder = add_model(tmp_path, "rconv", artifacts["conv"],
                       config={"threads_per_instance": 1, "max_queue_size": 8})
    with BackgroundServer(tmp_path, ServeOptions(http_port=0, threads=1)) as background:
        repository = background.server.repository
        first = repository.version("rconv", None)
        if change == "config":
            (folder / "config.json").write_text(json.dumps(
                {"threads_per_instance": 1, "max_queue_size": 16}))
        status, _, answer = post_json(background.url, "/v2/repository/models/rconv/load", {})
        assert status == 200, answer
        now = repository.version("rconv", None)
        assert (now is first) == (change == "unchanged")
        assert now.config.max_queue_size == (16 if change == "config" else 8)
        wait_until(lambda: repository.budget.used == 1, "the old copy's thread back")


def test_a_request_holding_a_replaced_version_is_still_answered(artifacts, tmp_path):
    """A request that found version 1 just before version 2 replaced it (it holds version
    1, not yet queued) is still computed by version 1, which is freed only after it."""
    folder = add_model(tmp_path, "hconv", artifacts["conv"], config={"threads_per_instance": 1})
    repository = Repository(tmp_path, ThreadBudget(1), log=lambda line: None)
    repository.load_all()
    try:
        held = repository.acquire("hconv", None)
        shutil.copytree(folder / "1", folder / "2")
        repository.load("hconv")
        assert repository.version("hconv", None).version == 2
        assert held.version == 1 and held.state == UNLOADING
        outputs, _ = asyncio.run(held.scheduler.infer(
            {"x": np.ones((1, 3, 16, 16), np.float32)}, None))
        assert outputs["y"].shape == (1, 8, 16, 16)
        held.release()
        wait_until(lambda: 1 not in repository.model("hconv").versions, "version 1 to drain")
        assert repository.budget.used == 1
    finally:
        repository.close()
