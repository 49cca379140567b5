"""Refit the text model's sentiment or reason head on its frozen features: learning from a few labels.

The fine-tuned layers stay as they are; only a linear head is estimated again, on the mean-pooled
output of the top layers (what the heads read), starting from the current weights and pulled back
towards them (L2), so a few dozen labelled texts move the head where they disagree with it without
re-learning everything else. Seconds on a CPU once the features are computed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from nlp.arrays import sigmoid
from nlp.encoder import mean_pool
from nlp.results import SENTIMENT_LABELS
from nlp.sentiment_model import TransformerSentiment, additive_mask, bottom_hidden, run_layers


@torch.inference_mode()
def pooled_features(model: TransformerSentiment, texts: Sequence[str]) -> np.ndarray:
    """``(n, dim)``: what the model's heads read for each text (top layers, mean-pooled)."""
    features = np.zeros((len(texts), model.encoder.dim), dtype=np.float32)
    for idx, batch in model.encoder.batches(list(texts)):
        hidden = bottom_hidden(model.encoder.model, batch, model.split_layer)
        hidden = run_layers(model.head.top, hidden, additive_mask(batch["attention_mask"], hidden.dtype))
        features[idx] = mean_pool(hidden, batch["attention_mask"]).float().numpy()
    return features


def _linear(layer: torch.nn.Linear, features: np.ndarray) -> np.ndarray:
    weight, bias = layer.weight.detach().float().numpy(), layer.bias.detach().float().numpy()
    return features @ weight.T + bias


def sentiment_probabilities(model: TransformerSentiment, features: np.ndarray) -> np.ndarray:
    """Calibrated ``(n, 3)`` sentiment probabilities from :func:`pooled_features` (as ``model.scores`` gives)."""
    logits = _linear(model.head.classifier, features) / model.temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def reason_probabilities(model: TransformerSentiment, features: np.ndarray) -> np.ndarray:
    """``(n, len(model.reason_ids))`` reason probabilities from :func:`pooled_features`."""
    return sigmoid(_linear(model.head.reasons, features))


def _fit(layer: torch.nn.Linear, scale: float, loss_fn, features: np.ndarray, weight: np.ndarray,
         l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights minimising the weighted loss plus ``l2`` times the squared distance to ``layer``'s own."""
    x = torch.from_numpy(features)
    w0 = layer.weight.detach().float() / scale
    b0 = layer.bias.detach().float() / scale
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    sample_weight = torch.from_numpy(weight.astype(np.float32))
    sample_weight = sample_weight / sample_weight.sum()
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = (loss_fn(x @ w.T + b) * sample_weight).sum() + l2 * ((w - w0).square().sum() + (b - b0).square().sum())
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach(), b.detach()


def _copy(model: TransformerSentiment, head: torch.nn.Module, temperature: float, refit: dict) -> TransformerSentiment:
    return TransformerSentiment(
        model.encoder, head, temperature=temperature, labels=model.labels, reason_ids=model.reason_ids,
        reason_threshold=model.reason_threshold, churn_threshold=model.churn_threshold,
        info={**model.info, "refits": [*model.info.get("refits", []), refit]})


def refit_sentiment(model: TransformerSentiment, features: np.ndarray, labels: Sequence[str],
                    weight: np.ndarray | None = None, l2: float = 1e-3, about: dict | None = None) -> TransformerSentiment:
    """A copy of ``model`` whose sentiment head is refitted on ``features`` and ``labels`` (temperature 1).

    Args:
        model: the text model to start from (its head is not changed).
        features: :func:`pooled_features` of the training texts.
        labels: one of ``negative``, ``neutral``, ``positive`` per row.
        weight: per-row loss weight (None: equal).
        l2: pull towards the current weights; larger keeps the head closer to ``model``'s.
        about: recorded in the new model's ``info["refits"]`` (what it was fitted on).
    """
    unknown = set(labels) - set(SENTIMENT_LABELS)
    if unknown:
        raise ValueError(f"unknown sentiment labels {sorted(unknown)}")
    y = torch.tensor([SENTIMENT_LABELS.index(label) for label in labels])
    weight = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    w, b = _fit(model.head.classifier, model.temperature,
                lambda logits: torch.nn.functional.cross_entropy(logits, y, reduction="none"), features, weight, l2)
    head = copy.deepcopy(model.head)
    head.classifier.weight.data, head.classifier.bias.data = w.to(head.classifier.weight.dtype), b.to(head.classifier.bias.dtype)
    return _copy(model, head, 1.0, {"head": "sentiment", "rows": len(y), "l2": l2, **(about or {})})


def refit_reasons(model: TransformerSentiment, features: np.ndarray, reasons: Sequence[Sequence[str]],
                  weight: np.ndarray | None = None, l2: float = 1e-3, about: dict | None = None) -> TransformerSentiment:
    """A copy of ``model`` whose reason head is refitted on ``features`` and each row's reason ids.

    Every row is a full answer for the head's ids (``[]``: none of them); ids the head does not know
    are ignored. The reason threshold is kept. Arguments as :func:`refit_sentiment`'s.
    """
    ids = list(model.reason_ids)
    if not ids:
        raise ValueError("this text model has no reason head")
    y = torch.tensor([[i in set(row) for i in ids] for row in reasons], dtype=torch.float32)
    weight = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    w, b = _fit(model.head.reasons, 1.0,
                lambda logits: torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(1),
                features, weight, l2)
    head = copy.deepcopy(model.head)
    head.reasons.weight.data, head.reasons.bias.data = w.to(head.reasons.weight.dtype), b.to(head.reasons.bias.dtype)
    return _copy(model, head, model.temperature, {"head": "reasons", "rows": len(y), "l2": l2, **(about or {})})
