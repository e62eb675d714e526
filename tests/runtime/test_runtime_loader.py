"""kiln.runtime.load on the fake model: results, threads, metadata and feed validation."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import kiln
from kiln.compiler.errors import InputError, KilnError, RuntimeFailure
from kiln.runtime import load


def feed(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((2, 3)).astype(np.float32),
            "k": rng.integers(-50, 50, size=4).astype(np.int64)}


def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    flat_k = np.resize(f["k"], 6).reshape(2, 3).astype(np.float32)
    return {"y": f["x"] * 2 + flat_k, "total": np.array(f["k"].sum())}


def check(outputs, f):
    ref = reference(f)
    assert list(outputs) == ["y", "total"]          # the model's output order
    np.testing.assert_allclose(outputs["y"], ref["y"], rtol=1e-6)
    assert outputs["y"].dtype == np.float32 and outputs["y"].shape == (2, 3)
    assert outputs["total"].dtype == np.int64 and outputs["total"].shape == ()
    assert outputs["total"] == ref["total"]


def test_run_matches_numpy(fake_so):
    with load(fake_so, threads=1) as s:
        f = feed()
        check(s.run(f), f)


def test_metadata(fake_so):
    with load(fake_so) as s:
        assert s.name == "fake" and s.prefix == "kiln_"
        assert [(t.name, t.dtype, t.shape, t.nbytes) for t in s.inputs] == [
            ("x", np.dtype(np.float32), (2, 3), 24), ("k", np.dtype(np.int64), (4,), 32)]
        assert [(t.name, t.dtype, t.shape) for t in s.outputs] == [
            ("y", np.dtype(np.float32), (2, 3)), ("total", np.dtype(np.int64), ())]
        assert s.workspace_size == 128
        assert "x: float32 (2, 3)" in repr(s)


@pytest.mark.parametrize("threads", [None, 1, 2, 3, 4, 8])
def test_threads_give_the_same_results(fake_so, threads):
    with load(fake_so, threads=threads) as s:
        for seed in range(20):
            f = feed(seed)
            check(s.run(f), f)


def test_non_contiguous_input_is_copied(fake_so):
    f = feed()
    wide = np.zeros((2, 6), np.float32)
    wide[:, ::2] = f["x"]
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    with load(fake_so) as s:
        check(s.run({"x": strided, "k": f["k"]}), f)


def test_wrong_dtype_is_not_cast(fake_so):
    f = feed()
    f["x"] = f["x"].astype(np.float64)
    with load(fake_so) as s, pytest.raises(InputError) as err:
        s.run(f)
    msg = str(err.value)
    assert "'x'" in msg and "expected dtype float32, got float64" in msg


def test_wrong_shape(fake_so):
    f = feed()
    f["x"] = f["x"].reshape(3, 2)
    with load(fake_so) as s, pytest.raises(InputError, match=r"'x': expected shape \(2, 3\), "
                                                               r"got \(3, 2\)"):
        s.run(f)


def test_missing_input(fake_so):
    f = feed()
    del f["k"]
    with load(fake_so) as s, pytest.raises(InputError) as err:
        s.run(f)
    assert "missing input(s): 'k'" in str(err.value)
    assert "'k': int64 (4,)" in str(err.value)   # says what is expected


def test_unknown_input(fake_so):
    f = feed()
    f["z"] = np.zeros(1)
    with load(fake_so) as s, pytest.raises(InputError, match="unknown input name.*'z'"):
        s.run(f)


def test_every_problem_in_one_error(fake_so):
    with load(fake_so) as s, pytest.raises(InputError) as err:
        s.run({"x": np.zeros((2, 3), np.int32), "extra": np.zeros(1)})
    msg = str(err.value)
    assert "missing" in msg and "'extra'" in msg and "expected dtype float32, got int32" in msg


def test_feed_must_be_a_mapping(fake_so):
    with load(fake_so) as s, pytest.raises(InputError, match="dict"):
        s.run([np.zeros((2, 3), np.float32)])


def test_input_errors_are_kiln_errors():
    assert issubclass(InputError, KilnError) and issubclass(InputError, ValueError)
    assert kiln.KilnError is KilnError


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(fake_so, threads):
    with pytest.raises(InputError, match="threads"):
        load(fake_so, threads=threads)


def test_too_many_threads_is_a_runtime_failure(fake_so):
    with pytest.raises(RuntimeFailure, match="num_threads is 100000"):
        load(fake_so, threads=100000)


def test_run_after_close(fake_so):
    s = load(fake_so)
    s.close()
    s.close()   # idempotent
    with pytest.raises(RuntimeFailure, match="closed"):
        s.run(feed())


def test_many_sessions_are_destroyed_on_gc(fake_so):
    # each session with 4 threads starts 3 workers; leaking them would exhaust resources
    for _ in range(200):
        s = load(fake_so, threads=4)
        s.run(feed())
        del s
    gc.collect()


def test_explicit_prefix(fake_so):
    with load(fake_so, prefix="kiln_") as s:
        check(s.run(feed()), feed())
    with pytest.raises(KilnError, match="lacks the function other_abi_version"):
        load(fake_so, prefix="other_")
    with pytest.raises(KilnError, match="not a valid C identifier"):
        load(fake_so, prefix="1bad")


def test_sessions_shared_between_python_threads(fake_so):
    from concurrent.futures import ThreadPoolExecutor

    with load(fake_so, threads=2) as s:
        def work(seed):
            f = feed(seed)
            check(s.run(f), f)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(64)))


def test_relative_path(fake_so, monkeypatch):
    monkeypatch.chdir(fake_so.parent)
    with load(fake_so.name) as s:       # "fake.so", not a search of the library path
        check(s.run(feed()), feed())


def test_an_artifact_rebuilt_at_the_same_path_loads_anew(tmp_path):
    """dlopen answers a path it has loaded with the old library; the loader must not."""
    from onnx import TensorProto, helper

    from reference import run_onnxruntime

    def model(op: str):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], op, [x], [y])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    f = {"x": np.array([-1.5, 2.0, -3.0, 4.0], np.float32)}
    path = str(tmp_path / "model.so")
    kiln.compile(model("Relu"), output=path)
    with load(path) as first:
        for op in ("Neg", "Abs"):
            kiln.compile(model(op), output=path)
            with load(path) as rebuilt:
                np.testing.assert_array_equal(rebuilt.run(f)["y"],
                                              run_onnxruntime(model(op), f)[0])
        np.testing.assert_array_equal(first.run(f)["y"], run_onnxruntime(model("Relu"), f)[0])
