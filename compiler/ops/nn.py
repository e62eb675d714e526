"""Dense and windowed ops: conv2d, matmul, pooling, softmax and normalizations.

Layouts are NCHW; 1-D and 3-D spatial forms are reshaped to these by the frontend. conv2d
and the pools also take `layout="NHWC"` (channels last; passes/channels_last.py sets it on
vector targets): input and output are then [N, H, W, C], the weight stays OIHW.
Attributes are normalized: `pads` is (top, left, bottom, right); strides and dilations
are (h, w).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import ShapeError
from ..ir import TensorType
from .registry import register, same_as_first


def pool_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int,
             ceil_mode: bool = False) -> int:
    """Output length of a sliding window, ONNX's rule (a ceil window must start in bounds)."""
    span = dilation * (kernel - 1) + 1
    num = size + pad_begin + pad_end - span
    if num < 0:
        raise ShapeError(f"window of span {span} is larger than the padded input ({size} + "
                         f"{pad_begin} + {pad_end})")
    if not ceil_mode:
        return num // stride + 1
    out = -(-num // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def _nchw_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return tuple(shape[p] for p in NHWC_TO_NCHW) if layout == "NHWC" else tuple(shape)


def _in_layout(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """An NCHW shape in `layout`."""
    return tuple(shape[p] for p in NCHW_TO_NHWC) if layout == "NHWC" else tuple(shape)


def _channels_last(reference):
    """A reference written for NCHW, also run on NHWC arrays (layout="NHWC")."""

    def run(x, *rest, layout="NCHW", **attrs):
        if layout == "NCHW":
            return reference(x, *rest, **attrs)
        y = reference(np.transpose(x, NHWC_TO_NCHW), *rest, **attrs)
        return np.transpose(y, NCHW_TO_NHWC)

    run.__doc__ = reference.__doc__
    return run


def _conv_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types[0], types[1]
    layout = attrs.get("layout", "NCHW")
    n, c, h, wd = _nchw_shape(x.shape, layout)
    oc, icg, kh, kw = w.shape
    if c != icg * attrs["group"]:
        raise ShapeError(f"conv input has {c} channels but the weight expects {icg} x group "
                         f"{attrs['group']}")
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    pt, pl, pb, pr = attrs["pads"]
    return [TensorType(x.dtype, _in_layout((n, oc, pool_out(h, kh, sh, pt, pb, dh),
                                            pool_out(wd, kw, sw, pl, pr, dw)), layout))]


def _windows(x: np.ndarray, kernel, strides, pads, dilations, out_hw, fill: float):
    """All windows of x as an array [N, C, OH, OW, KH, KW], padding with `fill`."""
    n, c, h, w = x.shape
    kh, kw = kernel
    pt, pl, pb, pr = pads
    oh, ow = out_hw
    sh, sw = strides
    dh, dw = dilations
    extra_h = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + pt + pb))
    extra_w = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + pl + pr))
    xp = np.full((n, c, h + pt + pb + extra_h, w + pl + pr + extra_w), fill, dtype=x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    out = np.empty((n, c, oh, ow, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                                j * dw:j * dw + sw * (ow - 1) + 1:sw]
    return out


@register("conv2d", "conv", _conv_type)
@_channels_last
def conv2d(x, w, b=None, *, strides, pads, dilations, group):
    """Grouped 2-D cross-correlation, NCHW input, OIHW weight, optional bias [OC]."""
    oc, icg, kh, kw = w.shape
    n = x.shape[0]
    oh = pool_out(x.shape[2], kh, strides[0], pads[0], pads[2], dilations[0])
    ow = pool_out(x.shape[3], kw, strides[1], pads[1], pads[3], dilations[1])
    win = _windows(x.astype(np.float64), (kh, kw), strides, pads, dilations, (oh, ow), 0.0)
    ocg = oc // group
    y = np.empty((n, oc, oh, ow))
    for g in range(group):
        xs = win[:, g * icg:(g + 1) * icg]
        ws = w[g * ocg:(g + 1) * ocg].astype(np.float64)
        y[:, g * ocg:(g + 1) * ocg] = np.einsum("ncpqij,ocij->nopq", xs, ws)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _matmul_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    a, b = types
    if a.rank < 2 or b.rank < 2:
        raise ShapeError("matmul operands must have rank >= 2 (the frontend lifts vectors)")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul inner dims differ: {a.shape} x {b.shape}")
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    return [TensorType(a.dtype, batch + (a.shape[-2], b.shape[-1]))]


@register("matmul", "matmul", _matmul_type)
def matmul(a, b):
    """Batched matrix product with numpy broadcasting over leading dims."""
    return np.matmul(a, b)


def _pool_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    layout = attrs.get("layout", "NCHW")
    n, c, h, w = _nchw_shape(x.shape, layout)
    kh, kw = attrs["kernel"]
    pt, pl, pb, pr = attrs["pads"]
    sh, sw = attrs["strides"]
    dh, dw = attrs.get("dilations", (1, 1))
    ceil_mode = attrs.get("ceil_mode", False)
    return [TensorType(x.dtype, _in_layout((n, c, pool_out(h, kh, sh, pt, pb, dh, ceil_mode),
                                            pool_out(w, kw, sw, pl, pr, dw, ceil_mode)),
                                           layout))]


@register("max_pool2d", "pool", _pool_type)
@_channels_last
def max_pool2d(x, *, kernel, strides, pads, dilations=(1, 1), ceil_mode=False):
    """Max over each window; padding never wins."""
    (t,) = _pool_type([_type_of(x)], dict(kernel=kernel, strides=strides, pads=pads,
                                               dilations=dilations, ceil_mode=ceil_mode))
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win = _windows(x, kernel, strides, pads, dilations, t.shape[2:], lowest)
    return win.max(axis=(4, 5))


@register("avg_pool2d", "pool", _pool_type)
@_channels_last
def avg_pool2d(x, *, kernel, strides, pads, dilations=(1, 1), ceil_mode=False,
               count_include_pad=False):
    """Mean over each window. Positions past the padded input (ceil mode) never count;
    explicit padding counts only with count_include_pad."""
    attrs = dict(kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                 ceil_mode=ceil_mode)
    (t,) = _pool_type([_type_of(x)], attrs)
    ones = np.ones((1, 1) + x.shape[2:], dtype=np.float64)
    total = _windows(x.astype(np.float64), kernel, strides, pads, dilations, t.shape[2:], 0.0)
    if count_include_pad:
        padded = np.ones((1, 1, x.shape[2] + pads[0] + pads[2], x.shape[3] + pads[1] + pads[3]))
        count = _windows(padded, kernel, strides, (0, 0, 0, 0), dilations, t.shape[2:], 0.0)
    else:
        count = _windows(ones, kernel, strides, pads, dilations, t.shape[2:], 0.0)
    return total.sum(axis=(4, 5)) / count.sum(axis=(4, 5))


def _type_of(x: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(x.dtype), x.shape)


@register("softmax", "softmax", same_as_first)
def softmax(x, *, axis):
    """exp(x - max) / sum along one axis."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@register("log_softmax", "softmax", same_as_first)
def log_softmax(x, *, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


@register("batch_norm", "norm", same_as_first)
def batch_norm(x, scale, bias, mean, var, *, epsilon):
    """Inference batch normalization over channel axis 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / np.sqrt(var + epsilon)
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


@register("layer_norm", "norm", same_as_first)
def layer_norm(x, scale, bias=None, *, axis, epsilon):
    """Normalize over dims [axis, rank), then scale and shift (broadcast)."""
    axes = tuple(range(axis, x.ndim))
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mu) / np.sqrt(var + epsilon) * scale
    return y + bias if bias is not None else y

