"""Topic quality on real feedback: telco NPS verbatims (coherence, diversity, outliers, fit time)
and NHS patient comments (agreement with human categories). Ends with one JSON line.

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


def _topic_quality(model, texts: list[str]) -> dict:
    analyzer = model.bertopic_.vectorizer_model.build_analyzer()
    docs = [set(analyzer(t)) for t in texts]
    keywords = [t.keywords for t in model.topics_]
    return {
        "n_topics": len(model.topics_),
        "outlier_share_before": round(model.outlier_share_before_, 4),
        "outlier_share_after": round(model.outlier_share_, 4),
        "npmi": round(topic_coherence_npmi(keywords, docs), 4),
        "diversity": round(topic_diversity(keywords), 4),
        "fit_seconds": round(model.fit_seconds_, 1),
    }


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


def topics_section(
    embed: Callable[[list[str], str], np.ndarray],
    encoder_factory: Callable[[], object],
    data_dir: Path,
    nhs_texts: int = 3000,
) -> dict:
    """``embed(texts, name)`` returns cached embeddings; the encoder embeds candidate keywords."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from nlp.topics.config import TopicModelConfig
    from nlp.topics.model import TopicModel

    encoder = encoder_factory()
    results = {}
    texts = telco_verbatims(data_dir)
    vectors = embed(texts, "telco_topics")
    print(f"\n== Topics: telco NPS verbatims ({len(texts)} unique texts), UMAP + HDBSCAN ==", flush=True)
    for name, config in (("default", TopicModelConfig()),):
        model = TopicModel(config).fit(texts, vectors, encoder)
        results[f"telco_{name}"] = _topic_quality(model, texts)
        print(f"{name}: {results[f'telco_{name}']}", flush=True)
        if name == "default":
            for topic in sorted(model.topics_, key=lambda t: -t.size)[:15]:
                print(f"  {topic.id:>3} {topic.size:>5}  {topic.label}")

    nhs = nhs_phase1_frame(data_dir, nhs_texts)
    texts = nhs["text"].tolist()
    vectors = embed(texts, "nhs_phase1_topics")
    print(f"\n== Topics: NHS phase-1 comments ({len(texts)} sampled), agreement with human categories ==")
    for name, config in (
        ("default", TopicModelConfig()),
        ("kmeans_9", TopicModelConfig(clustering="kmeans", n_topics=9)),
    ):
        model = TopicModel(config).fit(texts, vectors, encoder)
        topics = np.asarray(model.document_topics_)
        row = _topic_quality(model, texts)
        for column in ("label", "subcategory"):
            row[f"nmi_{column}"] = round(float(normalized_mutual_info_score(nhs[column], topics)), 4)
            row[f"ari_{column}"] = round(float(adjusted_rand_score(nhs[column], topics)), 4)
        results[f"nhs_{name}"] = row
        print(f"{name}: {row}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "benchmarks")
    parser.add_argument("--nhs-texts", type=int, default=3000)
    args = parser.parse_args()

    from nlp.pipeline import AnalyzerConfig, build_encoder

    encoder = None

    def encoder_factory():
        nonlocal encoder
        encoder = encoder or build_encoder(AnalyzerConfig())
        return encoder

    def embed(texts: list[str], name: str) -> np.ndarray:
        return cached_embeddings(encoder_factory, texts, name, args.cache_dir)

    print(json.dumps({"topics": topics_section(embed, encoder_factory, args.data_dir, args.nhs_texts)}))


if __name__ == "__main__":
    main()
