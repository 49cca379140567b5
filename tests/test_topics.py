"""Topic model (BERTopic over the shared encoder), stable ids, persistence, trends and `cxm topics`."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import normalized_mutual_info_score
from typer.testing import CliRunner

from api.cli import app
from nlp.analyzer import FeedbackAnalyzer
from nlp.pipeline import build_topic_tagger
from nlp.topics.config import TopicModelConfig
from nlp.topics.keywords import LABEL_SEPARATOR, dedupe_keywords
from nlp.topics.model import TopicModel
from nlp.topics.tagger import TopicTagger
from nlp.topics.trends import emerging_topics, flag_emerging, topic_trends
from nlp.topics.vectorizer import build_vectorizer

runner = CliRunner()

THEMES = {
    "billing": {
        "en": ["I was charged twice on my {m} invoice", "The bill for {m} is wrong, please refund me",
               "Why is my invoice higher in {m}?", "Double charge on the {m} bill again"],
        "sv": ["Jag fick dubbel faktura i {m}", "Fakturan för {m} är fel, jag vill ha pengarna tillbaka",
               "Varför är räkningen högre i {m}?"],
        "pl": ["Dostałem podwójną fakturę za {m}", "Rachunek za {m} jest błędny, proszę o zwrot",
               "Dlaczego faktura za {m} jest wyższa?"],
    },
    "delivery": {
        "en": ["The router was delivered {d} days late", "My parcel never arrived after {d} days",
               "Delivery took {d} days and the courier lost the box", "Still waiting for the package after {d} days"],
        "sv": ["Routern levererades {d} dagar för sent", "Paketet kom aldrig fram efter {d} dagar",
               "Leveransen tog {d} dagar"],
        "pl": ["Router dostarczono {d} dni za późno", "Paczka nie dotarła po {d} dniach",
               "Dostawa trwała {d} dni, kurier zgubił przesyłkę"],
    },
    "support": {
        "en": ["The support agent {s} was rude on the phone", "Customer service {s} never called me back",
               "I waited an hour on hold before {s} answered", "Support staff like {s} were unhelpful"],
        "sv": ["Kundtjänsten ({s}) var otrevlig i telefon", "Supporten ringde aldrig tillbaka, hälsningar {s}",
               "Jag väntade en timme i telefonkön innan {s} svarade"],
        "pl": ["Konsultant {s} był niemiły przez telefon", "Obsługa klienta nigdy nie oddzwoniła, {s}",
               "Czekałem godzinę na infolinii zanim {s} odebrał"],
    },
    "speed": {
        "en": ["My broadband is slow, only {n} Mbps", "The internet keeps dropping, {n} times a day",
               "Wifi speed is terrible, {n} Mbps in the evening", "Connection drops {n} times every night"],
        "sv": ["Bredbandet är långsamt, bara {n} Mbit", "Internet bryts {n} gånger om dagen",
               "Uppkopplingen är hemsk, {n} Mbit på kvällen"],
        "pl": ["Internet jest wolny, tylko {n} Mb/s", "Połączenie zrywa się {n} razy dziennie",
               "Prędkość wifi jest fatalna, {n} Mb/s wieczorem"],
    },
    "praise": {
        "en": ["Great service, thank you {s}!", "Excellent and friendly, {s} sorted everything",
               "Very happy with the installation, {s} was brilliant", "Fantastic experience, well done {s}"],
        "sv": ["Fantastisk service, tack {s}!", "Mycket nöjd, {s} var jättetrevlig",
               "Toppen, {s} löste allt snabbt"],
        "pl": ["Świetna obsługa, dziękuję {s}!", "Bardzo zadowolony, {s} wszystko załatwił",
               "Rewelacja, {s} był bardzo pomocny"],
    },
}
NEW_THEME = {
    "en": ["The mobile app crashes when I open it on {s}'s phone", "App keeps crashing after the update, {n} times",
           "The app freezes on login, tried {n} times"],
    "sv": ["Appen kraschar när jag öppnar den, {n} gånger", "Appen fryser vid inloggning, {s}"],
    "pl": ["Aplikacja się zawiesza przy logowaniu, {n} razy", "Aplikacja ciągle się wyłącza, {s}"],
}
FILL = {"m": ["January", "March", "May", "July", "October"], "d": ["3", "5", "7", "10", "14"],
        "s": ["Anna", "Erik", "Piotr", "Maria", "John"], "n": ["2", "5", "10", "20", "3"]}


def _generate(templates_by_lang: dict[str, list[str]], n: int, rng: random.Random) -> list[str]:
    flat = [t for ts in templates_by_lang.values() for t in ts]
    out = set()
    while len(out) < n:
        template = rng.choice(flat)
        out.add(template.format(**{k: rng.choice(v) for k, v in FILL.items()}))
    return sorted(out)


@pytest.fixture(scope="session")
def corpus(encoder, language_detector):
    """150 short texts in five themes (en/sv/pl) plus 30 of a new theme, encoded once."""
    rng = random.Random(3)
    texts, themes = [], []
    for theme, templates in THEMES.items():
        generated = _generate(templates, 30, rng)
        texts += generated
        themes += [theme] * len(generated)
    new = _generate(NEW_THEME, 30, rng)
    all_texts = texts + new
    embeddings = encoder.encode(all_texts)
    languages = language_detector.detect(all_texts)
    return {"texts": texts, "themes": np.array(themes), "embeddings": embeddings[: len(texts)],
            "languages": languages[: len(texts)], "new_texts": new, "new_embeddings": embeddings[len(texts):],
            "new_languages": languages[len(texts):]}


FAST = TopicModelConfig(reduction="pca", n_components=10, clustering="kmeans", n_topics=5, keyword_candidates=20)


@pytest.fixture(scope="session")
def fitted(corpus, encoder):
    return TopicModel(FAST).fit(corpus["texts"], corpus["embeddings"], encoder, languages=corpus["languages"])


def _majority(ids, themes) -> dict[str, int]:
    frame = pd.DataFrame({"id": ids, "theme": themes})
    return frame.groupby("theme")["id"].agg(lambda s: s.mode().iloc[0]).to_dict()


def test_topics_follow_themes_across_languages(fitted, corpus):
    ids = np.array(fitted.document_topics_)
    majority = _majority(ids, corpus["themes"])
    assert len(set(majority.values())) == 5, majority
    purity = np.mean([ids[i] == majority[t] for i, t in enumerate(corpus["themes"])])
    assert purity >= 0.85
    for topic in fitted.topics_:
        assert topic.label and topic.label.count(" · ") == 2
        assert len(set(topic.keywords)) == len(topic.keywords)


def _texts_of(model, corpus, topic_id, language):
    return [t for t, i, lang in zip(corpus["texts"], model.document_topics_, corpus["languages"])
            if i == topic_id and lang == language]


def _in_texts(phrase: str, texts: list[str]) -> bool:
    return any(all(word in text.lower() for word in phrase.split()) for text in texts)


def test_labels_speak_one_language_and_keywords_come_per_language(fitted, corpus, encoder):
    """Labels once mixed three languages ('brak odpowiedzi · czekałem minut · försöker betala')."""
    for topic in fitted.topics_:
        english = _texts_of(fitted, corpus, topic.id, "en")
        assert topic.label_language == "en" and set(topic.keywords_by_language) == {"en", "sv", "pl"}
        assert all(_in_texts(w, english) for w in topic.label.split(LABEL_SEPARATOR)), topic
        for language, words in topic.keywords_by_language.items():
            assert words and all(_in_texts(w, _texts_of(fitted, corpus, topic.id, language)) for w in words)
        assert topic.representative in english and sum(topic.languages.values()) == topic.size
    swedish = TopicModel(replace(FAST, display_language="sv")).fit(
        corpus["texts"], corpus["embeddings"], encoder, languages=corpus["languages"])
    for topic in swedish.topics_:
        assert topic.label_language == "sv"
        assert all(_in_texts(w, _texts_of(swedish, corpus, topic.id, "sv")) for w in topic.label.split(LABEL_SEPARATOR))
    with pytest.raises(ValueError, match="languages"):
        TopicModel(FAST).fit(corpus["texts"], corpus["embeddings"], languages=["en"])


@pytest.fixture(scope="session")
def cx_two_reasons(encoder):
    """Real hand-written billing and delivery feedback (data/cx train rows), 25 per reason and language."""
    rows = []
    for language in ("en", "sv", "pl"):
        frame = pd.read_csv(Path(__file__).parents[1] / "data" / "cx" / f"train_reasons_{language}.csv")
        frame["reason"] = frame["reasons"].astype(str).str.split(";").str[0]
        rows.append(frame[frame["reason"].isin(["billing", "delivery"])].groupby("reason").head(25))
    frame = pd.concat(rows, ignore_index=True)
    return frame, encoder.encode(frame["text"].tolist())


def test_cross_language_duplicates_of_one_theme_merge(cx_two_reasons):
    frame, embeddings = cx_two_reasons
    six = TopicModelConfig(reduction="pca", n_components=10, clustering="kmeans", n_topics=6, keyword_candidates=20)
    texts, languages = frame["text"].tolist(), frame["lang"].tolist()
    split = TopicModel(replace(six, merge_similarity=1.0)).fit(texts, embeddings, languages=languages)
    merged = TopicModel(six).fit(texts, embeddings, languages=languages)
    # without merging, k-means cuts along languages: each topic is mostly one language
    assert split.merged_pairs_ == [] and all(max(t.languages.values()) >= 0.8 * t.size for t in split.topics_)
    assert len(merged.topics_) < len(split.topics_) and merged.merged_pairs_
    assert all(len(t.languages) == 3 and t.label_language == "en" for t in merged.topics_)
    majority = frame.assign(topic=merged.document_topics_).groupby("topic")["reason"].agg(lambda s: s.mode().iloc[0])
    assert set(majority) == {"billing", "delivery"}
    # topics no longer tell the language: NMI of topic and language falls from most to almost none
    nmi = {name: normalized_mutual_info_score(frame["lang"], model.document_topics_)
           for name, model in (("split", split), ("merged", merged))}
    assert nmi["split"] > 0.5 and nmi["merged"] < 0.1, nmi


def test_vectorizer_drops_stop_words_in_all_three_languages():
    vocabulary = build_vectorizer(ngram_range=(1, 1)).fit(
        ["the router and the box", "jag och routern är inte här", "nie mam i nie chcę routera 100"]
    ).vocabulary_
    assert {"router", "routern", "routera", "box"} <= set(vocabulary)
    assert not {"the", "and", "och", "jag", "inte", "här", "nie", "mam", "100"} & set(vocabulary)


def test_dedupe_keywords_drops_inflections_and_translations(encoder):
    words = ["technician", "tekniker", "technik", "invoice", "invoices", "delivery delivery", "delivery"]
    from nlp.topics.representation import WORD_TEMPLATE

    vectors = encoder.encode([WORD_TEMPLATE.format(w) for w in words])
    kept = dedupe_keywords(words, vectors, center=vectors.mean(axis=0), max_similarity=0.45)
    assert kept[0] == "technician" and "invoices" not in kept and "delivery" in kept
    assert "delivery delivery" not in kept
    assert not {"tekniker", "technik"} <= set(kept)
    with pytest.raises(ValueError, match="vectors"):
        dedupe_keywords(words, vectors[:2])


def test_an_unfitted_topic_model_says_so(corpus):
    for use in (TopicModel().predict, TopicModel().predict_proba):
        with pytest.raises(NotFittedError, match="not fitted; call fit"):
            use(corpus["embeddings"])


def test_save_load_round_trip_without_pickles(fitted, corpus, tmp_path):
    fitted.save(tmp_path / "model")
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".json", ".safetensors"}
    loaded = TopicModel.load(tmp_path / "model")
    assert loaded.topics_ == fitted.topics_ and loaded.next_id_ == fitted.next_id_
    np.testing.assert_allclose(loaded.predict_proba(corpus["embeddings"]), fitted.predict_proba(corpus["embeddings"]))
    ids = loaded.predict(corpus["embeddings"])
    best = loaded.predict_proba(corpus["embeddings"]).argmax(axis=1)
    assert ids.tolist() == [loaded.topics_[b].id for b in best] and set(ids.tolist()) <= {t.id for t in loaded.topics_}
    info = loaded.bertopic_.get_topic_info()
    assert len(info) == len(fitted.topics_)
    (tmp_path / "model" / "bertopic" / "evil.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match="pickle"):
        TopicModel.load(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="topics fit"):
        TopicModel.load(tmp_path / "missing")


def test_refit_on_shuffled_extended_data_keeps_ids(fitted, corpus, encoder):
    order = np.random.default_rng(0).permutation(len(corpus["texts"]))
    texts = [corpus["texts"][i] for i in order] + corpus["new_texts"]
    embeddings = np.vstack([corpus["embeddings"][order], corpus["new_embeddings"]])
    themes = list(corpus["themes"][order]) + ["app"] * len(corpus["new_texts"])
    config = TopicModelConfig(reduction="pca", n_components=10, clustering="kmeans", n_topics=6, keyword_candidates=20, seed=7)
    languages = [corpus["languages"][i] for i in order] + corpus["new_languages"]
    refit = TopicModel(config).fit(texts, embeddings, encoder, previous=fitted, languages=languages)
    before = _majority(fitted.document_topics_, corpus["themes"])
    after = _majority(refit.document_topics_, themes)
    assert {t: after[t] for t in before} == before
    assert after["app"] >= fitted.next_id_ and refit.next_id_ == after["app"] + 1
    assert refit.topic(before["billing"]).label_language == "en"


def test_outlier_reduction_reassigns_hdbscan_noise(corpus):
    base = dict(reduction="pca", clustering="hdbscan", min_topic_size=8, keyword_candidates=20)
    kept = TopicModel(TopicModelConfig(**base, outlier_strategy="none")).fit(corpus["texts"], corpus["embeddings"])
    reduced = TopicModel(TopicModelConfig(**base)).fit(corpus["texts"], corpus["embeddings"])
    assert kept.outlier_share_ > 0 and kept.outlier_share_ == reduced.outlier_share_before_
    assert reduced.outlier_share_ == 0 and -1 not in reduced.document_topics_


def test_tagger_in_the_analyzer(fitted, corpus, tmp_path, encoder, language_detector, analyzer_config):
    tagger = TopicTagger(fitted, top_k=2)
    texts = ["Fakturan är fel igen, dubbel debitering", "Kurier zgubił paczkę"]
    analyses = FeedbackAnalyzer(encoder, language_detector, topics=tagger).analyze(texts)
    billing = _majority(fitted.document_topics_, corpus["themes"])["billing"]
    delivery = _majority(fitted.document_topics_, corpus["themes"])["delivery"]
    assert [a.topics[0].id for a in analyses] == [billing, delivery]
    assert all(1 <= len(a.topics) <= 2 and a.topics[0].probability > 0.5 for a in analyses)
    assert analyses[0].to_dict()["topics"][0].keys() == {"id", "label", "probability"}

    assert build_topic_tagger(replace(analyzer_config, topic_model=tmp_path / "none")) is None
    fitted.save(tmp_path / "tm")
    configured = build_topic_tagger(replace(analyzer_config, topic_model=tmp_path / "tm"))
    assert isinstance(configured, TopicTagger) and configured.model.topics_ == fitted.topics_


def _feedback_frame() -> pd.DataFrame:
    """Six weeks; topic 2 ("outage") jumps from ~5% to 40% in the last week, only on the app channel."""
    rows = []
    for week in range(6):
        start = pd.Timestamp("2026-01-05") + pd.Timedelta(weeks=week)
        outage = 8 if week == 5 else 1
        for k in range(20):
            topic = 2 if k < outage else (1 if k % 2 else 0)
            rows.append({"timestamp": (start + pd.Timedelta(hours=5 * k)).isoformat(), "topic_id": topic,
                         "topic_label": {0: "price", 1: "billing", 2: "outage"}[topic],
                         "sentiment_score": -0.8 if topic == 2 else 0.2,
                         "channel": "app" if topic == 2 or k % 4 == 0 else "email"})
    return pd.DataFrame(rows)


def test_trends_per_period_and_segment():
    frame = _feedback_frame()
    weekly = topic_trends(frame, "week")
    assert list(weekly.columns) == ["period", "topic_id", "topic_label", "count", "share", "mean_sentiment"]
    assert len(weekly["period"].unique()) == 6 and (weekly["period"].dt.dayofweek == 0).all()
    assert weekly.groupby("period")["share"].sum().round(9).eq(1).all()
    last = weekly[weekly["period"] == weekly["period"].max()].set_index("topic_id")
    assert last.loc[2, "count"] == 8 and last.loc[2, "share"] == pytest.approx(0.4)
    assert last.loc[2, "mean_sentiment"] == pytest.approx(-0.8)
    by_channel = topic_trends(frame, "month", by="channel")
    assert set(by_channel["channel"]) == {"app", "email"}
    assert by_channel["count"].sum() == len(frame)
    assert topic_trends(frame.drop(columns="sentiment_score"), "day")["mean_sentiment"].isna().all()
    with pytest.raises(ValueError, match="period"):
        topic_trends(frame, "year")
    with pytest.raises(ValueError, match="region"):
        topic_trends(frame, "week", by="region")
    with pytest.raises(ValueError, match="not dates"):
        topic_trends(frame.assign(timestamp="soon"), "week")


def test_emerging_topic_with_the_size_of_its_jump():
    frame = _feedback_frame()
    emerging = emerging_topics(frame, "week", baseline_periods=3, min_count=5)
    assert emerging["topic_id"].tolist() == [2]
    row = emerging.iloc[0]
    assert row["share"] == pytest.approx(0.4) and row["baseline_share"] == pytest.approx(0.05)
    assert row["jump"] == pytest.approx(0.35) and row["lift"] == pytest.approx(8.0)
    assert emerging_topics(frame, "week", min_count=9).empty
    assert emerging_topics(frame[frame["timestamp"] < "2026-01-12"], "week").empty


def _trend_table(periods: list[tuple[int, int]]) -> pd.DataFrame:
    """A trends table of two topics: (texts of topic 1, all texts) per week."""
    rows = []
    for week, (mentions, total) in enumerate(periods):
        key = pd.Timestamp("2026-03-02") + pd.Timedelta(weeks=week)
        rows += [(key, 1, "billing", mentions, mentions / total), (key, 0, "other", total - mentions,
                                                                   (total - mentions) / total)]
    return pd.DataFrame(rows, columns=["period", "topic_id", "topic_label", "count", "share"])


def test_an_emerging_topic_jumped_beyond_chance():
    """The same shares (10 % -> 30 %) are chance in 10 texts a week and a jump in 100 a week."""
    few = flag_emerging(_trend_table([(1, 10), (1, 10), (1, 10), (3, 10)]), min_count=1)
    assert few.empty
    unfiltered = flag_emerging(_trend_table([(1, 10), (1, 10), (1, 10), (3, 10)]), min_count=1, alpha=1.0)
    assert unfiltered["p_value"].tolist() == pytest.approx([0.0625], abs=1e-4)  # z = 1.53, pooled 6 of 40
    many = flag_emerging(_trend_table([(10, 100), (10, 100), (10, 100), (30, 100)]), min_count=1)
    assert many["topic_id"].tolist() == [1] and many["p_value"].iloc[0] < 1e-5
    assert many["jump"].iloc[0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="alpha"):
        flag_emerging(_trend_table([(1, 10), (3, 10)]), alpha=0)


def test_trends_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    """Labels and segments come from customers' words: a cell starting with =, +, - or @ is a formula."""
    link = '=HYPERLINK("http://evil.example","x")'
    pd.DataFrame({"text": ["a", "b", "c"], "timestamp": ["2026-02-02", "2026-02-03", "2026-02-10"],
                  "topic_id": [0, 0, 1], "topic_label": [link, link, "-billing"],
                  "channel": ["@SUM(A1)", "+email", "+email"]}).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "trends.csv"
    result = runner.invoke(app, ["topics", "trends", str(tmp_path / "in.csv"), "--by", "channel",
                                 "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["topic_label"] for r in rows} == {"'" + link, "'-billing"}
    assert {r["channel"] for r in rows} == {"'@SUM(A1)", "'+email"}
    assert sum(int(r["count"]) for r in rows) == 3


def test_cli_fit_then_trends(corpus, tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "text": corpus["texts"],
        "timestamp": pd.Timestamp("2026-02-02") + pd.to_timedelta(rng.integers(0, 28, len(corpus["texts"])), "D"),
        "channel": rng.choice(["email", "app"], len(corpus["texts"])),
    })
    frame.to_csv(tmp_path / "feedback.csv", index=False)
    model = tmp_path / "topics"
    fit = runner.invoke(app, ["topics", "fit", str(tmp_path / "feedback.csv"), "--output", str(model),
                              "--reduction", "pca", "--n-topics", "5", "--min-topic-size", "8"])
    assert fit.exit_code == 0, fit.output
    assert TopicModel.exists(model) and "topics from 150 texts" in fit.output

    out = tmp_path / "trends.json"
    trends = runner.invoke(app, ["topics", "trends", str(tmp_path / "feedback.csv"), "--period", "week",
                                 "--by", "channel", "--format", "json", "-o", str(out), "--model", str(model)])
    assert trends.exit_code == 0, trends.output
    rows = json.loads(out.read_text())
    assert sum(r["count"] for r in rows) == 150 and {r["channel"] for r in rows} == {"email", "app"}
    assert set(rows[0]) == {"period", "channel", "topic_id", "topic_label", "count", "share", "mean_sentiment"}

    table = runner.invoke(app, ["topics", "trends", str(tmp_path / "feedback.csv"), "--model", str(model),
                                "--period", "month"])
    assert table.exit_code == 0 and "topic_label" in table.output
    missing = runner.invoke(app, ["topics", "trends", str(tmp_path / "feedback.csv"), "--model", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "topics fit" in missing.output
