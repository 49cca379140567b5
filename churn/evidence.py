"""The records behind a reason: the quote, the NPS answers with dates, the ticket numbers.

Built from the same :class:`churn.features.PointInTime` view the features came from, so evidence
never shows anything the score could not see. Looked up per customer and feature group only for
the reasons actually shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd

from churn.features import DAY, PointInTime

QUOTE_CHARS = 280
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _when(moment) -> str | None:
    return None if pd.isna(moment) else pd.Timestamp(moment).isoformat()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS - 1].rstrip() + "…"


def quote(text, match: Callable[[str], bool] | None = None) -> str | None:
    """The first sentence of ``text`` that ``match`` accepts, else the whole text (shortened)."""
    if not isinstance(text, str) or not text.strip():
        return None
    if match is not None:
        for sentence in _SENTENCE_END.split(text.strip()):
            if sentence.strip() and match(sentence):
                return _short(sentence)
    return _short(text)


class Evidence:
    """Evidence per (customer, feature group) from a point-in-time view.

    ``intent_sentence`` tells whether one sentence states an intent to leave (e.g.
    ``nlp.signals.churn_intent``); without it a churn-intent quote is the whole message.
    """

    def __init__(self, view: PointInTime, window_days: int,
                 intent_sentence: Callable[[str], bool] | None = None):
        self.cutoff, self.start = view.cutoff, view.cutoff - window_days * DAY
        self.feedback = {k: v.sort_values("timestamp", kind="stable") for k, v in view.feedback.groupby("customer_id")}
        self.tickets = {k: v.sort_values("opened_at", kind="stable") for k, v in view.tickets.groupby("customer_id")}
        self.intent_sentence = intent_sentence

    def __call__(self, customer_id: str, group: str) -> dict:
        """Evidence for one reason; empty when the group has none to show."""
        events = self.feedback.get(customer_id)
        tickets = self.tickets.get(customer_id)
        if group in ("tickets", "open_tickets"):
            if tickets is None:
                return {}
            rows = tickets[tickets["opened_at"] >= self.start] if group == "tickets" else \
                tickets[tickets["resolved_at"].isna()]
            return {"tickets": [_ticket(t) for t in rows.itertuples(index=False)]}
        if events is None:
            return {}
        recent = events[events["timestamp"] >= self.start]
        if group == "churn_intent":
            said = events[(events["churn_intent"] > 0) | (events["churn_intent_score"] >= 0.5)]
            return _message(said.iloc[-1], quote(said.iloc[-1]["text"], self.intent_sentence)) if len(said) else {}
        if group == "competitor_mentions":
            named = recent[recent["competitors"].map(bool).astype(bool)]
            if not len(named):
                return {}
            last = named.iloc[-1]
            names = list(last["competitors"])
            found = quote(last["text"], lambda s: any(n.lower() in s.lower() for n in names))
            return {**_message(last, found), "competitors": names}
        if group == "nps":
            answers = events[events["nps"].notna()].tail(2)
            return {"answers": [{**_message(a), "nps": int(a["nps"])} for _, a in answers.iloc[::-1].iterrows()]}
        if group in ("effort", "satisfaction"):
            score = "ces" if group == "effort" else "csat"
            answers = events[events[score].notna()]
            return {**_message(answers.iloc[-1]), score: int(answers.iloc[-1][score])} if len(answers) else {}
        if group == "sentiment":
            scored = recent[recent["sentiment_score"].notna()]
            if not len(scored):
                return {}
            worst = scored.loc[scored["sentiment_score"].idxmin()]
            return {**_message(worst, quote(worst["text"])), "sentiment": round(float(worst["sentiment_score"]), 3)}
        if group.startswith("reason:"):
            reason = group.split(":", 1)[1]
            cited = recent[[reason in (p or ()) or reason in (t or ())
                            for p, t in zip(recent["reasons"], recent["text_reasons"])]]
            return {"messages": [_message(m, quote(m["text"])) for _, m in cited.tail(3).iloc[::-1].iterrows()]}
        return {}


def _message(row: pd.Series, text: str | None = None) -> dict:
    feedback_id = row.get("feedback_id")
    out = {"feedback_id": None if pd.isna(feedback_id) else str(feedback_id), "at": _when(row["timestamp"])}
    return {**out, "quote": text} if text is not None else out


def _ticket(t) -> dict:
    return {"ticket_id": None if pd.isna(t.ticket_id) else str(t.ticket_id), "opened_at": _when(t.opened_at), "resolved_at": _when(t.resolved_at),
            "reopened": int(t.reopened)}
