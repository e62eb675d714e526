"""ONNX converters, one module per op family; importing them fills the registry."""

from . import control, einsum, quantize, recurrent  # noqa: F401
from . import attention, indexing, loss, math, normalization_composed, resize  # noqa: F401,E501
from . import causal_conv, conv_transpose, linear_attention, rotary, tensor_extra  # noqa: F401,E501
from . import sampling, signal, training  # noqa: F401
from . import data_dependent  # noqa: F401
from . import bitcast, deform_conv, linalg, pool_indices, quantized_linear  # noqa: F401
from . import quantized_contrib, quantized_elementwise  # noqa: F401
from . import rearrange, roi_align, scan  # noqa: F401
from . import (activations, conv, elementwise, matmul, movement, normalization, pool,  # noqa: F401
               reduce, shape, tensor)
