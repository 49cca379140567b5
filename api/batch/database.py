"""``cxm score --to-db``: store scored rows through the API's ingestion service.

Validation, PII redaction and idempotency on ``external_id`` are the API's own, so a resumed
job that re-sends a chunk only gets duplicates back (a row whose id is stored with other content
is a conflict: counted, not stored). The batch job's analyses are reused; only texts that
redaction changed are analysed again (what the API stores is the redacted text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import sessionmaker

from api.batch.readers import BadRow, Chunk
from api.pii import PiiRedactor
from api.schemas.feedback import SocialFeedback, SurveyFeedback, TicketFeedback
from api.services.analysis import model_versions
from api.services.ingestion import ingest, validate_items
from api.settings import Settings
from nlp.results import Analysis

ITEM_FIELDS = frozenset(SurveyFeedback.model_fields) | frozenset(SocialFeedback.model_fields) | frozenset(
    TicketFeedback.model_fields
)
_JSON_FIELDS = ("segments", "reasons")


class ReusingAnalyzer:
    """Answers with analyses already computed for the same text; analyses the rest."""

    def __init__(self, analyzer):
        self.analyzer = analyzer
        self.known: dict[str, Analysis] = {}

    def analyze(self, texts: Sequence[str | None]) -> list[Analysis]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.known))
        fresh = dict(zip(missing, self.analyzer.analyze(missing))) if missing else {}
        return [self.known[t] if t in self.known else fresh[t] for t in texts]


def feedback_item(row: dict[str, Any], text_column: str) -> dict[str, Any]:
    """An API feedback item from a file row: known fields by name, ``id`` as ``external_id``,
    ``kind`` defaulting to ``survey``; empty values are absent; JSON strings in CSV are parsed."""
    item: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key == text_column:
            item["text"] = value
        elif key in ITEM_FIELDS and key != "text":
            if key in _JSON_FIELDS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass
            item[key] = value
    if "external_id" not in item and row.get("id") not in (None, ""):
        item["external_id"] = str(row["id"])
    item.setdefault("kind", "survey")
    return item


class DatabaseSink:
    """Rows the API would reject become bad rows before scoring; scored rows go through ``ingest``."""

    def __init__(self, sessions: sessionmaker, redactor: PiiRedactor, analyzer, versions: dict[str, str],
                 max_attempts: int, text_column: str):
        self.sessions, self.redactor, self.versions = sessions, redactor, versions
        self.analyzer = ReusingAnalyzer(analyzer)
        self.max_attempts, self.text_column = max_attempts, text_column
        self._items: list[dict[str, Any]] = []
        self.stored = self.duplicates = self.conflicts = 0

    @classmethod
    def from_settings(cls, settings: Settings, analyzer, text_column: str) -> DatabaseSink:
        from api.db.engine import make_engine, make_sessionmaker, migrate

        engine = make_engine(settings.database_url, settings)
        migrate(engine)
        return cls(make_sessionmaker(engine), PiiRedactor(settings.pii_redact), analyzer,
                   model_versions(settings, analyzer), settings.analysis_max_attempts, text_column)

    def prepare(self, chunk: Chunk) -> None:
        items = [feedback_item(row, self.text_column) for row in chunk.rows]
        _, results = validate_items(items)
        rejected = {r.index: r.reason for r in results if r.status == "rejected"}
        keep = [k for k in range(len(items)) if k not in rejected]
        for k, reason in rejected.items():
            chunk.bad.append(BadRow(chunk.task.path, chunk.row_numbers[k], chunk.line_numbers[k],
                                    f"not valid for the database: {reason}"))
        chunk.rows = [chunk.rows[k] for k in keep]
        chunk.row_numbers = [chunk.row_numbers[k] for k in keep]
        chunk.line_numbers = [chunk.line_numbers[k] for k in keep]
        self._items = [items[k] for k in keep]

    def store(self, chunk: Chunk, analyses: list[tuple[int, Analysis]]) -> None:
        if not analyses:
            return
        self.analyzer.known = {chunk.rows[k][self.text_column]: a for k, a in analyses}
        result = ingest(self.sessions, [self._items[k] for k, _ in analyses], self.redactor, self.analyzer,
                        self.versions, self.max_attempts)
        if result.rejected:
            reasons = {r.reason for r in result.items if r.status == "rejected"}
            raise RuntimeError(f"the database rejected validated rows: {sorted(reasons)[:3]}")
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.analyzer.known = {}
