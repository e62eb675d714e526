"""`kiln tune` and `compile --tuning`: records written by a real search on this machine,
read back by compile (outputs still equal ONNX Runtime's), resumed without measuring a
candidate twice, survived when a candidate crashes or hangs, ignored for another CPU, and
shared between two models with a common layer."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.cli import main as kiln_main
from kiln.codegen import kernel_ir as K
from kiln.codegen.kernels.registry import KERNELS
from kiln.codegen.lower.common import group_output
from kiln.codegen.kernels.tuning_records import RECORDS_VERSION, schedule_format
from kiln.codegen.schedules import ScheduleError, as_dict
from kiln.driver import compile_detailed, plan_kernels
from kiln.runtime import load
from kiln.runtime.manifest import read_manifest
from kiln.targets.host_cpu import host_cpu
from kiln.tune import TuneError, tune
from kiln.tune.space import Candidate
from kiln.tune.tuner import Tuner

ort = pytest.importorskip("onnxruntime")


def _cnn(extra_layer: bool = False) -> onnx.ModelProto:
    """conv 3x3 -> relu -> conv 1x1 -> relu -> global pool -> gemm; `extra_layer` puts one
    more 1x1 conv before the pool (the first layers stay as they are)."""
    rng = np.random.default_rng(7)

    def weight(name, *shape):
        fan_in = int(np.prod(shape[1:])) or 1
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in))
                                       .astype(np.float32), name)

    inits = [weight("w1", 32, 16, 3, 3), weight("b1", 32), weight("w2", 32, 32, 1, 1),
             weight("b2", 32), weight("wf", 10, 32), weight("bf", 10)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv3x3", pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv1x1"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2")]
    last = "r2"
    if extra_layer:
        inits += [weight("w3", 32, 32, 1, 1), weight("b3", 32)]
        nodes += [helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv_extra"),
                  helper.make_node("Relu", ["c3"], ["r3"], name="relu3")]
        last = "r3"
    nodes += [helper.make_node("GlobalAveragePool", [last], ["p"], name="pool"),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny_cnn" + ("_extra" if extra_layer else ""),
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 16, 24, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_against_ort(model: onnx.ModelProto, library) -> None:
    x = np.random.default_rng(1).standard_normal((1, 16, 24, 24)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with load(library, threads=1) as session:
        got = session.run({"x": x})["y"]
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def _schedules(library) -> dict[str, tuple[str, dict]]:
    level = read_manifest(str(library))["levels"][-1]
    return {s["group"]: (s["kernel"], s["schedule"]) for s in level["schedules"]}


def test_a_tune_writes_records_that_resume_and_that_compile_applies(tmp_path):
    model, records = _cnn(), tmp_path / "tiny.jsonl"
    first = tune(model, records, threads=1, budget=120, trials=1)
    measured = _lines(records)
    assert first.measured + first.failed == len(measured) >= 3
    for record in measured:
        assert record["kiln_tuning"] == RECORDS_VERSION and record["machine"] == host_cpu()
        assert record["threads"] == 1 and record["status"] == "ok", record
        assert record["seconds"] > 0 and record["default_seconds"] > 0

    second = tune(model, records, threads=1, budget=120, trials=2)
    assert second.resumed == len(measured)
    everything = _lines(records)
    assert len(everything) > len(measured)
    measurements: dict[tuple, list[float]] = {}
    for r in everything:
        candidate = (json.dumps(r["signature"], sort_keys=True), r["kernel"],
                     json.dumps(r["schedule"], sort_keys=True))
        measurements.setdefault(candidate, []).append(r["default_seconds"] / r["seconds"])
    for candidate, gains in measurements.items():   # again only while it keeps winning
        assert all(gain > 1 for gain in gains[:-1]), (candidate, gains)
    per_task: dict[str, int] = {}
    for signature, _, _ in measurements:
        per_task[signature] = per_task.get(signature, 0) + 1
    assert max(per_task.values()) <= 2

    library = tmp_path / "tuned.so"
    result = compile_detailed(model, "x86_64", library, threads_max=1, tuning=records)
    assert result.notes == ()
    _check_against_ort(model, library)
    chosen = _schedules(library)
    best: dict[str, tuple[float, dict]] = {}
    for record in everything:
        candidate = (json.dumps(record["signature"], sort_keys=True), record["kernel"],
                     json.dumps(record["schedule"], sort_keys=True))
        gain = min(measurements[candidate])
        if gain > 1 and gain > best.get(candidate[0], (1.0, None))[0]:
            best[candidate[0]] = (gain, record)
    for gain, record in best.values():
        for group in record["groups"]:
            assert chosen[group] == (record["kernel"], record["schedule"])


def _faulty(lower, crash_mr: int, hang_mr: int, wrong_mr: int):
    """A lowering that writes far out of bounds (a real SIGSEGV) for schedule.mr ==
    crash_mr, loops for ever for hang_mr and overwrites an output element for wrong_mr: the
    candidates a broken kernel would give."""
    def lowered(ctx, group, schedule):
        body = lower(ctx, group, schedule)
        buffer = ctx.buf(group_output(ctx, group))
        if schedule.mr == wrong_mr:
            return [*body, K.Store(buffer, K.const(0), K.const(1000, buffer.dtype))]
        if schedule.mr == crash_mr:
            return [K.Store(buffer, K.const(-(1 << 40)), K.const(0, buffer.dtype)), *body]
        if schedule.mr == hang_mr:
            i = K.Var("spin_i")
            bump = K.binary("+", K.Load(buffer, K.const(0)), K.const(1, buffer.dtype))
            return [K.For(i, K.const(0), K.const(1 << 60),
                          [K.Store(buffer, K.const(0), bump)]), *body]
        return body
    return lowered


def test_a_candidate_that_crashes_hangs_or_is_wrong_is_recorded_and_the_tune_goes_on(tmp_path,
                                                                           monkeypatch):
    gemm = KERNELS["conv_nhwc_gemm"]
    monkeypatch.setitem(KERNELS, "conv_nhwc_gemm",
                        dataclasses.replace(gemm, lower=_faulty(gemm.lower, 1, 2, 3)))
    records = tmp_path / "faults.jsonl"
    tuner = Tuner(_cnn(), records, threads=1, budget=60.0)
    tasks = tuner.prepare(tmp_path)
    by_kernel = {t.space.kernels[0]: t for t in tasks}
    conv = by_kernel["conv_nhwc_gemm"]
    other = next(t for t in tasks if t is not conv)
    default = conv.space.defaults["conv_nhwc_gemm"].schedule
    assert default["mr"] not in (1, 2, 3)

    def with_mr(mr):
        return Candidate("conv_nhwc_gemm", tuple(dict(default, mr=mr).items()))

    healthy = next(c for c in other.space.neighbours(other.space.defaults[other.space.kernels[0]])
                   if other.space.fits(c))
    tuner.evaluate([(conv, with_mr(1)), (other, healthy)])   # one round: found by halving
    tuner.evaluate([(conv, with_mr(3))])
    tuner.measurer.limit = 8.0
    tuner.evaluate([(conv, with_mr(2))])
    lines = _lines(records)
    status = {(r["kernel"], json.dumps(r["schedule"], sort_keys=True)): r for r in lines}
    crashed = status[("conv_nhwc_gemm", json.dumps(dict(default, mr=1), sort_keys=True))]
    hung = status[("conv_nhwc_gemm", json.dumps(dict(default, mr=2), sort_keys=True))]
    assert crashed["status"] == "crashed" and "SIGSEGV" in crashed["reason"]
    assert hung["status"] == "hung" and crashed["seconds"] is None
    wrong = status[("conv_nhwc_gemm", json.dumps(dict(default, mr=3), sort_keys=True))]
    assert wrong["status"] == "wrong" and "differs from the default" in wrong["reason"]
    fine = status[(healthy.kernel, json.dumps(healthy.schedule, sort_keys=True))]
    assert fine["status"] == "ok" and fine["seconds"] > 0
    assert with_mr(1) in conv.failed and healthy in other.measured


def _record(signature, kernel, schedule, machine=None, threads=1, **changes):
    record = {"kiln_tuning": RECORDS_VERSION, "kiln": "test", "target": "x86_64",
              "cpu": "native", "vector_bits": 512, "machine": machine or host_cpu(),
              "threads": threads, "kernel": kernel,
              "schedule_format": schedule_format(KERNELS[kernel]), "signature": signature,
              "schedule": schedule, "status": "ok", "seconds": 1e-4, "default_seconds": 2e-4,
              "noise": 0.01, "groups": ["conv1x1"], "model": "tiny_cnn", "reason": ""}
    record.update(changes)
    return json.dumps(record) + "\n"


def test_records_serve_another_model_and_are_ignored_for_another_cpu(tmp_path):
    graph, selector = plan_kernels(_cnn(), "x86_64", threads_max=1)
    if selector.vector_bits != 512:
        pytest.skip("the record below is written for a 512-bit host; this one has "
                    f"{selector.vector_bits}-bit vectors")
    group = next(g for g in graph.groups if g.anchor.name == "conv1x1")
    decision = group.kernel
    kernel = KERNELS[decision.kernel]
    schedule = dict(as_dict(decision.schedule))
    schedule["mr"] = 4 if schedule["mr"] != 4 else 5
    assert kernel.fits(group, selector.target, kernel.schedule(**schedule)) is None
    records = tmp_path / "a.jsonl"
    records.write_text(_record(decision.signature, decision.kernel, schedule))

    for model in (_cnn(), _cnn(extra_layer=True)):    # the second model shares conv1x1
        library = tmp_path / f"{model.graph.name}.so"
        result = compile_detailed(model, "x86_64", library, threads_max=1, tuning=records)
        assert result.notes == ()
        assert _schedules(library)[group.name] == (decision.kernel, schedule)
        _check_against_ort(model, library)

    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(_record(decision.signature, decision.kernel, schedule,
                                 machine="GenuineIntel Other CPU (6/85/4) avx2 #00000000")
                         + _record(decision.signature, decision.kernel, schedule, threads=4)
                         + _record(decision.signature, decision.kernel, schedule,
                                   schedule_format="00000000"))
    library = tmp_path / "untuned.so"
    result = compile_detailed(_cnn(), "x86_64", library, threads_max=1, tuning=elsewhere)
    notes = " | ".join(result.notes)
    assert "measured on another CPU" in notes and "measured at 4 threads" in notes
    assert "older schedule format" in notes
    assert _schedules(library)[group.name] == (decision.kernel, as_dict(decision.schedule))


def test_a_tune_measures_over_ssh(tmp_path, monkeypatch):
    """--ssh HOST: the artifacts, feed and job go over scp and the worker runs through ssh.
    No SSH server runs in CI: `ssh` and `scp` here are stand-ins that run the command and
    copy the files on this machine, with HOST's folder under tmp_path/remote."""
    bin_dir, remote = tmp_path / "bin", tmp_path / "remote"
    bin_dir.mkdir()
    remote.mkdir()
    (bin_dir / "ssh").write_text(f"""#!/bin/sh
while [ "$1" = "-o" ]; do shift 2; done
shift
cd {remote} && exec sh -c "$*"
""")
    (bin_dir / "scp").write_text(f"""#!/bin/sh
while [ "${{1#-}}" != "$1" ]; do [ "$1" = "-o" ] && shift; shift; done
set -- $(for a in "$@"; do case "$a" in *:*) echo "{remote}/${{a#*:}}";; *) echo "$a";; esac; done)
exec cp "$@"
""")
    for tool in ("ssh", "scp"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    records = tmp_path / "remote.jsonl"
    result = tune(_cnn(), records, threads=1, budget=60, trials=1, ssh="tuner@board",
                  remote_python=sys.executable)
    lines = _lines(records)
    assert result.measured == len(lines) >= 3
    assert all(r["status"] == "ok" and r["machine"] == host_cpu() for r in lines)
    assert any((remote / ".cache" / "kiln-tune").glob("*/default.so"))


def test_bad_tuning_input_is_refused_with_the_reason(tmp_path, capsys):
    with pytest.raises(TuneError, match="emulator"):
        tune(_cnn(), tmp_path / "r.jsonl", target="arm64", budget=10)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kiln_tuning": 1}\nnot json\n')
    with pytest.raises(ScheduleError, match="line 1 of .*missing"):
        compile_detailed(_cnn(), "x86_64", tmp_path / "m.so", tuning=broken)
    model = tmp_path / "m.onnx"
    onnx.save(_cnn(), model)
    assert kiln_main(["tune", str(model), "-o", str(tmp_path / "r.jsonl"),
                      "--budget", "ten minutes"]) == 2
    assert "--budget ten minutes" in capsys.readouterr().err
