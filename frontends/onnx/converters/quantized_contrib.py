"""ONNX Runtime's quantized linear ops (domain com.microsoft), as its quantizers emit them,
onto the integer IR op qmatmul (compiler/ops/quantized.py):

    MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zp, b_zp, bias)
        y = float(acc) * (a_scale * b_scale[n]) + bias[n]
    DynamicQuantizeMatMul(A float, B, b_scale, b_zp, bias)
        A quantized at run time as DynamicQuantizeLinear does, then MatMulIntegerToFloat
    QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp; alpha, transA, transB)
        acc' = acc + C (int32);  float:  y = float(acc') * (alpha * a_scale * b_scale[n])
                                 8-bit:  y = saturate(round(float(acc') * scale / y_scale) + y_zp)
    DynamicQuantizeLSTM(X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale,
                        W_zero_point, R_scale, R_zero_point)
        ONNX's LSTM with W [dirs, input, 4H] and R [dirs, H, 4H] 8-bit (scale and zero
        point per direction or per column); the product by W a DynamicQuantizeMatMul, the
        one by R (inside the loop over time) on R dequantized to float32

acc is the exact int32 sum of (a - a_zp)(b - b_zp). A's zero point and scale may be computed
at run time (DynamicQuantizeLinear's outputs): qmatmul then takes them as inputs. B's scale
and zero point are per tensor or per column constants, as the quantizers write them; other
forms of MatMulIntegerToFloat are decomposed into an int32 matmul and float arithmetic.
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.ir import Value
from ..registry import converter
from .common import reshape
from .matmul import matmul as _matmul
from .quantized_linear import (_a_zero_point, _column_zero_points, _integer_op, _known,
                               _matmul_form, _per_column, _scalar, _widen,
                               dynamic_quantize_linear)
from .recurrent import lstm

MS = "com.microsoft"


def _run_time_scalar(ctx, value: Value, dtype: DType, what: str) -> Value:
    """A one-element run-time input as qmatmul takes it."""
    if value.type.numel != 1 or value.dtype is not dtype:
        ctx.fail(f"{what} must be one {dtype.name} value, not {value.dtype.name} of shape "
                 f"{value.shape}")
    return value


def _to_float(ctx, a: Value, b: Value, a_scale: Value, b_scale: Value,
              a_zero_point: Value | None, b_zero_point: Value | None, bias: Value | None
              ) -> Value:
    """float(acc) * (a_scale * b_scale) + bias on qmatmul where the operands take its form;
    otherwise an int32 matmul of the widened operands and elementwise float arithmetic."""
    if _matmul_form(a, b):
        columns = b.shape[1]
        a_zero = _a_zero_point(ctx, a_zero_point, a)
        b_zero = _column_zero_points(ctx, b_zero_point, b, columns)
        b_scales = _per_column(_known(b_scale), columns, np.float32)
        bias_data = _per_column(_known(bias), columns, np.float32) if bias is not None \
            else np.zeros(columns, np.float32)
        a_scales = _known(a_scale)
        if a_zero is not None and b_zero is not None and b_scales is not None \
                and bias_data is not None:
            if isinstance(a_zero, int) and a_scales is not None and a_scales.size == 1:
                scale = np.float32(a_scales.reshape(())) * b_scales
                return _integer_op(ctx, "qmatmul", a, b, a_zero, b_zero, DType.float32,
                                   bias_data, scale)
            if isinstance(a_zero, int):
                a_zero = ctx.const(np.array(a_zero, a.dtype.numpy), f"{ctx.name}_a_zero")
            a_scale = _run_time_scalar(ctx, a_scale, DType.float32, "a_scale")
            return _integer_op(ctx, "qmatmul", a, b, a_zero, b_zero, DType.float32,
                               bias_data, b_scales, a_scale=a_scale)
    acc = _matmul(ctx, _widen(ctx, a, a_zero_point), _widen(ctx, b, b_zero_point))
    scale = ctx.emit("mul", [reshape(ctx, a_scale, ()), b_scale])
    y = ctx.emit("mul", [ctx.emit("cast", [acc], to=DType.float32), scale])
    return y if bias is None else ctx.emit("add", [y, bias])


@converter("MatMulIntegerToFloat", since=1, domain=MS)
def matmul_integer_to_float(ctx, a, b, a_scale, b_scale, a_zero_point=None,
                            b_zero_point=None, bias=None):
    return _to_float(ctx, a, b, a_scale, b_scale, a_zero_point, b_zero_point, bias)


@converter("DynamicQuantizeMatMul", since=1, domain=MS)
def dynamic_quantize_matmul(ctx, a, b, b_scale, b_zero_point=None, bias=None):
    """A quantized to uint8 over its whole range at run time, then MatMulIntegerToFloat."""
    a_q, a_scale, a_zero = dynamic_quantize_linear(ctx, a)
    return _to_float(ctx, a_q, b, a_scale, b_scale, a_zero, b_zero_point, bias)


def _gemm_scale(ctx, alpha: float, a_scale: Value, b_scale: Value, y_scale: Value | None,
                columns: int) -> np.ndarray:
    """alpha * a_scale * b_scale[n] (/ y_scale) in float32, in ONNX Runtime's order."""
    a, y = _known(a_scale), _known(y_scale) if y_scale is not None else np.float32(1)
    b = _per_column(_known(b_scale), columns, np.float32)
    if a is None or y is None or b is None or a.size != 1 or y.size != 1:
        ctx.fail("QGemm's scales must be constants (per tensor, B's per column too)",
                 "quantize the model with constant scales")
    scale = np.float32(alpha) * np.float32(a.reshape(())) * b
    return scale if y_scale is None else scale / np.float32(y.reshape(()))


@converter("QGemm", since=1, domain=MS)
def qgemm(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None,
          y_zero_point=None, alpha=1.0, transA=0, transB=0):
    if a.type.rank != 2 or b.type.rank != 2:
        ctx.fail(f"QGemm needs 2-D A and B, got {a.shape} and {b.shape}")
    if (y_scale is None) != (y_zero_point is None):
        ctx.fail("QGemm takes y_scale and y_zero_point together (an 8-bit output) or "
                 "neither (a float output)")
    if transA:
        a = ctx.emit("transpose", [a], perm=(1, 0))
    if transB:
        b = ctx.emit("transpose", [b], perm=(1, 0))
    columns = b.shape[1]
    out = DType.float32 if y_zero_point is None else y_zero_point.dtype
    if out not in (DType.float32, DType.int8, DType.uint8):
        ctx.fail(f"QGemm output dtype {out.name} is not supported (float32, int8, uint8)")
    scale = _gemm_scale(ctx, alpha, a_scale, b_scale, y_scale, columns)
    a_zero = _scalar(ctx, a_zero_point, a, "a_zero_point")
    b_zero = _column_zero_points(ctx, b_zero_point, b, columns)
    y_zero = _scalar(ctx, y_zero_point, y_zero_point, "y_zero_point") \
        if y_zero_point is not None else 0
    bias = np.zeros(columns, np.int32)
    if c is not None:
        known = _known(c)
        if known is None or known.dtype != np.int32 or (known.size != 1 and (
                known.shape[-1] != columns or known.size != columns)):
            ctx.fail("QGemm's C must be a constant int32 scalar or one value per column",
                     "fold the bias into a per-column constant before export")
        bias = np.ascontiguousarray(np.broadcast_to(known.reshape(-1), (columns,)), np.int32)
    if a_zero is None or b_zero is None or y_zero is None:
        ctx.fail("QGemm's zero points must be constants (per tensor, B's per column too)")
    return _integer_op(ctx, "qmatmul", a, b, a_zero, b_zero, out, bias, scale, y_zero)


def _direction_params(ctx, scale: Value, zero_point: Value, weight: Value, what: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A quantized LSTM weight's constant scales and zero points, one row per direction:
    [dirs] (per tensor) or [dirs, 4 * hidden] (per column)."""
    scales = np.asarray(ctx.value_of(scale, f"{what}_scale"), np.float32)
    zeros = np.asarray(ctx.value_of(zero_point, f"{what}_zero_point"))
    if zero_point.dtype is not weight.dtype:
        ctx.fail(f"{what}_zero_point is {zero_point.dtype.name} but {what} is "
                 f"{weight.dtype.name}")
    dirs, columns = weight.shape[0], weight.shape[2]
    for name, array in ((f"{what}_scale", scales), (f"{what}_zero_point", zeros)):
        if array.shape not in ((dirs,), (dirs, columns)):
            ctx.fail(f"{name} has shape {list(array.shape)}, expected [{dirs}] or "
                     f"[{dirs}, {columns}]")
    return scales, zeros


@converter("DynamicQuantizeLSTM", since=1, domain=MS)
def dynamic_quantize_lstm(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None,
                          initial_c=None, p=None, w_scale=None, w_zero_point=None,
                          r_scale=None, r_zero_point=None, activation_alpha=None,
                          activation_beta=None, activations=None, clip=None,
                          direction="forward", hidden_size=None, input_forget=0):
    """An LSTM whose W [dirs, input, 4H] and R [dirs, H, 4H] are 8-bit constants, on
    recurrent.py's loop: the input projection of every step is a DynamicQuantizeMatMul (X
    quantized to uint8 over its range at run time, as ONNX Runtime does, times the 8-bit W,
    which stays 8-bit), and R, dequantized at compile time, is the loop kernel's float32
    R^T (ONNX Runtime quantizes each step's H as well: the two differ by that rounding)."""
    for weight, what in ((w, "W"), (r, "R")):
        if weight.dtype not in (DType.int8, DType.uint8) or weight.type.rank != 3 \
                or not weight.is_constant:
            ctx.fail(f"DynamicQuantizeLSTM's {what} must be a constant int8/uint8 tensor "
                     f"of rank 3, not {weight.dtype.name} of shape {list(weight.shape)}")
    w_scales, w_zeros = _direction_params(ctx, w_scale, w_zero_point, w, "W")
    r_scales, r_zeros = _direction_params(ctx, r_scale, r_zero_point, r, "R")
    dirs, columns = r.shape[0], r.shape[2]

    def per_column(params: np.ndarray) -> np.ndarray:
        return np.broadcast_to(params.reshape(dirs, -1), (dirs, columns))

    r_float = (r.data.astype(np.float32) - per_column(r_zeros).astype(np.float32)[:, None]) \
        * per_column(r_scales)[:, None]
    r_t = ctx.const(r_float.astype(np.float32), name=f"{ctx.name}_r_t")

    def project(ctx, x_major: Value, weight: Value) -> Value:
        seq, batch, size = x_major.shape
        flat = reshape(ctx, x_major, (seq * batch, size))
        a_q, a_scale, a_zero = dynamic_quantize_linear(ctx, flat)
        parts = [_to_float(ctx, a_q, ctx.const(np.ascontiguousarray(weight.data[d]),
                                               name=f"{ctx.name}_w{d}"),
                           a_scale, ctx.const(w_scales[d]), a_zero, ctx.const(w_zeros[d]),
                           None) for d in range(dirs)]
        return parts[0] if dirs == 1 else ctx.emit("concat", parts, axis=1)

    return lstm(ctx, x, w, r, b, sequence_lens, initial_h, initial_c, p,
                activation_alpha=activation_alpha, activation_beta=activation_beta,
                activations=activations, clip=clip, direction=direction,
                hidden_size=hidden_size or columns // 4, input_forget=input_forget,
                project=project, r_t=r_t)
