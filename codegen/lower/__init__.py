"""Lowerings from IR op families to the kernel IR, one module per family; the kernel
registry (codegen/kernels/) says which lowering runs each group."""

from .common import LowerContext, Storage  # noqa: F401
from . import scalar_math  # noqa: F401  (fill scalar.SCALAR with the math ops)
