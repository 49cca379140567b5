"""Fill the feedback table's text-analysis columns from an injected feedback analyzer.

Each distinct text is analysed once (histories repeat texts a lot). A head the analyzer lacks,
or a text it could not analyse, leaves that cell missing (NaN / None) rather than inventing a value.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.schema import ChurnTables

if TYPE_CHECKING:
    from nlp.analyzer import Analyzer
    from nlp.results import Analysis

MISSING = (np.nan, None, np.nan, np.nan, None)


def text_cells(analysis: Analysis | None, reasons_ran: bool, reason_ids: Collection[str] | None = None) -> tuple:
    """(sentiment score, reason ids, churn intent, its score, competitors) of one analysis.

    The one mapping from an :class:`nlp.results.Analysis` to the feedback table's text columns,
    for texts analysed here and for analyses the service stored. No analysis (or a failed one)
    leaves every cell missing; a head that did not run leaves its cells missing (``reasons_ran``
    says whether an empty reason list means "none found" or "not looked for"); reason ids outside
    ``reason_ids`` (when given) are dropped.
    """
    if analysis is None or analysis.error is not None:
        return MISSING
    sentiment = analysis.sentiment.score if analysis.sentiment is not None else np.nan
    tags = tuple(r.id for r in analysis.reasons if reason_ids is None or r.id in reason_ids) if reasons_ran else None
    signals = analysis.signals
    if signals is None:
        return sentiment, tags, np.nan, np.nan, None
    return (sentiment, tags, float(bool(signals.churn_intent)), float(signals.churn_intent_score),
            tuple(signals.competitors))


UNUSED_HEADS = ("sentence_splitter", "topics")
"""Heads churn features never read (they only cost time here)."""


def annotate_events(events: pd.DataFrame, analyzer: Analyzer, *, reason_ids: Collection[str] | None = None,
                    batch_size: int = 256) -> pd.DataFrame:
    """A copy of ``events`` with the text-analysis columns of :data:`churn.schema.TEXT_COLUMNS` filled.

    Args:
        events: a feedback table with a ``text`` column.
        analyzer: its ``heads`` say which columns it can fill (see :func:`text_cells`).
        reason_ids: keep only these text reason ids (None: all the analyzer reports).
        batch_size: distinct texts per ``analyze`` call.
    """
    if "text" not in events.columns:
        raise ValueError("events have no 'text' column to analyse")
    reasons_ran = "reasons" in analyzer.heads
    analyzer = analyzer.without(*(h for h in UNUSED_HEADS if h in analyzer.heads))
    texts = events["text"].map(lambda t: t.strip() if isinstance(t, str) and t.strip() else None)
    unique = list(pd.unique(texts.dropna()))
    results: dict[str, tuple] = {}
    for i in range(0, len(unique), batch_size):
        batch = unique[i:i + batch_size]
        for text, analysis in zip(batch, analyzer.analyze(batch)):
            results[text] = text_cells(analysis, reasons_ran, reason_ids)
    rows = [results[t] if t is not None else MISSING for t in texts]
    out = events.copy()
    out["sentiment_score"] = np.array([r[0] for r in rows], dtype=float)
    out["text_reasons"] = pd.Series([r[1] for r in rows], index=events.index, dtype=object)
    out["churn_intent"] = np.array([r[2] for r in rows], dtype=float)
    out["churn_intent_score"] = np.array([r[3] for r in rows], dtype=float)
    out["competitors"] = pd.Series([r[4] for r in rows], index=events.index, dtype=object)
    return out


HEADS = ("sentiment", "reasons", "signals")


def text_heads(analyzer: Analyzer) -> list[str]:
    """The churn-relevant heads this analyzer has (recorded on the model card)."""
    return [head for head in HEADS if head in analyzer.heads]


def annotate_tables(tables: ChurnTables, analyzer: Analyzer, *,
                    reason_ids: Collection[str] | None = None) -> ChurnTables:
    """The same tables with the feedback's text-analysis columns filled by ``analyzer``.

    Example:
        >>> from churn import annotate_tables, simulate
        >>> from nlp import load_default
        >>> tables = annotate_tables(simulate(200, seed=3).tables, load_default())
    """
    return replace(tables, feedback=annotate_events(tables.feedback, analyzer, reason_ids=reason_ids))
