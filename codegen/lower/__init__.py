"""Lowerings from IR op families to the kernel IR, one module per family."""

from .common import LOWERINGS, LowerContext, Storage, lowering  # noqa: F401
from . import elementwise, movement, pool, reduce  # noqa: F401  (fill LOWERINGS)
from . import indexing, sampling, scalar_math  # noqa: F401
from . import bits  # noqa: F401
from . import packed  # noqa: F401
from . import data_dependent, unique  # noqa: F401
