"""Topic quality on real feedback, cxm's configuration against plain BERTopic defaults on the same
texts and embeddings in the same run: telco NPS verbatims and NHS patient comments (NPMI coherence
over the fitted corpus, diversity, outliers, agreement with the NHS human categories as NMI/ARI),
and the hand-written en/sv/pl train rows of data/cx (cross-language merging: does a topic tell the
language or the reason?), where the merge threshold is also selected. Corpora are subsampled with
a fixed seed to keep the run short on 2 cores. Ends with one JSON line.

Run alone: ``.venv/bin/python -m benchmarks.topics_quality``; ``benchmarks/reasons_topics.py``
calls :func:`topics_section` with its cached embedding function.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SEED = 0


def cached_embeddings(encoder_factory, texts: list[str], name: str, cache_dir: Path) -> np.ndarray:
    """Embed once per distinct list of texts; later runs (of this and ``reasons_topics.py``) read the ``.npy`` back."""
    digest = hashlib.sha1("\x1f".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"{name}-{len(texts)}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    started = time.perf_counter()
    vectors = encoder_factory().encode(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    print(f"embedded {len(texts)} {name} texts in {time.perf_counter() - started:.0f} s", flush=True)
    return vectors


def topic_coherence_npmi(keywords: list[list[str]], analyzer_docs: list[set[str]]) -> float:
    """Mean NPMI of keyword pairs, co-occurrence counted per document (gensim's c_npmi uses 10-word windows)."""
    n = len(analyzer_docs)
    doc_freq: dict[str, set[int]] = {}
    for words in keywords:
        for w in words:
            doc_freq.setdefault(w, {i for i, d in enumerate(analyzer_docs) if w in d})
    scores = []
    for words in keywords:
        pairs = []
        for a in range(len(words)):
            for b in range(a + 1, len(words)):
                both = len(doc_freq[words[a]] & doc_freq[words[b]]) / n
                if both == 0:
                    pairs.append(-1.0)
                    continue
                pa, pb = len(doc_freq[words[a]]) / n, len(doc_freq[words[b]]) / n
                pairs.append(float(np.log(both / (pa * pb)) / -np.log(both)))
        if pairs:
            scores.append(float(np.mean(pairs)))
    return float(np.mean(scores)) if scores else float("nan")


def topic_diversity(keywords: list[list[str]]) -> float:
    """Share of unique words among all topics' keywords (1 = no word shared between topics)."""
    words = [w for ws in keywords for w in ws]
    return len(set(words)) / len(words) if words else float("nan")


def reference_docs(texts: list[str]) -> list[set[str]]:
    """One tokenisation for every model's keywords: uni- and bigrams of letters, stop words kept."""
    from sklearn.feature_extraction.text import CountVectorizer

    from nlp.topics.vectorizer import LETTER_TOKENS

    analyzer = CountVectorizer(token_pattern=LETTER_TOKENS, ngram_range=(1, 2)).build_analyzer()
    return [set(analyzer(t)) for t in texts]


def _quality(keywords: list[list[str]], assignment: np.ndarray, reference: list[set[str]], seconds: float) -> dict:
    return {"n_topics": len(keywords), "outlier_share": round(float(np.mean(assignment == -1)), 4),
            "npmi": round(topic_coherence_npmi(keywords, reference), 4),
            "diversity": round(topic_diversity(keywords), 4), "fit_seconds": round(seconds, 1)}


def fit_cxm(texts: list[str], vectors: np.ndarray, encoder, languages: list[str]) -> tuple[dict, object]:
    """cxm's defaults; keywords are those of each topic's label language (what an analyst reads)."""
    from nlp.topics.config import TopicModelConfig
    from nlp.topics.model import TopicModel

    model = TopicModel(TopicModelConfig()).fit(texts, vectors, encoder, languages=languages)
    keywords = [t.keywords_by_language.get(t.label_language) or t.keywords for t in model.topics_]
    row = _quality(keywords, np.asarray(model.document_topics_), reference_docs(texts), model.fit_seconds_)
    row["outlier_share_before_reassignment"] = round(model.outlier_share_before_, 4)
    row["merged_pairs"] = len(model.merged_pairs_)
    return row, model


def fit_plain_bertopic(texts: list[str], vectors: np.ndarray) -> tuple[dict, np.ndarray, list[str]]:
    """BERTopic's defaults (UMAP 15 neighbours / 5 dims, HDBSCAN min 10, CountVectorizer, top 10
    words) on the same embeddings; only UMAP's seed is fixed, for a repeatable run."""
    from bertopic import BERTopic
    from bertopic.backend import BaseEmbedder
    from umap import UMAP

    started = time.perf_counter()
    umap = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=SEED)
    model = BERTopic(embedding_model=BaseEmbedder(), umap_model=umap)
    topics = np.asarray(model.fit_transform(texts, vectors)[0])
    seconds = time.perf_counter() - started
    ids = sorted(t for t in set(topics.tolist()) if t != -1)
    keywords = [[w for w, _ in model.get_topic(t) if w] for t in ids]
    labels = [model.topic_labels_[t] for t in ids]
    return _quality(keywords, topics, reference_docs(texts), seconds), topics, labels


def _agreement(truth, topics) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"nmi": round(float(normalized_mutual_info_score(truth, topics)), 4),
            "ari": round(float(adjusted_rand_score(truth, topics)), 4)}


def select_merge_similarity(vectors: np.ndarray, reasons: list[str], languages: list[str], group: int = 15,
                            min_precision: float = 0.99) -> dict:
    """The lowest cosine at which merging 15-text groups of different languages is >= 99 % right
    (same first reason), on data/cx train rows: a false merge loses a theme, a missed one only
    leaves a duplicate."""
    from nlp.arrays import unit_rows
    from nlp.topics.languages import language_centred

    centred = language_centred(vectors, languages)
    rng = np.random.default_rng(SEED)
    frame = pd.DataFrame({"reason": reasons, "lang": languages})
    groups = []
    for (reason, lang), rows in frame.groupby(["reason", "lang"]).indices.items():
        rows = rng.permutation(rows)
        groups += [(reason, lang, rows[k:k + group]) for k in range(0, len(rows) - group + 1, group)]
    centroids = unit_rows(np.stack([centred[rows].mean(axis=0) for _, _, rows in groups]))
    similarity = centroids @ centroids.T
    same, cosine = [], []
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if groups[i][1] != groups[j][1]:
                same.append(groups[i][0] == groups[j][0])
                cosine.append(similarity[i, j])
    same, cosine = np.array(same), np.array(cosine)
    for threshold in np.arange(0.2, 0.8, 0.025):
        merged = cosine >= threshold
        if merged.any() and same[merged].mean() >= min_precision:
            return {"merge_similarity": round(float(threshold), 3), "precision": round(float(same[merged].mean()), 4),
                    "recall": round(float(merged[same].mean()), 4), "pairs": int(len(same))}
    raise RuntimeError("no threshold reaches the precision asked for")


def nhs_phase1_frame(data_dir: Path, n: int) -> pd.DataFrame:
    """A seeded sample of NHS phase-1 comments with their human category and subcategory."""
    source = data_dir / "sources" / "nhs_patient_feedback_pxtextmining" / "phase1_text_data.csv"
    frame = pd.read_csv(source).dropna(subset=["feedback", "label"])
    frame["text"] = frame["feedback"].astype(str).str.strip()
    frame = frame[frame["text"].str.len() > 0].drop_duplicates("text")
    return frame.sample(n=min(n, len(frame)), random_state=SEED).reset_index(drop=True)


def telco_verbatims(data_dir: Path) -> list[str]:
    frame = pd.read_csv(data_dir / "sources" / "telco_nps_verbatims_en" / "telco_nps_verbatims.csv")
    return sorted({t.strip() for t in frame["text"].dropna().astype(str) if t.strip()})


def cx_train_rows() -> pd.DataFrame:
    frames = [pd.read_csv(REPO / "data" / "cx" / f"train_reasons_{lang}.csv") for lang in ("en", "sv", "pl")]
    frame = pd.concat(frames, ignore_index=True)
    frame["reason"] = frame["reasons"].astype(str).str.split(";").str[0]
    return frame


def topics_section(
    embed: Callable[[list[str], str], np.ndarray],
    encoder_factory: Callable[[], object],
    data_dir: Path,
    nhs_texts: int = 900,
    telco_texts: int = 600,
) -> dict:
    """``embed(texts, name)`` returns cached embeddings; the encoder embeds candidate keywords."""
    encoder = encoder_factory()
    results = {}

    cx = cx_train_rows()
    cx_vectors = embed(cx["text"].tolist(), "cx_train_topics")
    results["merge_selection"] = select_merge_similarity(cx_vectors, cx["reason"].tolist(), cx["lang"].tolist())
    print(f"\n== Merge threshold on data/cx train rows ({len(cx)} en/sv/pl) ==\n{results['merge_selection']}", flush=True)

    rng = np.random.default_rng(SEED)
    telco = telco_verbatims(data_dir)
    telco = [telco[i] for i in sorted(rng.choice(len(telco), min(telco_texts, len(telco)), replace=False))]
    nhs = nhs_phase1_frame(data_dir, nhs_texts)
    corpora = [("telco", telco, None), ("nhs", nhs["text"].tolist(), nhs), ("cx_en_sv_pl", cx["text"].tolist(), cx)]
    for name, texts, frame in corpora:
        vectors = cx_vectors if frame is cx else embed(texts, f"{name}_topics")
        languages = frame["lang"].tolist() if name == "cx_en_sv_pl" else ["en"] * len(texts)
        print(f"\n== Topics: {name} ({len(texts)} texts, seed {SEED}): cxm vs plain BERTopic ==", flush=True)
        cxm, model = fit_cxm(texts, vectors, encoder, languages)
        plain, plain_topics, plain_labels = fit_plain_bertopic(texts, vectors)
        truths = {"nhs": {"label": nhs["label"], "subcategory": nhs["subcategory"]},
                  "cx_en_sv_pl": {"reason": cx["reason"], "language": cx["lang"]}}.get(name, {})
        for column, truth in truths.items():
            cxm[column] = _agreement(truth, model.document_topics_)
            plain[column] = _agreement(truth, plain_topics)
        results[name] = {"cxm": cxm, "plain_bertopic": plain}
        print(f"cxm:   {cxm}\nplain: {plain}", flush=True)
        for topic in sorted(model.topics_, key=lambda t: -t.size)[:8]:
            print(f"  cxm {topic.size:>5} [{topic.label_language}] {topic.label}  ({dict(topic.languages)})")
        for label in plain_labels[:8]:
            print(f"  plain {label}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "benchmarks")
    parser.add_argument("--nhs-texts", type=int, default=900)
    parser.add_argument("--telco-texts", type=int, default=600)
    args = parser.parse_args()

    from nlp.pipeline import AnalyzerConfig, build_encoder

    encoder = None

    def encoder_factory():
        nonlocal encoder
        encoder = encoder or build_encoder(AnalyzerConfig())
        return encoder

    def embed(texts: list[str], name: str) -> np.ndarray:
        return cached_embeddings(encoder_factory, texts, name, args.cache_dir)

    print(json.dumps({"topics": topics_section(embed, encoder_factory, args.data_dir, args.nhs_texts, args.telco_texts)}))


if __name__ == "__main__":
    main()
