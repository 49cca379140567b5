"""Fit LoRA adapters on the top encoder layers for sentiment, on cached bottom-layer states.

The bottom layers are frozen, so each training text goes through them once; their hidden
states are cached (fp16) and every epoch trains only the top layers' adapters and the head.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nlp.encoder import Encoder
from nlp.lora import add_lora, lora_state
from nlp.results import SENTIMENT_LABELS
from nlp.sentiment_model import SentimentHead, bottom_hidden, save_sentiment

LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises held-out negative log-likelihood (Guo et al., 2017)."""
    z, t = torch.from_numpy(logits).float(), torch.from_numpy(y).long()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().clamp(0.05, 20.0))


class SentimentAdapterTrainer:
    """Fine-tune the top ``n_layers - split_layer`` layers with LoRA plus a linear head."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        split_layer: int = 10,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        epochs: int = 1,
        batch_size: int = 16,
        learning_rate: float = 1e-3,
        max_length: int = 96,
        calibration_fraction: float = 0.05,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ):
        self.encoder = encoder
        self.split_layer = split_layer
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.calibration_fraction = calibration_fraction
        self.cache_dir = cache_dir
        self.seed = seed
        self.log = log

    def _say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.encoder.tokenizer(
            [self.encoder.prefix + t for t in texts], truncation=True, max_length=self.max_length
        )
        return enc["input_ids"]

    @torch.inference_mode()
    def _bottom_states(self, ids: list[list[int]]) -> list[torch.Tensor]:
        """Hidden states after the frozen layers, one ``(tokens, dim)`` fp16 tensor per text."""
        key = hashlib.sha256(repr((self.split_layer, ids)).encode()).hexdigest()[:16]
        cache = Path(self.cache_dir) / f"bottom-{key}.safetensors" if self.cache_dir else None
        if cache is not None and cache.exists():
            flat = load_file(str(cache))["states"]
            return list(torch.split(flat, [len(x) for x in ids]))
        model = self.encoder.model.eval()
        states: list[torch.Tensor | None] = [None] * len(ids)
        order = np.argsort([len(x) for x in ids], kind="stable")
        start_time = time.perf_counter()
        for n, start in enumerate(range(0, len(order), 32)):
            idx = order[start : start + 32]
            batch = _pad([ids[i] for i in idx], self.encoder.tokenizer.pad_token_id)
            hidden = bottom_hidden(model, batch, self.split_layer).half()
            for row, i in enumerate(idx):
                states[i] = hidden[row, : len(ids[i])].clone()
            if n % 50 == 0:
                self._say(f"bottom layers: {start + len(idx)}/{len(ids)} texts, {time.perf_counter() - start_time:.0f}s")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({"states": torch.cat(states)}, str(cache))
        return states

    def fit(self, texts: Sequence[str], labels: Sequence[str], groups: Sequence[str] | None = None):
        """Train on ``texts``/``labels``; ``groups`` (e.g. dataset names) stratify the calibration split."""
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        unknown = set(labels) - set(SENTIMENT_LABELS)
        if unknown:
            raise ValueError(f"unknown labels {sorted(unknown)}; expected {SENTIMENT_LABELS}")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        y = np.array([SENTIMENT_LABELS.index(label) for label in labels])
        groups = np.asarray(groups if groups is not None else ["all"] * len(texts))
        strata = np.char.add(groups.astype(str), y.astype(str))
        calib = np.zeros(len(texts), dtype=bool)
        for s in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == s))
            calib[members[: int(round(len(members) * self.calibration_fraction))]] = True

        ids = self._tokenize(texts)
        states = self._bottom_states(ids)
        layers = self.encoder.model.encoder.layer
        top = copy.deepcopy(layers[self.split_layer :])
        for p in top.parameters():
            p.requires_grad_(False)
        add_lora(top, LORA_TARGETS, self.lora_rank, self.lora_alpha, dropout=0.05)
        head = SentimentHead(top, self.encoder.dim, len(SENTIMENT_LABELS))
        head.train()
        params = [p for p in head.parameters() if p.requires_grad]
        train_idx = np.flatnonzero(~calib)
        steps_per_epoch = math.ceil(len(train_idx) / self.batch_size)
        total = steps_per_epoch * self.epochs
        opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.01)
        warmup = max(1, total // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
        )
        self.history_ = []
        start_time = time.perf_counter()
        step = 0
        for epoch in range(self.epochs):
            for batch_idx in _length_buckets(train_idx, ids, self.batch_size, rng):
                hidden, mask = _pad_states([states[i] for i in batch_idx])
                logits = head(hidden, mask)
                loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[batch_idx]))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                self.history_.append(loss.item())
                if step % 50 == 0:
                    self._say(
                        f"epoch {epoch + 1} step {step}/{total} loss {np.mean(self.history_[-50:]):.4f} "
                        f"{time.perf_counter() - start_time:.0f}s"
                    )
        head.eval()
        calib_idx = np.flatnonzero(calib)
        calib_logits = self._logits(head, states, calib_idx)
        self.temperature_ = fit_temperature(calib_logits, y[calib_idx]) if len(calib_idx) else 1.0
        pred = calib_logits.argmax(1)
        self.calibration_accuracy_ = {
            str(g): float((pred[groups[calib_idx] == g] == y[calib_idx][groups[calib_idx] == g]).mean())
            for g in np.unique(groups[calib_idx])
        }
        self.head_ = head
        self.n_train_ = len(train_idx)
        self._say(f"temperature {self.temperature_:.3f}; held-out accuracy {self.calibration_accuracy_}")
        return self

    @torch.inference_mode()
    def _logits(self, head: SentimentHead, states, idx: np.ndarray) -> np.ndarray:
        out = np.zeros((len(idx), len(SENTIMENT_LABELS)), dtype=np.float32)
        order = np.argsort([len(states[i]) for i in idx], kind="stable")
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            hidden, mask = _pad_states([states[idx[r]] for r in rows])
            out[rows] = head(hidden, mask).numpy()
        return out

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Ship only the adapters, the head and the temperature (a few MB)."""
        if not hasattr(self, "head_"):
            raise RuntimeError("fit the trainer before saving it")
        config = {
            "base_model": "multilingual-e5-small",
            "num_layers": len(self.encoder.model.encoder.layer),
            "hidden_size": self.encoder.dim,
            "split_layer": self.split_layer,
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "lora_targets": list(LORA_TARGETS),
            "labels": list(SENTIMENT_LABELS),
            "temperature": self.temperature_,
            "train_max_length": self.max_length,
            "epochs": self.epochs,
            "seed": self.seed,
            "n_train": self.n_train_,
            "calibration_accuracy": self.calibration_accuracy_,
            **(extra or {}),
        }
        save_sentiment(path, self.head_, lora_state(self.head_.top), config)


def _pad(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def _pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in states)
    hidden = torch.zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, s in enumerate(states):
        hidden[row, : len(s)] = s.float()
        mask[row, : len(s)] = 1
    return hidden, mask


def _length_buckets(idx: np.ndarray, ids, batch_size: int, rng: np.random.Generator):
    """Shuffled batches of similar length: little padding, random order of batches."""
    idx = rng.permutation(idx)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(idx), chunk):
        part = idx[start : start + chunk]
        part = part[np.argsort([len(ids[i]) for i in part], kind="stable")]
        batches += [part[s : s + batch_size] for s in range(0, len(part), batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]
