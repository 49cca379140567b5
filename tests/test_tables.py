"""Whole-file reads (`cxm analyze`, `cxm topics`, `cxm churn`) parse like batch scoring: one reader."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from api.tables import READ_MAX_CHARS, TableError, read_table


def test_formats_read_alike_and_keep_values_as_written(tmp_path):
    rows = [{"id": 7, "text": "Fast delivery.", "at": "2026-03-01"}, {"id": 8, "text": "Slow.", "at": "2026-03-02"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.csv").write_text('\ufeffid,text,at\n7,Fast delivery.,2026-03-01\n8,"Slow.",2026-03-02\n')
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.json"):
        frame = read_table(tmp_path / name)
        assert frame["id"].tolist() == [7, 8] and frame["at"].tolist() == ["2026-03-01", "2026-03-02"]
    csv = read_table(tmp_path / "a.csv")
    assert list(csv.columns) == ["id", "text", "at"] and csv["id"].tolist() == ["7", "8"]
    assert read_table(tmp_path / "a.parquet")["id"].tolist() == [7, 8]


def test_a_bad_record_is_named_with_its_line(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("id,text\n1,fine\n2,too,many\n")
    with pytest.raises(TableError, match=r"record 2 \(line 3\): expected 2 fields, found 3"):
        read_table(broken)
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"text": "x" * (13 * READ_MAX_CHARS + (1 << 20))}) + "\n")
    with pytest.raises(TableError, match="record 1 .*line longer than"):
        read_table(long)
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id\n1\n")
    with pytest.raises(TableError, match="no 'text' column"):
        read_table(no_text)
