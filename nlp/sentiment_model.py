"""The CX text model: multilingual-e5-small with fine-tuned top layers and three heads.

One pass gives document sentiment (negative/neutral/positive), multi-label NPS+ reason
probabilities over the default taxonomy's ids and a churn-intent probability. The embeddings and
bottom layers are the encoder's own modules (shared, not copied); only the fine-tuned top layers
and the heads ship (fp16 safetensors, ~11 MB).
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nlp.arrays import sigmoid
from nlp.encoder import Encoder, mean_pool, quantize_int8
from nlp.results import SENTIMENT_LABELS, Sentiment, to_sentiment

FORMAT = "cxm-text-model/2"
BUILTIN_SENTIMENT_DIR = Path(__file__).parent / "resources" / "sentiment"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class SentimentModelError(ValueError):
    """A text-model artefact that is missing, malformed or made for another encoder."""


def _read_artefact(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Validated config and tensors; every problem becomes a :class:`SentimentModelError`."""
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise SentimentModelError(f"{path} needs {CONFIG_FILE} and {WEIGHTS_FILE} (written by `cxm train sentiment`)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SentimentModelError(f"{config_file} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise SentimentModelError(f"{path} is not a {FORMAT} text model")
    required = {"num_layers": int, "hidden_size": int, "split_layer": int, "temperature": (int, float),
                "labels": list, "reason_ids": list, "reason_threshold": (int, float),
                "churn_threshold": (int, float)}
    for key, kind in required.items():
        if not isinstance(config.get(key), kind):
            raise SentimentModelError(f"{config_file}: {key!r} is missing or has the wrong type")
    if not 0 <= config["split_layer"] < config["num_layers"]:
        raise SentimentModelError(f"{config_file}: split_layer out of range")
    try:
        state = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise SentimentModelError(f"{weights_file} is not a readable safetensors file: {exc}") from exc
    return config, state


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(batch, 1, 1, tokens)`` mask that eager and SDPA attention both add to their scores."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def bottom_layers(model: nn.Module, word_vectors: torch.Tensor, attention_mask: torch.Tensor,
                  split_layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``BertModel``'s first ``split_layer`` (frozen, shared) layers from looked-up word vectors:
    their hidden states and the additive mask the layers above reuse."""
    hidden = model.embeddings(inputs_embeds=word_vectors)
    mask = additive_mask(attention_mask, hidden.dtype)
    return run_layers(model.encoder.layer[:split_layer], hidden, mask), mask


def bottom_hidden(model: nn.Module, batch: dict[str, torch.Tensor], split_layer: int) -> torch.Tensor:
    """:func:`bottom_layers`' hidden states for a tokenised batch."""
    word_vectors = model.embeddings.word_embeddings(batch["input_ids"])
    return bottom_layers(model, word_vectors, batch["attention_mask"], split_layer)[0]


def run_layers(layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class SentimentHead(nn.Module):
    """Fine-tuned top layers, mean pooling and three linear heads: hidden states in, logits out.

    The output concatenates ``[3 sentiment | n_reasons reason | 1 churn]`` logits, so every
    backend (torch, the ONNX graph) carries one tensor.
    """

    def __init__(self, top_layers: nn.ModuleList, hidden_size: int, n_reasons: int, n_labels: int = 3,
                 dropout: float = 0.1):
        super().__init__()
        self.top = top_layers
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, n_labels)
        self.reasons = nn.Linear(hidden_size, n_reasons)
        self.churn = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = run_layers(self.top, hidden, additive_mask(attention_mask, hidden.dtype))
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        return torch.cat([self.classifier(pooled), self.reasons(pooled), self.churn(pooled)], dim=-1)


class SharedPass(nn.Module):
    """Token ids and mask in; the heads' logits and the encoder's own sentence embeddings out.

    The bottom layers run once for both. This is the graph both backends run: torch directly,
    ONNX Runtime after export (``nlp.onnx_sentiment``), which starts at :meth:`from_word_vectors`
    so the 250k-row vocabulary table stays out of the exported graph.
    """

    def __init__(self, model: nn.Module, head: SentimentHead, split_layer: int):
        super().__init__()
        self.model, self.head, self.split_layer = model, head, split_layer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_word_vectors(self.model.embeddings.word_embeddings(input_ids), attention_mask)

    def from_word_vectors(self, word_vectors: torch.Tensor,
                          attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` from the looked-up ``(batch, tokens, dim)`` word embeddings."""
        hidden, mask = bottom_layers(self.model, word_vectors, attention_mask, self.split_layer)
        logits = self.head(hidden, attention_mask)
        top = run_layers(self.model.encoder.layer[self.split_layer :], hidden, mask)
        return logits, torch.nn.functional.normalize(mean_pool(top, attention_mask), dim=-1)


@dataclass(frozen=True)
class TextScores:
    """Everything the text model says about a batch, row-aligned with the input texts."""

    sentiment: np.ndarray
    """``(n, 3)`` calibrated probabilities (negative, neutral, positive)."""
    reasons: np.ndarray
    """``(n, len(reason_ids))`` independent reason probabilities."""
    churn: np.ndarray
    """``(n,)`` churn-intent probability."""
    embeddings: np.ndarray | None = None
    """``(n, dim)`` the encoder's own sentence embeddings, when asked for."""


class SentimentPredictor(ABC):
    """Calibrated predictions on top of a backend's ``_forward``."""

    encoder: Encoder
    temperature: float
    labels: tuple[str, ...]
    reason_ids: tuple[str, ...]
    reason_threshold: float
    churn_threshold: float

    @abstractmethod
    def _forward_batch(self, batch: dict[str, torch.Tensor],
                       with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """One tokenised batch's logits and, when asked, its embeddings (rows in batch order)."""

    def _forward(self, texts: Sequence[str], with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``(n, 3 + n_reasons + 1)`` logits and, when asked, the ``(n, dim)`` embeddings, in input order."""
        logits = np.zeros((len(texts), self.n_outputs), dtype=np.float32)
        embeddings = np.zeros((len(texts), self.encoder.dim), dtype=np.float32) if with_embeddings else None
        for idx, batch in self.encoder.batches(texts):
            logits[idx], batch_embeddings = self._forward_batch(batch, with_embeddings)
            if embeddings is not None:
                embeddings[idx] = batch_embeddings
        return logits, embeddings

    @property
    def n_outputs(self) -> int:
        return len(self.labels) + len(self.reason_ids) + 1

    def scores(self, texts: Sequence[str], with_embeddings: bool = False) -> TextScores:
        """Sentiment, reason and churn-intent probabilities (and embeddings) from one shared pass."""
        texts = list(texts)
        if not texts:
            dim = self.encoder.dim if with_embeddings else 0
            return TextScores(np.zeros((0, len(self.labels)), np.float32),
                              np.zeros((0, len(self.reason_ids)), np.float32), np.zeros(0, np.float32),
                              np.zeros((0, dim), np.float32) if with_embeddings else None)
        logits, embeddings = self._forward(texts, with_embeddings)
        k = len(self.labels)
        sentiment = torch.softmax(torch.from_numpy(logits[:, :k]) / self.temperature, dim=-1).numpy()
        return TextScores(sentiment, sigmoid(logits[:, k:-1]), sigmoid(logits[:, -1]), embeddings)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated ``(n, 3)`` probabilities in label order (negative, neutral, positive)."""
        return self.scores(texts).sentiment

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        return [to_sentiment(p, self.labels) for p in self.predict_proba(list(texts))]

    def predict_with_embeddings(self, texts: Sequence[str]) -> tuple[list[Sentiment], np.ndarray]:
        """Sentiment plus what ``encoder.encode(texts)`` returns, sharing the bottom layers' pass."""
        scores = self.scores(texts, with_embeddings=True)
        return [to_sentiment(p, self.labels) for p in scores.sentiment], scores.embeddings


_MODEL_KEYS = frozenset({"format", "base_model", "num_layers", "hidden_size", "split_layer", "labels",
                         "temperature", "reason_ids", "reason_threshold", "churn_threshold"})
"""The config keys :meth:`TransformerSentiment.save` writes for :meth:`~TransformerSentiment.load`."""


class TransformerSentiment(SentimentPredictor):
    """The text model in torch: ``scores(texts)`` and ``predict(texts) -> list[Sentiment]``."""

    def __init__(
        self,
        encoder: Encoder,
        head: SentimentHead,
        *,
        temperature: float = 1.0,
        labels: Sequence[str] = SENTIMENT_LABELS,
        reason_ids: Sequence[str] = (),
        reason_threshold: float = 0.5,
        churn_threshold: float = 0.5,
        source: Path | None = None,
        info: dict | None = None,
    ):
        if tuple(labels) != SENTIMENT_LABELS:
            raise ValueError(f"labels must be {SENTIMENT_LABELS}, got {tuple(labels)}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        if head.reasons.out_features != len(reason_ids):
            raise ValueError(f"the head has {head.reasons.out_features} reason outputs for {len(reason_ids)} ids")
        self.source = source
        """The artefact directory it was loaded from (None: built in memory)."""
        self.info = dict(info or {})
        """How it was trained (data, epochs, validation report): saved into and loaded from its config."""
        self.encoder = encoder
        self.head = head.eval()
        self.temperature = temperature
        self.labels = tuple(labels)
        self.reason_ids = tuple(reason_ids)
        self.reason_threshold = reason_threshold
        self.churn_threshold = churn_threshold

    @property
    def split_layer(self) -> int:
        return len(self.encoder.model.encoder.layer) - len(self.head.top)

    def shared_pass(self) -> SharedPass:
        """The whole computation as one module (weights shared, not copied)."""
        return SharedPass(self.encoder.model, self.head, self.split_layer).eval()

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder) -> TransformerSentiment:
        """Rebuild from ``config.json`` + ``model.safetensors`` on top of ``encoder``'s model."""
        path = Path(path)
        config, state = _read_artefact(path)
        layers = encoder.model.encoder.layer
        if config["num_layers"] != len(layers) or config["hidden_size"] != encoder.dim:
            raise SentimentModelError(
                f"{path} was trained on a {config['num_layers']}-layer, {config['hidden_size']}-d "
                f"encoder; this one has {len(layers)} layers, {encoder.dim} dims"
            )
        head = SentimentHead(copy.deepcopy(layers[config["split_layer"] :]), encoder.dim,
                             len(config["reason_ids"]), len(config["labels"]))
        dtype = next(head.top.parameters()).dtype
        try:
            head.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise SentimentModelError(f"{path / WEIGHTS_FILE} does not fit its config or this encoder: {exc}") from exc
        for p in head.parameters():
            p.requires_grad_(False)
        return cls(encoder, head, temperature=config["temperature"], labels=config["labels"],
                   reason_ids=config["reason_ids"], reason_threshold=config["reason_threshold"],
                   churn_threshold=config["churn_threshold"], source=path,
                   info={k: v for k, v in config.items() if k not in _MODEL_KEYS})

    def save(self, path: str | Path, config: dict | None = None) -> None:
        """Write the top layers and heads (fp16 safetensors) plus the JSON config: :attr:`info`,
        then ``config`` (more about the training), then what :meth:`load` needs."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().half().contiguous() for k, v in self.head.state_dict().items()}
        save_file(tensors, str(path / WEIGHTS_FILE))
        config = {
            **self.info, **(config or {}), "format": FORMAT, "base_model": "multilingual-e5-small",
            "num_layers": len(self.encoder.model.encoder.layer), "hidden_size": self.encoder.dim,
            "split_layer": self.split_layer, "labels": list(self.labels), "temperature": self.temperature,
            "reason_ids": list(self.reason_ids), "reason_threshold": self.reason_threshold,
            "churn_threshold": self.churn_threshold,
        }
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @torch.inference_mode()
    def _forward_batch(self, batch: dict[str, torch.Tensor],
                       with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, optionally, the encoder's own sentence embeddings from one shared bottom pass."""
        if not with_embeddings:
            hidden = bottom_hidden(self.encoder.model, batch, self.split_layer)
            return self.head(hidden, batch["attention_mask"]).float().numpy(), None
        logits, embeddings = self.shared_pass()(batch["input_ids"], batch["attention_mask"])
        return logits.float().numpy(), embeddings.float().numpy()

    def quantize_int8(self) -> None:
        """Dynamic int8 linear layers in the shared encoder and the fine-tuned head, in place."""
        quantize_int8(self.encoder.model)
        quantize_int8(self.head)
