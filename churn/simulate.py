"""Seeded multilingual CX histories driven by an explicit latent-dissatisfaction process.

No public dataset pairs feedback text with churn, so the demo, tests and benchmark use this.
Lift measured on it is lift on simulated data. The process, week by week, per customer:

* dissatisfaction ``d = base + stress + noise``: ``base`` is a per-customer level (cheaper plans
  a little higher), ``noise`` an AR(1) wobble, and ``stress`` a sum of *problem episodes* that
  start at random (mostly in the customer's own weak spot, the ``pain`` reason) and decay
  by 12% a week; badly handled tickets (reopened or slow) add a customer-support episode;
* tickets arrive faster under stress; first response, resolution and reopen counts worsen with it;
* a customer *decides to leave* with probability ``sigmoid(-6.8 + 1.5 d)`` and churns 1-10 weeks
  later; while leaving they often say so (churn-intent and competitor phrases), mostly in
  unscored channels (social, chat, email, review) that only text analysis can read;
* a small background churn (moves, deaths, business closures) no signal explains;
* relational NPS surveys every 13 weeks (30% answer), transactional surveys after tickets
  (CES, CSAT, sometimes NPS); scores follow ``d``; NPS+ reasons are the current episode's reason
  (60%) or a random one; the "why" text names the episode's reason in the customer's language.

``perfect_text=True`` fills the feedback's text-analysis columns with what each text was written
to say (an ideal analyzer): an upper bound for what text features can add, never a measurement.

``sparse`` gives that share of customers the shape real imports often have: one NPS answer at a
random moment of their history and nothing else recorded (no other feedback, no tickets, no
segments or revenue), so a model trained here has seen customers it knows little about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.phrasebook import (
    CHURN_INTENT, COMPETITORS, NEGATIVE, NEUTRAL, POSITIVE, REASON_IDS, SWITCHING,
)
from churn.schema import ChurnTables, validate_tables
from nlp.arrays import sigmoid

LANGUAGES = ("en", "sv", "pl")
REGIONS = {"en": "UK", "sv": "SE", "pl": "PL"}
PLANS = ("basic", "standard", "premium")
PRODUCTS = ("broadband", "mobile", "tv")
SCORED = ("survey", "ticket")
UNSCORED = ("social", "chat", "email", "review")
PROBLEM_REASONS = REASON_IDS[:-1]


@dataclass(frozen=True)
class Simulation:
    """Tables plus the simulator's ground truth (each customer's ``pain`` reason, language)."""

    tables: ChurnTables
    truth: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp


class _Events:
    """Column buffers for one week's feedback rows; joined once at the end."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, **columns: np.ndarray) -> None:
        if len(next(iter(columns.values()))):
            self.parts.append(columns)

    def frame(self, columns: list[str]) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: [] for c in columns})
        return pd.DataFrame({c: np.concatenate([p[c] for p in self.parts]) for c in columns})


def simulate(n_customers: int, *, seed: int = 0, start: str = "2024-01-01", weeks: int = 104,
             language_weights: tuple[float, float, float] = (0.4, 0.35, 0.25),
             perfect_text: bool = False, sparse: float = 0.0) -> Simulation:
    """Simulate ``n_customers`` over ``weeks`` weeks from ``start``; same seed, same tables.

    Args:
        n_customers: how many customers.
        seed: the random seed.
        start: the first day (ISO date).
        weeks: how long the history runs.
        language_weights: shares of English, Swedish and Polish customers.
        perfect_text: annotate texts with what they were written to say (an upper bound for
            text analysis) instead of leaving them to an analyzer.
        sparse: the share of customers shaped like real imports: one NPS answer, no segments,
            no revenue, no tickets.

    Returns:
        A :class:`Simulation`: ``tables`` (customers, feedback, tickets, outcomes), the ground
        truth per customer, and the ``start`` and ``end`` of the history.

    Example:
        >>> from churn import simulate
        >>> sim = simulate(200, seed=1)
        >>> sorted(sim.tables.customers.columns)[:2]
        ['customer_id', 'plan']
    """
    if n_customers < 1 or weeks < 1:
        raise ValueError("n_customers and weeks must be positive")
    if not 0 <= sparse <= 1:
        raise ValueError(f"sparse must be a share in [0, 1], got {sparse}")
    rng = np.random.default_rng(seed)
    start_ts = pd.Timestamp(start)
    n = n_customers
    lang = rng.choice(len(LANGUAGES), n, p=np.asarray(language_weights) / sum(language_weights))
    plan = rng.choice(3, n, p=[0.45, 0.4, 0.15])
    product = rng.choice(3, n, p=[0.5, 0.35, 0.15])
    business = rng.random(n) < 0.2
    revenue = np.round(np.exp(rng.normal(np.log([25, 45, 80])[plan], 0.3)) * np.where(business, 3, 1), 2)
    signup_day = np.where(rng.random(n) < 0.7, -rng.integers(0, 4 * 365, n),
                          rng.integers(0, int(weeks * 7 * 0.8), n))
    signup_week = np.floor(signup_day / 7).astype(int)
    base = rng.normal(0, 0.5, n) + np.array([0.25, 0.0, -0.25])[plan]
    pain = rng.choice(len(PROBLEM_REASONS), n)
    episode_rate = 0.02 * np.exp(rng.normal(0, 0.5, n))
    survey_phase = rng.integers(0, 13, n)

    stress = np.zeros(n)
    noise = np.zeros(n)
    reason = pain.copy()
    leave_week = np.full(n, -1)
    churn_week = np.full(n, -1)
    feedback, tickets = _Events(), _Events()

    for w in range(weeks):
        active = (signup_week <= w) & (churn_week < 0)
        idx = np.flatnonzero(active)
        k = idx.size
        new = rng.random(k) < episode_rate[idx]
        own = rng.random(k) < 0.75
        reason[idx[new]] = np.where(own, pain[idx], rng.choice(len(PROBLEM_REASONS), k))[new]
        stress[idx] = stress[idx] * 0.88 + new * rng.exponential(1.1, k)
        noise[idx] = 0.8 * noise[idx] + rng.normal(0, 0.2, k)
        d = base[idx] + stress[idx] + noise[idx]
        week_start = start_ts + pd.Timedelta(weeks=w)

        hit = idx[_tickets(rng, tickets, idx, d, week_start)]
        stress[hit] += 0.5
        reason[hit] = PROBLEM_REASONS.index("customer_support")
        d = base[idx] + stress[idx] + noise[idx]

        leaving = leave_week[idx] >= 0
        decide = ~leaving & (rng.random(k) < sigmoid(-6.8 + 1.5 * d))
        leave_week[idx[decide]] = w + 1 + rng.geometric(0.25, decide.sum()).clip(max=9)
        leaving = leave_week[idx] >= 0

        _surveys(rng, feedback, idx, d, leaving, reason, lang, w, survey_phase, week_start)
        _unscored(rng, feedback, idx, d, leaving, reason, lang, week_start)

        background = rng.random(k) < 0.0012
        gone = (leaving & (leave_week[idx] <= w)) | background
        churn_week[idx[gone]] = w

    customer_ids = np.array([f"C{i:06d}" for i in range(n)])
    customers = pd.DataFrame({
        "customer_id": customer_ids,
        "signup_date": start_ts + pd.to_timedelta(signup_day, unit="D"),
        "region": np.array([REGIONS[x] for x in LANGUAGES])[lang],
        "product": np.array(PRODUCTS)[product],
        "plan": np.array(PLANS)[plan],
        "segment": np.where(business, "business", "consumer"),
        "revenue": revenue,
    })
    churned_at = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    gone = churn_week >= 0
    churned_at[gone] = (start_ts + pd.to_timedelta(churn_week[gone] * 7 + rng.uniform(0, 7, gone.sum()), unit="D")).values
    outcomes = pd.DataFrame({"customer_id": customer_ids, "churned_at": churned_at.values})
    fb = feedback.frame(["customer", "timestamp", "channel", "survey_type", "nps", "ces", "csat",
                         "picked", "text_reason", "sentiment", "intent", "competitor", "variant", "lang"])
    tk = tickets.frame(["customer", "opened_at", "first_response_at", "resolved_at", "reopened"])
    end = start_ts + pd.Timedelta(weeks=weeks)
    feedback_frame = _feedback_frame(fb, customer_ids, rng)
    if perfect_text:
        feedback_frame = feedback_frame.assign(**_perfect_analysis(fb))
    ticket_frame = pd.DataFrame({
        "customer_id": customer_ids[tk["customer"].astype(int)],
        "opened_at": tk["opened_at"].astype("datetime64[ns]"),
        "first_response_at": tk["first_response_at"].astype("datetime64[ns]"),
        "resolved_at": tk["resolved_at"].astype("datetime64[ns]"),
        "reopened": tk["reopened"].astype(int),
    })
    ticket_frame.loc[ticket_frame["first_response_at"] > end, "first_response_at"] = pd.NaT
    ticket_frame.loc[ticket_frame["resolved_at"] > end, "resolved_at"] = pd.NaT
    if sparse > 0:
        customers, feedback_frame, ticket_frame = _sparse(rng, sparse, customers, feedback_frame, ticket_frame)
    tables = validate_tables(
        customers, feedback_frame.sort_values("timestamp", kind="stable").reset_index(drop=True),
        ticket_frame.sort_values("opened_at", kind="stable").reset_index(drop=True), outcomes,
        reason_ids=REASON_IDS, as_of=end)
    truth = pd.DataFrame({"customer_id": customer_ids, "pain": np.array(PROBLEM_REASONS)[pain],
                          "language": np.array(LANGUAGES)[lang]})
    return Simulation(tables, truth, start_ts, end)


def _sparse(rng, share: float, customers: pd.DataFrame, feedback: pd.DataFrame, tickets: pd.DataFrame):
    """A ``share`` of customers keep one random NPS answer and nothing else (see the module doc)."""
    chosen = set(customers["customer_id"][rng.random(len(customers)) < share])
    customers = customers.copy()
    thin = customers["customer_id"].isin(chosen)
    customers.loc[thin, ["region", "product", "plan", "segment"]] = None
    customers.loc[thin, "revenue"] = np.nan
    mine = feedback["customer_id"].isin(chosen).to_numpy()
    answers = feedback[mine & feedback["nps"].notna().to_numpy()]
    one = answers.sample(frac=1.0, random_state=rng).drop_duplicates("customer_id").index
    feedback = feedback[~mine | feedback.index.isin(one)].reset_index(drop=True)
    return customers, feedback, tickets[~tickets["customer_id"].isin(chosen)].reset_index(drop=True)


def _tickets(rng, out: _Events, idx, d, week_start) -> np.ndarray:
    """Open this week's tickets; returns which customers had one handled badly."""
    k = idx.size
    count = np.minimum(rng.poisson(0.01 + 0.05 * np.clip(d, 0, 4)), 3)
    rows = np.repeat(np.arange(k), count)
    m = rows.size
    strain = np.clip(d[rows], 0, 4)
    opened = week_start + pd.to_timedelta(rng.uniform(0, 7 * 24, m), unit="h")
    frt = np.exp(rng.normal(np.log(3) + 0.35 * strain, 0.9))
    art = frt + np.exp(rng.normal(np.log(20) + 0.4 * strain, 1.0))
    reopened = rng.poisson(0.1 + 0.25 * strain)
    unresolved = rng.random(m) < 0.03 + 0.04 * strain
    resolved = (opened + pd.to_timedelta(art, unit="h")).values.astype("datetime64[ns]")
    resolved[unresolved] = np.datetime64("NaT")
    out.add(customer=idx[rows], opened_at=opened.values,
            first_response_at=(opened + pd.to_timedelta(frt, unit="h")).values,
            resolved_at=resolved, reopened=reopened)
    bad = np.zeros(k, dtype=bool)
    bad[rows[(reopened > 0) | unresolved | (art > 96)]] = True
    return bad


def _surveys(rng, out: _Events, idx, d, leaving, reason, lang, w, phase, week_start) -> None:
    k = idx.size
    relational = (phase[idx] == w % 13) & (rng.random(k) < 0.3)
    transactional = ~relational & (rng.random(k) < 0.01 + 0.015 * np.clip(d, 0, 3))
    take = relational | transactional
    sel = np.flatnonzero(take)
    m = sel.size
    if not m:
        return
    dd = d[sel]
    nps = np.clip(np.round(9 - 2.0 * dd + rng.normal(0, 1.3, m)), 0, 10)
    trans = transactional[sel]
    nps = np.where(trans & (rng.random(m) < 0.5), np.nan, nps)
    ces = np.where(trans, np.clip(np.round(2 + 1.3 * np.clip(dd, 0, None) + rng.normal(0, 1, m)), 1, 7), np.nan)
    csat = np.where(trans, np.clip(np.round(4.4 - 0.9 * dd + rng.normal(0, 0.7, m)), 1, 5), np.nan)
    observed = np.where(np.isnan(nps), 9 - 2.0 * dd + rng.normal(0, 1.3, m), nps)
    sentiment = np.where(observed <= 6, 0, np.where(observed <= 8, 1, 2))
    ep = reason[idx[sel]]
    picked = np.where(rng.random(m) < 0.6, ep, rng.choice(len(PROBLEM_REASONS), m))
    picked = np.where((sentiment < 2) & (rng.random(m) < 0.8), picked, -1)
    has_text = rng.random(m) < 0.7
    intent = leaving[sel] & has_text & (rng.random(m) < 0.4)
    sentiment = np.where(intent, 0, sentiment)
    _add_feedback(rng, out, idx[sel], week_start, np.where(trans, "ticket", "survey"),
                  np.where(trans, "transactional", "relational"), nps, ces, csat, picked,
                  np.where(has_text, ep, -1), np.where(has_text, sentiment, -1), intent, lang)


def _unscored(rng, out: _Events, idx, d, leaving, reason, lang, week_start) -> None:
    """Posts, chats and e-mails: text only, more of them from unhappy and leaving customers."""
    k = idx.size
    rate = 0.004 + 0.012 * np.clip(d, 0, 3) + 0.25 * leaving
    sel = np.flatnonzero(rng.random(k) < rate)
    m = sel.size
    if not m:
        return
    dd = d[sel] + rng.normal(0, 0.6, m)
    sentiment = np.where(dd > 0.8, 0, np.where(dd > 0.0, 1, 2))
    intent = leaving[sel] & (rng.random(m) < 0.55)
    sentiment = np.where(intent, 0, sentiment)
    nan = np.full(m, np.nan)
    _add_feedback(rng, out, idx[sel], week_start, rng.choice(np.array(UNSCORED), m),
                  np.full(m, None, dtype=object), nan, nan, nan, np.full(m, -1),
                  reason[idx[sel]], sentiment, intent, lang)


def _add_feedback(rng, out, customers, week_start, channel, survey_type, nps, ces, csat, picked,
                  text_reason, sentiment, intent, lang) -> None:
    m = customers.size
    competitor = np.where(intent & (rng.random(m) < 0.5), rng.integers(0, 3, m), -1)
    out.add(customer=customers,
            timestamp=(week_start + pd.to_timedelta(rng.uniform(0, 7 * 24 * 3600, m), unit="s")).values,
            channel=np.asarray(channel, dtype=object), survey_type=np.asarray(survey_type, dtype=object),
            nps=nps, ces=ces, csat=csat, picked=picked, text_reason=text_reason, sentiment=sentiment,
            intent=intent, competitor=competitor, variant=rng.integers(0, 4, m), lang=lang[customers])


def _feedback_frame(fb: pd.DataFrame, customer_ids: np.ndarray, rng) -> pd.DataFrame:
    """Write each row's "why" text from the phrasebook; picked reasons become id lists."""
    reasons = np.array(PROBLEM_REASONS)
    texts = [
        _text(int(s), int(r), bool(i), int(c), int(v), LANGUAGES[int(g)])
        for s, r, i, c, v, g in zip(fb["sentiment"], fb["text_reason"], fb["intent"],
                                    fb["competitor"], fb["variant"], fb["lang"])
    ]
    picked = [[reasons[int(p)]] if p >= 0 else [] for p in fb["picked"]]
    return pd.DataFrame({
        "customer_id": customer_ids[fb["customer"].astype(int)],
        "timestamp": fb["timestamp"].astype("datetime64[ns]"),
        "channel": fb["channel"].astype(str),
        "survey_type": fb["survey_type"].where(fb["survey_type"].notna(), None),
        "nps": fb["nps"].astype(float),
        "ces": fb["ces"].astype(float),
        "csat": fb["csat"].astype(float),
        "reasons": picked,
        "text": texts,
    })


def _perfect_analysis(fb: pd.DataFrame) -> dict[str, list]:
    """The text-analysis columns an ideal analyzer would return for each written text."""
    has_text = (fb["sentiment"] >= 0).to_numpy()
    sentiment = np.where(has_text, np.array([-0.8, 0.0, 0.8])[fb["sentiment"].clip(0, 2).astype(int)], np.nan)
    reasons = [((PROBLEM_REASONS[int(r)],) if s < 2 else ()) if t else None
               for t, s, r in zip(has_text, fb["sentiment"], fb["text_reason"])]
    intent = np.where(has_text, fb["intent"].astype(float), np.nan)
    competitors = [(COMPETITORS[LANGUAGES[int(g)]][int(c)],) if c >= 0 else () if t else None
                   for t, c, g in zip(has_text, fb["competitor"], fb["lang"])]
    return {"sentiment_score": sentiment, "text_reasons": reasons, "churn_intent": intent,
            "churn_intent_score": intent, "competitors": competitors}


def _text(sentiment: int, reason: int, intent: bool, competitor: int, variant: int, lang: str) -> str | None:
    if sentiment < 0:
        return None
    parts = []
    if sentiment == 0:
        parts.append(NEGATIVE[PROBLEM_REASONS[reason]][lang][variant % 2])
    elif sentiment == 1:
        parts.append(NEUTRAL[PROBLEM_REASONS[reason]][lang])
    else:
        parts.append(POSITIVE[lang][variant])
    if intent:
        parts.append(CHURN_INTENT[lang][variant // 2])
    if competitor >= 0:
        parts.append(SWITCHING[lang].format(competitor=COMPETITORS[lang][competitor]))
    return " ".join(parts)
