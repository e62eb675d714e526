"""The integer kernels of qmatmul and qconv2d, in the order selection tries them: the
AVX-512 VNNI microkernel where the CPU has it, then the portable loops, which run any."""

from __future__ import annotations

from ..lower.quantized import lower_qconv_direct, lower_qmatmul_loops
from ..schedules import NoSchedule
from .registry import Kernel, register

register(Kernel(
    name="qmatmul_loops", ops=("qmatmul",), stage="group",
    applies_to="any qmatmul (portable int32 loops)", schedule=NoSchedule,
    rejects=lambda g, t: None, default=lambda g, t: NoSchedule(), lower=lower_qmatmul_loops))

register(Kernel(
    name="qconv_direct", ops=("qconv2d",), stage="group", layout="NCHW",
    applies_to="any qconv2d (portable int32 loops)", schedule=NoSchedule,
    rejects=lambda g, t: None, default=lambda g, t: NoSchedule(), lower=lower_qconv_direct))
