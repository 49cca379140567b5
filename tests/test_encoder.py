from __future__ import annotations

import numpy as np
import pytest

from nlp.encoder import Encoder, resolve_model_source


def test_embeddings_are_unit_vectors_in_input_order(encoder):
    texts = ["a much longer piece of feedback about a broken router", "short", "medium length text"]
    batch = encoder.encode(texts)
    assert batch.shape == (3, encoder.dim) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(batch, singles, atol=1e-4)


def test_empty_batch_has_stable_shape(encoder):
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_paraphrases_across_languages_are_closer_than_unrelated_text(encoder):
    en, sv, pl, other = encoder.encode(
        [
            "I was charged twice on my invoice.",
            "Jag blev debiterad två gånger på min faktura.",
            "Zostałem obciążony dwa razy na fakturze.",
            "The technician arrived on time and was very friendly.",
        ]
    )
    assert en @ sv > en @ other + 0.05
    assert en @ pl > en @ other + 0.05


def test_long_text_is_truncated_not_rejected(encoder):
    vector = encoder.encode(["word " * 5000])
    assert vector.shape == (1, encoder.dim) and np.isfinite(vector).all()


def test_local_directory_source_loads(encoder, settings):
    path = resolve_model_source("builtin:multilingual-e5-small", settings.model_dir)
    local = Encoder.load(path, settings.model_dir, max_length=64)
    text = ["Tack för hjälpen!"]
    assert np.allclose(local.encode(text), encoder.encode(text), atol=1e-4)


def test_unknown_builtin_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown builtin encoder"):
        resolve_model_source("builtin:nope", tmp_path)
