"""The ONNX backend test data (node tests and the light model zoo) of the onnx 1.22.0 wheel.

onnx 1.23 and newer no longer ship the test data, so it is fetched once with
`pip download --no-deps onnx==1.22.0`, unzipped into a cache folder, and found there again
without the network:

    root = ensure_test_data()           # ~/.cache/kiln/onnx-1.22.0, or a folder given
    for case in sorted((root / "node").iterdir()): ...
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..compiler.errors import KilnError

ONNX_VERSION = "1.22.0"
#: The folders of the wheel that are unpacked, under onnx/backend/test/data/.
PARTS = ("node", "light")
_PREFIX = "onnx/backend/test/data/"
_MARKER = ".complete"


class ConformanceDataError(KilnError, RuntimeError):
    """The ONNX test data is not in the cache and cannot be fetched."""


def default_cache_dir() -> Path:
    """Where the unpacked test data lives unless a caller says otherwise."""
    return Path.home() / ".cache" / "kiln" / f"onnx-{ONNX_VERSION}"


def find_test_data(cache_dir: str | Path | None = None) -> Path | None:
    """The unpacked test data folder (holding node/ and light/), or None if not fetched yet."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if (root / _MARKER).is_file() and all((root / part).is_dir() for part in PARTS):
        return root
    return None


def ensure_test_data(cache_dir: str | Path | None = None, wheel: str | Path | None = None
                     ) -> Path:
    """The unpacked test data folder, fetching and unpacking the onnx wheel if needed.

    `wheel` names an already downloaded onnx-1.22.0 wheel to unpack instead of calling pip.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    found = find_test_data(root)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(prefix="kiln-onnx-wheel-") as tmp:
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        _unpack(wheel_path, root)
    return root


def _download_wheel(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               f"onnx=={ONNX_VERSION}", "-d", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConformanceDataError(f"cannot run pip to fetch onnx=={ONNX_VERSION}: {exc}") from None
    wheels = sorted(folder.glob(f"onnx-{ONNX_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ConformanceDataError(f"pip could not download onnx=={ONNX_VERSION} (needed for its "
                            f"backend test data): {done.stderr.strip()[-800:]}; fetch the "
                            f"wheel by hand and pass it as wheel=...")
    return wheels[0]


def _unpack(wheel: Path, root: Path) -> None:
    """Unzip the wheel's node/ and light/ test folders into `root` (atomically per call)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = info.filename
                if not name.startswith(_PREFIX) or info.is_dir():
                    continue
                relative = name[len(_PREFIX):]
                if relative.split("/", 1)[0] not in PARTS or ".." in relative.split("/"):
                    continue
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / _MARKER).write_text(f"onnx {ONNX_VERSION} from {wheel.name}\n")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConformanceDataError(f"cannot unpack {wheel}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
