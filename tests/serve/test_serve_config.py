"""config.json and the repository without a server: every mistake names the file and the
field; the version policy picks the folders; the thread budget is never overdrawn and a
model that would overdraw it is unavailable with the reason, beside models that serve."""

from __future__ import annotations

import json

import pytest

from kiln.serve.budget import BudgetExceeded, ThreadBudget
from kiln.serve.batching import plan_runs
from kiln.serve.config import Batching, ModelConfig, VersionPolicy, load_config
from kiln.serve.errors import ConfigError, NotFound, Unavailable
from kiln.serve.repository import READY, UNAVAILABLE, Repository
from serve_helpers import add_model


def config_error(tmp_path, text: str) -> str:
    path = tmp_path / "m" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, "m")
    message = str(error.value)
    assert message.startswith(str(path) + ":"), message
    return message


@pytest.mark.parametrize("text, phrases", [
    ('{"instance": 2}', ["unknown field 'instance'", "did you mean 'instances'"]),
    ('{"max_queue_size": 0}', ["field 'max_queue_size'", "positive integer, got 0"]),
    ('{"instances": true}', ["field 'instances'", "got true"]),
    ('{"default_timeout_ms": -5}', ["field 'default_timeout_ms'", "positive number"]),
    ('{"allow_request_timeout": "yes"}', ["field 'allow_request_timeout'", "true or false"]),
    ('{"version_policy": {"newest": {}}}', ["field 'version_policy'", "unknown policy"]),
    ('{"version_policy": {"latest": {"num_version": 2}}}',
     ["unknown field 'version_policy.latest.num_version'", "num_versions"]),
    ('{"version_policy": {"specific": {"versions": [0]}}}',
     ["field 'version_policy.specific.versions'", "positive integers"]),
    ('{"compile": {"dims": {"batch": "one"}}}', ["field 'compile.dims'"]),
    ('{"compile": {"shape": {}}}', ["unknown field 'compile.shape'", "compile.shapes"]),
    ('{"name": "other"}', ["field 'name' is 'other'", "folder is 'm'"]),
    ('{"max_batch_size": -1}', ["field 'max_batch_size'", "rows >= 0", "got -1"]),
    ('{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay": 5}}',
     ["unknown field 'dynamic_batching.max_queue_delay'", "max_queue_delay_us"]),
    ('{"dynamic_batching": {}}', ["field 'dynamic_batching' needs 'max_batch_size'"]),
    ('{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": -1}}',
     ["field 'dynamic_batching.max_queue_delay_us'", "microseconds >= 0"]),
    ('{"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [4, 16]}}',
     ["field 'dynamic_batching.preferred_batch_size'", "1 to max_batch_size (8)"]),
    ('{"max_batch_size": 8, "dynamic_batching": []}',
     ["field 'dynamic_batching'", "got a list"]),
    ('[1, 2]', ["expected a JSON object", "got a list"]),
    ('{"instances": 1,,}', ["not valid JSON", "line 1 column 17"]),
])
def test_config_errors_name_the_file_and_the_field(tmp_path, text, phrases):
    message = config_error(tmp_path, text)
    for phrase in phrases:
        assert phrase in message, message


def test_config_fields_and_defaults(tmp_path):
    assert load_config(tmp_path / "missing.json", "m") == ModelConfig()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"version_policy": {"specific": {"versions": [3, 1]}},
                                "max_queue_size": 4, "default_timeout_ms": 250,
                                "instances": 2, "threads_per_instance": 3,
                                "compile": {"dims": {"batch": 1}, "shapes": {"x": [1, 4]}}}))
    config = load_config(path, "m")
    assert config.version_policy == VersionPolicy("specific", versions=(1, 3))
    assert (config.max_queue_size, config.default_timeout_ms, config.instances,
            config.threads_per_instance) == (4, 250.0, 2, 3)
    assert config.dims == {"batch": 1} and config.shapes == {"x": (1, 4)}


def test_batching_fields_and_the_sizes_compiled(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"max_batch_size": 8, "dynamic_batching": {
        "max_queue_delay_us": 500, "preferred_batch_size": [4, 2, 4]}}))
    batching = load_config(path, "m").batching
    assert batching == Batching(8, join=True, max_queue_delay_s=5e-4, preferred=(2, 4))
    assert batching.sizes == (1, 2, 4, 8)
    path.write_text(json.dumps({"max_batch_size": 4}))   # a batch dim, no joining
    assert load_config(path, "m").batching == Batching(4, join=False)
    path.write_text(json.dumps({"max_batch_size": 0}))
    assert load_config(path, "m").batching is None


def test_batches_run_on_the_smallest_size_that_holds_them_or_are_split():
    assert plan_runs(3, [1, 4, 8]) == [(4, 3)]
    assert plan_runs(8, [1, 4, 8]) == [(8, 8)]
    assert plan_runs(6, [1, 4]) == [(4, 4), (4, 2)]
    assert plan_runs(9, [1, 4]) == [(4, 4), (4, 4), (1, 1)]


def test_version_policies_select_folders():
    found = [1, 2, 5]
    assert VersionPolicy().select(found) == [5]
    assert VersionPolicy("latest", count=2).select(found) == [2, 5]
    assert VersionPolicy("all").select(found) == found
    assert VersionPolicy("specific", versions=(2, 9)).select(found) == [2]


@pytest.mark.parametrize("files, limit, cap", [
    ({"cpu.max": "150000 100000\n"}, 1.5, 2),                      # cgroup v2, 1.5 CPUs
    ({"cpu.max": "max 100000\n"}, None, None),                     # v2 without a limit
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5, 1),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None, None),
    ({}, None, None)])
def test_the_default_budget_keeps_to_the_containers_cpu_limit(tmp_path, files, limit, cap):
    """A CPU limit is a quota, not an affinity: a pod limited to 1.5 CPUs on a 64-core node
    gets a budget of 2 threads, not 64."""
    import os

    from kiln.serve.budget import cgroup_cpu_quota, default_budget

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(str(tmp_path)) == limit
    cores = len(os.sched_getaffinity(0))
    assert default_budget(str(tmp_path)) == (cores if cap is None else min(cores, cap))


def test_thread_budget_is_never_overdrawn():
    budget = ThreadBudget(3)
    budget.reserve(2, "a")
    with pytest.raises(BudgetExceeded, match="needs 2 runtime thread.*budget of 3 has 1 left"):
        budget.reserve(2, "b")
    budget.release(2)
    budget.reserve(3, "c")
    with pytest.raises(ConfigError, match="--threads"):
        ThreadBudget(0)


def test_a_model_over_the_budget_is_unavailable_and_the_others_serve(artifacts, tmp_path):
    add_model(tmp_path, "fits", artifacts["conv"], config={"threads_per_instance": 1})
    add_model(tmp_path, "greedy", artifacts["conv"],
              config={"instances": 2, "threads_per_instance": 2})
    add_model(tmp_path, "older", artifacts["conv"], versions=(1, 2, 3),
              config={"version_policy": {"latest": {"num_versions": 2}},
                      "threads_per_instance": 1})
    repository = Repository(tmp_path, ThreadBudget(3), log=lambda line: None)
    repository.plan_threads()
    repository.load_all()
    try:
        states = {(e["name"], e.get("version")): (e["state"], e["reason"])
                  for e in repository.index()}
        assert states[("fits", "1")] == (READY, "")
        assert states[("older", "2")][0] == READY and states[("older", "3")][0] == READY
        assert ("older", "1") not in states   # not selected by the policy
        state, reason = states[("greedy", "1")]
        assert state == UNAVAILABLE and "needs 4 runtime thread(s)" in reason
        assert repository.budget.used == 3
        assert repository.version("older", None).version == 3
        with pytest.raises(Unavailable, match="greedy"):
            repository.version("greedy", None)
        with pytest.raises(NotFound, match="no version '1'"):
            repository.version("older", "1")
        with pytest.raises(NotFound, match="unknown model 'none'.*fits, greedy, older"):
            repository.version("none", None)
    finally:
        repository.close()
    assert repository.budget.used == 0


def test_a_single_model_file_is_served_as_version_one(artifacts):
    repository = Repository(artifacts["conv"], ThreadBudget(1), log=lambda line: None)
    repository.plan_threads()
    repository.load_all()
    try:
        assert [(e["name"], e["version"], e["state"]) for e in repository.index()] == [
            ("model", "1", READY)]
    finally:
        repository.close()


def test_a_bad_source_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        Repository(tmp_path / "absent", ThreadBudget(1))
    text = tmp_path / "model.txt"
    text.write_text("")
    with pytest.raises(ConfigError, match="serve a model.so, a model.onnx or a repository"):
        Repository(text, ThreadBudget(1))


def test_a_single_onnx_file_is_compiled_into_the_cache_once(artifacts, tmp_path):
    cache = tmp_path / "cache"
    for _ in range(2):   # the second load finds the first one's artifact
        repository = Repository(artifacts["conv.onnx"], ThreadBudget(1), cache_dir=cache,
                                log=lambda line: None)
        repository.load_all()
        try:
            served = repository.version("conv", None)
            assert served.ready and served.artifact.parent.parent == cache
        finally:
            repository.close()
    assert len(list(cache.glob("*/model.so"))) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]   # no staging left


def test_strict_readiness_needs_every_model(artifacts, tmp_path):
    from kiln.serve.server import BackgroundServer, ServeOptions
    from serve_helpers import request

    add_model(tmp_path, "good", artifacts["conv"])
    add_model(tmp_path, "bad", artifacts["conv"], config={"instances": 0})
    for strict, expected in ((False, 200), (True, 400)):
        options = ServeOptions(http_port=0, threads=1, strict_readiness=strict)
        with BackgroundServer(tmp_path, options) as background:
            status, _, body = request(background.url, "GET", "/v2/health/ready")
            assert status == expected, body
            assert "bad/config.json: field 'instances'" in json.loads(body)["not_ready"]["bad"]
