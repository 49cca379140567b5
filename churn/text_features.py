"""Fill the feedback table's text-analysis columns from an injected feedback analyzer.

Each distinct text is analysed once (histories repeat texts a lot). A head the analyzer lacks,
or a text it could not analyse, leaves that cell missing (NaN / None) rather than inventing a value.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import pandas as pd

from churn.schema import ChurnTables


class TextAnalyzer(Protocol):
    """What :class:`nlp.analyzer.FeedbackAnalyzer` offers: batch in, list of Analysis out."""

    def analyze(self, texts: Sequence[str | None]) -> list: ...


MISSING = (np.nan, None, np.nan, np.nan, None)


def _cells(analysis, reasons_ran: bool) -> tuple:
    """(sentiment score, reason ids, churn intent, its score, competitors), missing heads left missing."""
    if analysis.error is not None:
        return MISSING
    sentiment = analysis.sentiment.score if analysis.sentiment is not None else np.nan
    tags = tuple(r.id for r in analysis.reasons) if reasons_ran else None
    signals = analysis.signals
    if signals is None:
        return sentiment, tags, np.nan, np.nan, None
    return (sentiment, tags, float(bool(signals.churn_intent)), float(signals.churn_intent_score),
            tuple(signals.competitors))


UNUSED_HEADS = ("sentence_splitter", "topics")


def _lean(analyzer: TextAnalyzer) -> TextAnalyzer:
    """A shallow copy without the heads churn features never read (they only cost time here)."""
    if not any(getattr(analyzer, head, None) is not None for head in UNUSED_HEADS):
        return analyzer
    lean = copy.copy(analyzer)
    for head in UNUSED_HEADS:
        setattr(lean, head, None)
    return lean


def annotate_events(events: pd.DataFrame, analyzer: TextAnalyzer, *, reasons_ran: bool | None = None,
                    batch_size: int = 256) -> pd.DataFrame:
    """A copy of ``events`` with the text-analysis columns of :data:`churn.schema.TEXT_COLUMNS` filled.

    ``reasons_ran`` says whether an empty reason list means "no reason found" (True) or "no
    reason head" (False); by default it is read from ``analyzer.reasons``.
    """
    if "text" not in events.columns:
        raise ValueError("events have no 'text' column to analyse")
    if reasons_ran is None:
        reasons_ran = getattr(analyzer, "reasons", None) is not None
    analyzer = _lean(analyzer)
    texts = events["text"].map(lambda t: t.strip() if isinstance(t, str) and t.strip() else None)
    unique = list(pd.unique(texts.dropna()))
    results: dict[str, tuple] = {}
    for i in range(0, len(unique), batch_size):
        batch = unique[i:i + batch_size]
        for text, analysis in zip(batch, analyzer.analyze(batch)):
            results[text] = _cells(analysis, reasons_ran)
    rows = [results[t] if t is not None else MISSING for t in texts]
    out = events.copy()
    out["sentiment_score"] = np.array([r[0] for r in rows], dtype=float)
    out["text_reasons"] = pd.Series([r[1] for r in rows], index=events.index, dtype=object)
    out["churn_intent"] = np.array([r[2] for r in rows], dtype=float)
    out["churn_intent_score"] = np.array([r[3] for r in rows], dtype=float)
    out["competitors"] = pd.Series([r[4] for r in rows], index=events.index, dtype=object)
    return out


HEADS = ("sentiment", "reasons", "signals")


def text_heads(analyzer: TextAnalyzer) -> list[str]:
    """The churn-relevant heads this analyzer has (recorded on the model card)."""
    return [head for head in HEADS if getattr(analyzer, head, None) is not None]


def annotate_tables(tables: ChurnTables, analyzer: TextAnalyzer) -> ChurnTables:
    """The same tables with the feedback's text-analysis columns filled by ``analyzer``."""
    return replace(tables, feedback=annotate_events(tables.feedback, analyzer))
