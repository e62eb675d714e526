"""Whole test models compiled for arm64 and riscv64-rvv with both renderers (C through zig cc,
LLVM IR through llvmlite) match ONNX Runtime on the host when run under QEMU; the RVV artifact
is vector-length agnostic (one artifact, vlen 128/256/512); the hot kernels use NEON FMA and
RVV vsetvli + vector FMA.

In CI: SqueezeNet and BERT (seq 8) per target and renderer. Marked slow: the other CNNs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cross_helpers import (CROSS_TARGETS, EMITS, compile_cross, objdump, require_emulator,
                           run_emulated)
from reference import assert_model_output, run_onnxruntime
from kiln import zoo

BERT_SEQ = 8


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """built(model name, target, emit) -> artifact path, compiled once per module."""
    folder = tmp_path_factory.mktemp("cross-models")
    cache: dict = {}

    def build(name: str, target: str, emit: str):
        key = (name, target, emit)
        if key not in cache:
            dims = {"batch": 1, "seq": BERT_SEQ} if name.startswith("bert") else {"batch": 1}
            cache[key] = compile_cross(zoo.load(name), target, emit, folder, name,
                                       dims=dims)
        return cache[key]

    return build


def cnn_feed(seed: int = 7) -> dict:
    return {"input": np.random.default_rng(seed).standard_normal((1, 3, 224, 224))
            .astype(np.float32)}


def bert_feed() -> dict:
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 1000, (1, BERT_SEQ)).astype(np.int64)
    mask = np.ones((1, BERT_SEQ), np.int64)
    mask[0, -2:] = 0                                       # padded positions
    return {"input_ids": ids, "attention_mask": mask,
            "token_type_ids": np.zeros((1, BERT_SEQ), np.int64)}


def check_model(name: str, target: str, emit: str, built, feed: dict, **options) -> None:
    require_emulator(target)
    library = built(name, target, emit)
    actual = run_emulated(library, feed, **options)
    expected = run_onnxruntime(zoo.load(name), feed)
    assert len(actual) == len(expected)
    for (out_name, value), reference in zip(actual.items(), expected):
        assert_model_output(value, reference, what=f"{name}/{target}/{emit}:{out_name}")


@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_squeezenet_matches_onnxruntime(target, emit, built):
    check_model("squeezenet1_1", target, emit, built, cnn_feed())


@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_bert_matches_onnxruntime(target, emit, built):
    check_model("bert_small_random", target, emit, built, bert_feed())


@pytest.mark.parametrize("vlen", [128, 512])               # 256 is the default, above
def test_rvv_artifact_runs_at_any_vlen(vlen, built):
    check_model("squeezenet1_1", "riscv64-rvv", "c", built, cnn_feed(), vlen=vlen)


@pytest.mark.parametrize("vlen", [128, 512])
def test_rvv_llvm_artifact_runs_at_any_vlen(vlen, built):
    check_model("bert_small_random", "riscv64-rvv", "llvm", built, bert_feed(), vlen=vlen)


def kernels(disassembly: str) -> dict[str, str]:
    """{function name: its instructions} for the generated kernels (k_*); local labels
    (.L*, which RISC-V objdump prints inside functions) stay with their function."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in disassembly.splitlines():
        head = re.match(r"[0-9a-f]+ <([^>]+)>:", line)
        if head and not head.group(1).startswith(".L"):
            current = found.setdefault(head.group(1), []) if head.group(1).startswith("k_") \
                else None
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


VECTOR_FMA = {"arm64": [r"\bfmla\s+v\d+\.4s"],
              "riscv64-rvv": [r"\bvsetvli\b", r"\bvf(macc|madd)\.v[vf]\b"]}


@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_hot_kernels_use_vector_fma(target, emit, built):
    """The convolutions over the large early feature maps (111x111, 55x55) run their inner
    loops on vector FMA. (Those over 27x27 and 13x13 maps have inner loops so short that
    clang and LLVM unroll them fully as scalar FMA: a matter for the conv lowering.)"""
    code = kernels(objdump(target, built("squeezenet1_1", target, emit)))
    hot = {name: text for name, text in code.items()
           if re.match(r"k_features_features_[034]_.*Conv$", name)}
    assert len(hot) == 7, sorted(code)
    scalar = [name for name, text in hot.items()
              if not all(re.search(p, text) for p in VECTOR_FMA[target])]
    assert not scalar, f"hot kernels without vector FMA for {target}/{emit}: {scalar}"


@pytest.mark.slow
@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
@pytest.mark.parametrize("name", [m for m in zoo.CNN_MODELS if m != "squeezenet1_1"])
def test_other_cnns_match_onnxruntime(name, target, emit, built):
    check_model(name, target, emit, built, cnn_feed(3))


@pytest.mark.slow
@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_bert_dynamo_matches_onnxruntime(target, emit, built):
    check_model("bert_small_random_dynamo", target, emit, built, bert_feed())
