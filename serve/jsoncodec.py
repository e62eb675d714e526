"""The JSON codec of the REST path: orjson where it is installed (it reads a request's
numbers several times faster than the standard json module, and writes a float32 tensor
straight from its array), the standard module otherwise.

The two agree on every request. orjson refuses some text the standard module reads (NaN and
Infinity, lone surrogates) and reads integers past 64 bits as floats; so whatever orjson
refuses is read again by the standard module, and the protocol checks a request that fails
its checks again on the standard module's reading (`loads(..., exact=True)`): a request is
accepted or refused, with the same message, whichever codec runs. Writing differs only in
form: orjson writes non-ASCII text as UTF-8 where the standard module escapes it, and a
float32 value in its shortest digits where the standard path writes nine; both read back as
the same values.
"""

from __future__ import annotations

import json
from typing import Any

import ml_dtypes
import numpy as np

try:
    import orjson
except ImportError:   # the standard module serves alone
    orjson = None


class NotJSON(ValueError):
    """Text that is not a JSON value; the message says why, in the standard module's words
    (where the error is), so that it reads the same under either codec."""


def fast() -> bool:
    """Whether orjson is the codec (tests switch it off by setting `orjson` to None)."""
    return orjson is not None


def loads(data: bytes | bytearray | memoryview, exact: bool = False) -> Any:
    """The JSON value of UTF-8 `data`; `exact`: the standard module's reading (integers of
    any size), even where orjson is installed. NotJSON when it is not JSON."""
    if orjson is not None and not exact:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass   # the standard module's reading, or its message
    try:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)
    except UnicodeDecodeError:
        raise NotJSON("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise NotJSON(f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                      f"{exc.colno}") from None
    except RecursionError:
        raise NotJSON("not valid JSON: its lists or objects nest too deeply") from None


def dumps(value: Any) -> bytes:
    """`value` as compact JSON text; what orjson cannot write (a lone surrogate, an integer
    past 64 bits: a request's id may hold either) the standard module writes."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(value, separators=(",", ":")).encode()


#: 16- and 32-bit floats are written as float32: exact, and short
_SHORT_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16))


def dumps_array(array: np.ndarray) -> bytes:
    """An array's values as a flat JSON list, row-major. Floats come back exactly when read
    as their own dtype; NaN and Infinity are written as Python's json writes them (JSON has
    no words for them, and tritonclient reads these)."""
    flat = array.reshape(-1)
    if flat.dtype in _SHORT_FLOATS:
        flat = flat.astype(np.float32)
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return json.dumps(flat.tolist()).encode()
    if orjson is not None:
        return orjson.dumps(np.ascontiguousarray(flat), option=orjson.OPT_SERIALIZE_NUMPY)
    if flat.dtype == np.float32:   # 9 significant digits give a float32 back exactly
        return ("[" + ",".join(["%.9g" % v for v in flat.tolist()]) + "]").encode()
    return json.dumps(flat.tolist(), separators=(",", ":")).encode()
