"""The nine old-opset model-zoo networks of the onnx 1.22.0 wheel (backend/test/data/light)
compiled for the host and run on ONNX's own feed: each output matches both the output the
wheel stores and ONNX Runtime's output on the same feed. Without the wheel's data they
skip, or fail in CI (KILN_CI=1)."""

from __future__ import annotations

import onnx
import pytest

from kiln.conformance.cases import discover_light, load_data_set
from kiln.conformance.data import ConformanceDataError, ensure_test_data
from downloads import missing_download
from reference import assert_close_to_scale, assert_matches, run_onnxruntime

LIGHT_MODELS = ["light_bvlc_alexnet", "light_densenet121", "light_inception_v1",
                "light_inception_v2", "light_resnet50", "light_shufflenet",
                "light_squeezenet", "light_vgg19", "light_zfnet512"]


@pytest.fixture(scope="module")
def light_tests():
    try:
        root = ensure_test_data() / "light"
    except ConformanceDataError as exc:
        missing_download(f"the onnx 1.22.0 test data cannot be fetched here: {exc}")
    return {test.name: test for test in discover_light(root)}


def test_the_wheel_holds_all_nine_networks(light_tests):
    assert sorted(light_tests) == LIGHT_MODELS


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_network_matches_stored_outputs_and_onnxruntime(light_tests, name,
                                                              compile_and_load):
    test = light_tests[name]
    model = onnx.load(str(test.model_path))
    feed, stored = load_data_set(test, model)
    session = compile_and_load(model, name=name)
    actual = session.run(feed)
    actual = list(actual.values())
    peer = run_onnxruntime(model, feed)
    assert len(actual) == len(stored) == len(peer)
    for index, (ours, want, theirs) in enumerate(zip(actual, stored, peer)):
        what = f"{name} output {index}"
        assert_matches(ours, want, rtol=1e-3, atol=1e-7, what=f"{what} vs stored")
        assert_matches(ours, theirs, what=f"{what} vs ONNX Runtime")
        assert_close_to_scale(ours, theirs, what=f"{what} vs ONNX Runtime")
