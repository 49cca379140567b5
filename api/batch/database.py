"""``cxm score --to-db``: store scored rows through the API's ingestion service.

Validation, PII redaction and idempotency on ``external_id`` are the API's own, so a resumed
job that re-sends a chunk only gets duplicates back (a row whose id is stored with other content
is a conflict: counted, not stored). Rows are validated and their text redacted before scoring,
so each text is analysed once, as the database stores it, and the output file holds that text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import sessionmaker

from api.batch.readers import BadRow, Chunk
from api.pii import PiiRedactor
from api.schemas.feedback import ItemResult, SocialFeedback, SurveyFeedback, TicketFeedback
from api.services.analysis import model_versions
from api.services.ingestion import ingest_valid, validate_items
from api.settings import Settings
from nlp.analyzer import Analyzer
from nlp.results import Analysis

ITEM_FIELDS = frozenset(SurveyFeedback.model_fields) | frozenset(SocialFeedback.model_fields) | frozenset(
    TicketFeedback.model_fields
)
_JSON_FIELDS = ("segments", "reasons")


class ReusingAnalyzer:
    """Answers with analyses already computed for the same text; analyses the rest."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        self.known: dict[str, Analysis] = {}

    @property
    def heads(self) -> tuple[str, ...]:
        return self.analyzer.heads

    def without(self, *heads: str) -> ReusingAnalyzer:
        """A reusing analyzer around ``analyzer.without(*heads)``, with nothing known yet."""
        return ReusingAnalyzer(self.analyzer.without(*heads))

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

    def __init__(self, sessions: sessionmaker, redactor: PiiRedactor, analyzer: Analyzer,
                 versions: dict[str, str], max_attempts: int, text_column: str):
        self.sessions, self.redactor, self.versions = sessions, redactor, versions
        self.analyzer = ReusingAnalyzer(analyzer)
        self.max_attempts, self.text_column = max_attempts, text_column
        self._items: list[Any] = []
        self.stored = self.duplicates = self.conflicts = 0

    @classmethod
    def from_settings(cls, settings: Settings, analyzer: Analyzer, text_column: str) -> DatabaseSink:
        from api.db.engine import make_engine, make_sessionmaker, migrate

        engine = make_engine(settings.database_url, settings)
        migrate(engine)
        return cls(make_sessionmaker(engine), PiiRedactor(settings.pii_redact), analyzer,
                   model_versions(settings, analyzer), settings.analysis_max_attempts, text_column)

    def prepare(self, chunk: Chunk) -> None:
        """Rejected rows become bad rows; the rest keep their validated item (or their in-chunk
        repeat's result) and have their text redacted before it is scored."""
        valid, results = validate_items([feedback_item(row, self.text_column) for row in chunk.rows])
        rejected = {r.index: r for r in results if r.status == "rejected"}
        outcome: dict[int, Any] = {**dict(valid), **{r.index: r for r in results if r.status != "rejected"}}
        for k, r in rejected.items():
            chunk.bad.append(BadRow(chunk.task.path, chunk.row_numbers[k], chunk.line_numbers[k],
                                    f"not valid for the database: {r.reason}"))
        keep = [k for k in range(len(chunk.rows)) if k not in rejected]
        chunk.rows = [chunk.rows[k] for k in keep]
        chunk.row_numbers = [chunk.row_numbers[k] for k in keep]
        chunk.line_numbers = [chunk.line_numbers[k] for k in keep]
        self._items = [outcome[k] for k in keep]
        redactions = self.redactor.redact([row[self.text_column] for row in chunk.rows])
        for row, redaction in zip(chunk.rows, redactions):
            row[self.text_column] = redaction.text

    def store(self, chunk: Chunk, analyses: list[tuple[int, Analysis]]) -> None:
        if not analyses:
            return
        valid = [(k, self._items[k]) for k, _ in analyses if not isinstance(self._items[k], ItemResult)]
        repeats = [self._items[k].model_copy(update={"index": k})
                   for k, _ in analyses if isinstance(self._items[k], ItemResult)]
        self.analyzer.known = {chunk.rows[k][self.text_column]: a for k, a in analyses}
        result = ingest_valid(self.sessions, valid, self.redactor, self.analyzer, self.versions,
                              self.max_attempts, repeats)
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.analyzer.known = {}
