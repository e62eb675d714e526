"""Real photographs for the quantization tests: the RGB sample images scikit-image's wheel
ships (fetched once by tests/pypi_models.py and cached), decoded here (8-bit RGB PNG,
no interlace: all these are) without an imaging library, and cut into ImageNet-normalised
224x224 crops at seeded random places, scales and flips."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from pypi_models import RegistryUnreachable, unpacked_wheel

SCIKIT_IMAGE = ("scikit-image", "0.26.0")
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left", "ihc", "color")
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB, non-interlaced PNG as a [height, width, 3] uint8 array."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (depth, colour, interlace) != (8, 2, 0):
        raise ValueError(f"only 8-bit RGB PNGs without interlace, not {depth}/{colour}")
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            chunks.append(data[at + 8:at + 8 + length])
        at += 12 + length
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8)
    stride = width * 3
    rows = raw.reshape(height, stride + 1)
    image = np.zeros((height, stride), np.int32)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            out = line
        elif kind == 2:
            out = (line + previous) & 255
        else:
            out = line.copy()
            for x in range(stride):
                left = out[x - 3] if x >= 3 else 0
                up, corner = previous[x], previous[x - 3] if x >= 3 else 0
                guess = left if kind == 1 else (left + up) // 2 if kind == 3 else \
                    _paeth(left, up, corner)
                out[x] = (out[x] + guess) & 255
        image[y] = previous = out
    return image.reshape(height, width, 3).astype(np.uint8)


def photographs() -> list[np.ndarray]:
    """The sample photographs as [height, width, 3] uint8 arrays (the calling test skips,
    or fails in CI, where the wheel is not cached and the registry cannot be reached)."""
    from downloads import missing_download

    try:
        root = unpacked_wheel(*SCIKIT_IMAGE) / "skimage" / "data"
    except RegistryUnreachable as exc:
        missing_download(f"package registry unreachable: {exc}")
    return [decode_png((root / f"{name}.png").read_bytes()) for name in PHOTOS]


def crops(images: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` [1, 3, 224, 224] float32 crops: a random photo, a random stride (1 or 2:
    a downscale), place and mirror each, normalised as ImageNet models expect."""
    out = np.empty((count, 1, 3, 224, 224), np.float32)
    for i in range(count):
        image = images[rng.integers(len(images))]
        step = int(rng.integers(1, 3)) if min(image.shape[:2]) >= 448 else 1
        h, w = image.shape[0] // step, image.shape[1] // step
        top, left = rng.integers(0, h - 223), rng.integers(0, w - 223)
        crop = image[::step, ::step][top:top + 224, left:left + 224]
        if rng.integers(2):
            crop = crop[:, ::-1]
        out[i, 0] = (crop.transpose(2, 0, 1) / np.float32(255) - MEAN) / STD
    return out
