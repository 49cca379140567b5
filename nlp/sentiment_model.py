"""Document sentiment from multilingual-e5-small with LoRA-adapted top layers and a linear head.

The embeddings and bottom layers are the encoder's own modules (shared, not copied); only the
top layers are copied, with the shipped adapters merged in, so the artefact stays a few MB.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nlp.encoder import Encoder, mean_pool, quantize_int8
from nlp.lora import merge_lora_state
from nlp.results import SENTIMENT_LABELS, Sentiment

FORMAT = "cxm-sentiment-lora/1"
BUILTIN_SENTIMENT_DIR = Path(__file__).parent / "resources" / "sentiment"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "adapter.safetensors"


class SentimentModelError(ValueError):
    """A sentiment artefact that is missing, malformed or made for another encoder."""


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
        raise SentimentModelError(f"{path} is not a {FORMAT} sentiment model")
    required = {"num_layers": int, "hidden_size": int, "split_layer": int, "lora_rank": int,
                "lora_alpha": (int, float), "temperature": (int, float), "labels": list}
    for key, kind in required.items():
        if not isinstance(config.get(key), kind):
            raise SentimentModelError(f"{config_file}: {key!r} is missing or has the wrong type")
    if not 0 <= config["split_layer"] < config["num_layers"] or config["lora_rank"] < 1:
        raise SentimentModelError(f"{config_file}: split_layer or lora_rank out of range")
    try:
        state = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise SentimentModelError(f"{weights_file} is not a readable safetensors file: {exc}") from exc
    return config, state


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(batch, 1, 1, tokens)`` mask that eager and SDPA attention both add to their scores."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def bottom_hidden(model: nn.Module, batch: dict[str, torch.Tensor], split_layer: int) -> torch.Tensor:
    """Hidden states of a ``BertModel`` after its first ``split_layer`` (frozen, shared) layers."""
    hidden = model.embeddings(input_ids=batch["input_ids"])
    mask = additive_mask(batch["attention_mask"], hidden.dtype)
    return run_layers(model.encoder.layer[:split_layer], hidden, mask)


def run_layers(layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class SentimentHead(nn.Module):
    """Adapted top layers, mean pooling and a linear layer: hidden states in, logits out."""

    def __init__(self, top_layers: nn.ModuleList, hidden_size: int, n_labels: int = 3):
        super().__init__()
        self.top = top_layers
        self.classifier = nn.Linear(hidden_size, n_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = run_layers(self.top, hidden, additive_mask(attention_mask, hidden.dtype))
        return self.classifier(mean_pool(hidden, attention_mask))


class SharedPass(nn.Module):
    """Token ids and mask in; sentiment logits and the encoder's own sentence embeddings out.

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
        hidden = self.model.embeddings(inputs_embeds=word_vectors)
        mask = additive_mask(attention_mask, hidden.dtype)
        hidden = run_layers(self.model.encoder.layer[: self.split_layer], hidden, mask)
        logits = self.head(hidden, attention_mask)
        top = run_layers(self.model.encoder.layer[self.split_layer :], hidden, mask)
        return logits, torch.nn.functional.normalize(mean_pool(top, attention_mask), dim=-1)


class SentimentPredictor(ABC):
    """Calibrated predictions on top of a backend's ``_forward``."""

    encoder: Encoder
    temperature: float
    labels: tuple[str, ...]

    @abstractmethod
    def _forward(self, texts: Sequence[str], with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``(n, 3)`` logits and, when asked, the ``(n, dim)`` sentence embeddings, in input order."""

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self._forward(texts, with_embeddings=False)[0]

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(logits) / self.temperature, dim=-1).numpy()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated ``(n, 3)`` probabilities in label order (negative, neutral, positive)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._calibrated(self.logits(texts))

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        return [to_sentiment(p, self.labels) for p in self.predict_proba(list(texts))]

    def predict_with_embeddings(self, texts: Sequence[str]) -> tuple[list[Sentiment], np.ndarray]:
        """Sentiment plus what ``encoder.encode(texts)`` returns, sharing the bottom layers' pass.

        The reason and topic heads read those embeddings, so a text costs one bottom pass, not two.
        """
        probabilities, embeddings = self.proba_with_embeddings(texts)
        return [to_sentiment(p, self.labels) for p in probabilities], embeddings

    def proba_with_embeddings(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_proba` and the sentence embeddings, from one shared pass."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32), np.zeros((0, self.encoder.dim), dtype=np.float32)
        logits, embeddings = self._forward(texts, with_embeddings=True)
        return self._calibrated(logits), embeddings


class TransformerSentiment(SentimentPredictor):
    """``predict(texts) -> list[Sentiment]`` with temperature-calibrated probabilities, in torch."""

    def __init__(
        self,
        encoder: Encoder,
        head: SentimentHead,
        *,
        temperature: float = 1.0,
        labels: Sequence[str] = SENTIMENT_LABELS,
        source: Path | None = None,
    ):
        if tuple(labels) != SENTIMENT_LABELS:
            raise ValueError(f"labels must be {SENTIMENT_LABELS}, got {tuple(labels)}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.source = source
        """The artefact directory it was loaded from (None: built in memory)."""
        self.encoder = encoder
        self.head = head.eval()
        self.temperature = temperature
        self.labels = tuple(labels)

    @property
    def split_layer(self) -> int:
        return len(self.encoder.model.encoder.layer) - len(self.head.top)

    def shared_pass(self) -> SharedPass:
        """The whole computation as one module (weights shared, not copied)."""
        return SharedPass(self.encoder.model, self.head, self.split_layer).eval()

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder) -> TransformerSentiment:
        """Rebuild from ``config.json`` + ``adapter.safetensors`` on top of ``encoder``'s model."""
        path = Path(path)
        config, state = _read_artefact(path)
        layers = encoder.model.encoder.layer
        if config["num_layers"] != len(layers) or config["hidden_size"] != encoder.dim:
            raise SentimentModelError(
                f"{path} was trained on a {config['num_layers']}-layer, {config['hidden_size']}-d "
                f"encoder; this one has {len(layers)} layers, {encoder.dim} dims"
            )
        top = copy.deepcopy(layers[config["split_layer"] :])
        head = SentimentHead(top, encoder.dim, len(config["labels"]))
        try:
            merge_lora_state(
                top,
                {k[len("top.") :]: v for k, v in state.items() if k.startswith("top.")},
                config["lora_alpha"] / config["lora_rank"],
            )
            head.classifier.load_state_dict(
                {k[len("classifier.") :]: v.float() for k, v in state.items() if k.startswith("classifier.")}
            )
        except (KeyError, ValueError, RuntimeError, AttributeError) as exc:
            raise SentimentModelError(f"{path / WEIGHTS_FILE} does not fit its config or this encoder: {exc}") from exc
        for p in head.parameters():
            p.requires_grad_(False)
        return cls(encoder, head, temperature=config["temperature"], labels=config["labels"], source=path)

    @torch.inference_mode()
    def _forward(self, texts: Sequence[str], with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, optionally, the encoder's own sentence embeddings from one shared bottom pass."""
        logits = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        embeddings = np.zeros((len(texts), self.encoder.dim), dtype=np.float32) if with_embeddings else None
        joint = self.shared_pass()
        for idx, batch in self.encoder.batches(texts):
            if embeddings is None:
                hidden = bottom_hidden(self.encoder.model, batch, self.split_layer)
                logits[idx] = self.head(hidden, batch["attention_mask"]).float().numpy()
            else:
                batch_logits, batch_embeddings = joint(batch["input_ids"], batch["attention_mask"])
                logits[idx], embeddings[idx] = batch_logits.float().numpy(), batch_embeddings.float().numpy()
        return logits, embeddings

    def quantize_int8(self) -> None:
        """Dynamic int8 linear layers in the shared encoder and the adapted head, in place."""
        quantize_int8(self.encoder.model)
        quantize_int8(self.head)


def to_sentiment(probabilities: np.ndarray, labels: Sequence[str] = SENTIMENT_LABELS) -> Sentiment:
    probs = {label: round(float(p), 4) for label, p in zip(labels, probabilities)}
    return Sentiment(
        label=labels[int(np.argmax(probabilities))],
        score=round(float(probabilities[labels.index("positive")] - probabilities[labels.index("negative")]), 4),
        probabilities=probs,
    )


def save_sentiment(
    path: str | Path, head: SentimentHead, lora_state: dict[str, torch.Tensor], config: dict
) -> None:
    """Write the adapters and classifier (fp16 safetensors) plus the JSON config."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"top.{k}": v.half().contiguous() for k, v in lora_state.items()}
    tensors |= {f"classifier.{k}": v.detach().float().contiguous() for k, v in head.classifier.state_dict().items()}
    save_file(tensors, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, **config}, indent=2) + "\n", encoding="utf-8")
