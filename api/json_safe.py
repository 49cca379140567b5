"""The one way cxm makes values JSON-safe, for every JSON it writes (files, database columns, parts).

Dates and times become ISO 8601 strings, durations seconds, decimals strings, bytes UTF-8 text,
numpy scalars Python numbers; NaN and infinities (which JSON cannot hold) become null.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)``: a JSON-ready form of a value the encoder does not know."""
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def finite(value: Any) -> Any:
    """``None`` for a NaN or infinite float, else the value unchanged."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def plain(value: Any) -> Any:
    """A JSON-safe deep copy: dict keys as strings, tuples as lists, everything else as above."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return finite(value)
    return plain(json_default(value))
