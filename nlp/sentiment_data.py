"""Read the labelled sentiment training splits (never the test splits), capped per data set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nlp.results import SENTIMENT_LABELS

# Big sets are capped so one language or source does not drown the others and training fits
# in about 15 minutes on two (shared) CPU cores.
DEFAULT_CAPS = {
    "sentiment_en_airline": 2400,
    "sentiment_pl_polemo_medicine": 3000,
    "sentiment_sv_reviews": 1800,
    "sentiment_sv_social": None,
    "sentiment_pl_allegro_sellers": 1200,
}


def load_training_data(
    data_dir: str | Path, caps: dict[str, int | None] | None = None, seed: int = 0
) -> pd.DataFrame:
    """Rows ``text, label, lang, dataset`` from ``<data_dir>/benchmarks/<name>.train.csv``."""
    caps = DEFAULT_CAPS if caps is None else caps
    frames = []
    for name, cap in caps.items():
        path = Path(data_dir) / "benchmarks" / f"{name}.train.csv"
        if not path.is_file():
            raise FileNotFoundError(f"training split not found: {path}")
        frame = pd.read_csv(path, usecols=["text", "label", "lang"]).dropna(subset=["text", "label"])
        frame = frame[frame["text"].str.strip().astype(bool)]
        bad = set(frame["label"]) - set(SENTIMENT_LABELS)
        if bad:
            raise ValueError(f"{path}: unknown labels {sorted(bad)}")
        if cap is not None and len(frame) > cap:
            frame = frame.sample(n=cap, random_state=seed)
        frames.append(frame.assign(dataset=name))
    return pd.concat(frames, ignore_index=True)
