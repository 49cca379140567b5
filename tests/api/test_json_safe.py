"""The one JSON sanitiser: every writer of JSON (files, risk reasons, batch parts) uses it."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import numpy as np
import pandas as pd
import pytest

from api.json_safe import finite, json_default, plain


def test_plain_makes_nested_values_json_safe():
    value = {"at": pd.Timestamp("2026-03-01", tz="UTC"), 1: (np.int64(3), np.float32(0.5)),
             "deep": [{"nan": float("nan"), "inf": np.float64("inf")}], "day": dt.date(2026, 3, 2),
             "wait": dt.timedelta(minutes=2), "money": decimal.Decimal("1.10"), "raw": b"caf\xc3\xa9"}
    out = plain(value)
    assert out == {"at": "2026-03-01T00:00:00+00:00", "1": [3, 0.5], "deep": [{"nan": None, "inf": None}],
                   "day": "2026-03-02", "wait": 120.0, "money": "1.10", "raw": "café"}
    json.dumps(out, allow_nan=False)  # strict JSON: what PostgreSQL's json type accepts


def test_unknown_types_are_refused_not_stringified():
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        json_default(object())
    assert finite(float("-inf")) is None and finite(2.5) == 2.5 and finite("x") == "x"
