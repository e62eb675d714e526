"""Kiln's op vocabulary: each IR op declared once, with its shape rule and numpy meaning.

The numpy reference is the op's definition: constant folding evaluates it, and tests can
compare a kernel against it. Codegen looks ops up here by name and kind.
"""

from .registry import OPS, OpDef, evaluate, infer_types, op_def  # noqa: F401
from . import elementwise, nn, movement, reduce  # noqa: F401  (populate the registry)
from . import indexing, math, sampling  # noqa: F401
from . import storage  # noqa: F401
from . import bits  # noqa: F401
from . import attention  # noqa: F401
from . import data_dependent  # noqa: F401
from . import quantized, qdq  # noqa: F401
from . import recurrent  # noqa: F401
from . import loops  # noqa: F401
