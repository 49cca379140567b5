"""Fine-tune the text model's top layers and heads on cached bottom-layer states (CPU-practical).

The bottom ``split_layer`` layers stay frozen and shared with the encoder, so each training text
goes through them once; their hidden states are cached (fp16) and every epoch trains only the
top layers and the three heads. The epoch, the sentiment temperature and the reason and churn
thresholds are all chosen on the validation rows; no test row is read.
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
from sklearn.metrics import f1_score

from nlp.encoder import Encoder
from nlp.results import SENTIMENT_LABELS
from nlp.arrays import sigmoid
from nlp.sentiment_model import SentimentHead, TransformerSentiment, bottom_hidden

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.025), 3)


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
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def best_threshold(probabilities: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(threshold, F1)`` maximising F1 of ``probabilities >= threshold`` (flattened, micro)."""
    best = (0.5, -1.0)
    for t in THRESHOLD_GRID:
        score = f1_score(y.ravel(), (probabilities >= t).ravel(), zero_division=0)
        if score > best[1]:
            best = (float(t), float(score))
    return best


class TextModelTrainer:
    """Train the top ``n_layers - split_layer`` layers plus sentiment, reason and churn heads.

    ``fit`` takes, per text, a sentiment label (``""``: unknown), a list of reason ids (``None``:
    unknown; ``[]``: none of them) and a churn label (1, 0 or -1: unknown); each head learns only
    from the rows labelled for it. ``sample_weight`` scales a row's losses (hand-written rows
    count more than the public sets' tweets and reviews). The trained model is ``model_``, a
    :class:`TransformerSentiment` that saves itself with its training report
    (``trainer.fit(...).model_.save(path)``).
    """

    def __init__(
        self,
        encoder: Encoder,
        reason_ids: Sequence[str],
        *,
        split_layer: int = 9,
        epochs: int = 3,
        batch_size: int = 32,
        top_learning_rate: float = 1e-4,
        head_learning_rate: float = 1e-3,
        max_length: int = 128,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ):
        self.encoder = encoder
        self.reason_ids = list(reason_ids)
        self.split_layer = split_layer
        self.epochs = epochs
        self.batch_size = batch_size
        self.top_learning_rate = top_learning_rate
        self.head_learning_rate = head_learning_rate
        self.max_length = max_length
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
        for n, start in enumerate(range(0, len(order), 64)):
            idx = order[start : start + 64]
            batch = _pad([ids[i] for i in idx], self.encoder.tokenizer.pad_token_id)
            hidden = bottom_hidden(model, batch, self.split_layer).half()
            for row, i in enumerate(idx):
                states[i] = hidden[row, : len(ids[i])].clone()
            if n % 100 == 0:
                self._say(f"bottom layers: {start + len(idx)}/{len(ids)} texts, {time.perf_counter() - start_time:.0f}s")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({"states": torch.cat(states)}, str(cache))
        return states

    def _targets(self, sentiment, reasons, churn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        unknown = set(sentiment) - set(SENTIMENT_LABELS) - {""}
        if unknown:
            raise ValueError(f"unknown sentiment labels {sorted(unknown)}; expected {SENTIMENT_LABELS} or ''")
        y_sent = np.array([SENTIMENT_LABELS.index(s) if s else -1 for s in sentiment])
        y_reason = np.zeros((len(reasons), len(self.reason_ids)), dtype=np.float32)
        has_reason = np.zeros(len(reasons), dtype=bool)
        for i, ids in enumerate(reasons):
            if ids is None:
                continue
            has_reason[i] = True
            for r in ids:
                if r not in self.reason_ids:
                    raise ValueError(f"unknown reason id {r!r}; the model's ids are {self.reason_ids}")
                y_reason[i, self.reason_ids.index(r)] = 1.0
        y_churn = np.asarray(churn, dtype=np.int64)
        if not np.isin(y_churn, (-1, 0, 1)).all():
            raise ValueError("churn labels must be 1, 0 or -1 (unknown)")
        return y_sent, y_reason, has_reason, y_churn

    def fit(
        self,
        texts: Sequence[str],
        sentiment: Sequence[str],
        reasons: Sequence[Sequence[str] | None],
        churn: Sequence[int],
        *,
        valid: Sequence[bool],
        groups: Sequence[str] | None = None,
        sample_weight: Sequence[float] | None = None,
    ) -> TextModelTrainer:
        """Train on the rows not marked ``valid``; select and calibrate on the ``valid`` rows.

        ``groups`` (e.g. the source file) break the validation report down; model selection
        averages sentiment macro-F1 over the groups, reason F1 and churn F1.
        """
        n = len(texts)
        if not n == len(sentiment) == len(reasons) == len(churn) == len(valid):
            raise ValueError("texts and their labels differ in length")
        y_sent, y_reason, has_reason, y_churn = self._targets(sentiment, reasons, churn)
        valid = np.asarray(valid, dtype=bool)
        if valid.all() or not valid.any():
            raise ValueError("need both training rows and validation rows")
        groups = np.asarray(groups if groups is not None else ["all"] * n).astype(str)
        weight = np.asarray(sample_weight if sample_weight is not None else np.ones(n), dtype=np.float32)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)

        ids = self._tokenize(texts)
        states = self._bottom_states(ids)
        top = copy.deepcopy(self.encoder.model.encoder.layer[self.split_layer :])
        for p in top.parameters():
            p.requires_grad_(True)
        head = SentimentHead(top, self.encoder.dim, len(self.reason_ids))
        train_idx = np.flatnonzero(~valid)
        churn_known = train_idx[y_churn[train_idx] >= 0]
        positives = max(1, int((y_churn[churn_known] == 1).sum()))
        pos_weight = torch.tensor(min(20.0, math.sqrt((len(churn_known) - positives) / positives)))
        heads = [p for name, p in head.named_parameters() if not name.startswith("top.")]
        opt = torch.optim.AdamW([{"params": list(head.top.parameters()), "lr": self.top_learning_rate},
                                 {"params": heads, "lr": self.head_learning_rate}], weight_decay=0.01)
        total = math.ceil(len(train_idx) / self.batch_size) * self.epochs
        warmup = max(1, total // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
        )
        self.history_, self.epoch_reports_ = [], []
        best_score, best_state = -1.0, None
        start_time, step = time.perf_counter(), 0
        for epoch in range(self.epochs):
            head.train()
            for batch_idx in _length_buckets(train_idx, ids, self.batch_size, rng):
                hidden, mask = _pad_states([states[i] for i in batch_idx])
                logits = head(hidden, mask)
                loss = self._loss(logits, batch_idx, y_sent, y_reason, has_reason, y_churn, weight, pos_weight)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                self.history_.append(loss.item())
                if step % 100 == 0:
                    self._say(f"epoch {epoch + 1} step {step}/{total} loss {np.mean(self.history_[-100:]):.4f} "
                              f"{time.perf_counter() - start_time:.0f}s")
            head.eval()
            valid_idx = np.flatnonzero(valid)
            logits = self._logits(head, states, valid_idx)
            report = self._report(logits, valid_idx, y_sent, y_reason, has_reason, y_churn, groups)
            report["epoch"] = epoch + 1
            self.epoch_reports_.append(report)
            self._say(f"epoch {epoch + 1}: selection {report['selection']:.4f} {report}")
            if report["selection"] > best_score:
                best_score, best_state = report["selection"], copy.deepcopy(head.state_dict())
                best_logits = logits
        head.load_state_dict(best_state)
        head.eval()
        for p in head.parameters():
            p.requires_grad_(False)
        self.report_ = self._calibrate(best_logits, np.flatnonzero(valid), y_sent, y_reason, has_reason, y_churn)
        self.report_["validation"] = max(self.epoch_reports_, key=lambda r: r["selection"])
        self.model_ = TransformerSentiment(
            self.encoder, head, temperature=self.report_["temperature"], reason_ids=self.reason_ids,
            reason_threshold=self.report_["reason_threshold"], churn_threshold=self.report_["churn_threshold"],
            info={"train_max_length": self.max_length, "epochs": self.epochs, "seed": self.seed,
                  "learning_rates": {"top": self.top_learning_rate, "heads": self.head_learning_rate},
                  "n_train": len(train_idx), "report": self.report_, "epoch_reports": self.epoch_reports_},
        )
        self.n_train_ = len(train_idx)
        self._say(f"chose epoch {self.report_['validation']['epoch']}; {self.report_}")
        return self

    def _loss(self, logits, idx, y_sent, y_reason, has_reason, y_churn, weight, pos_weight) -> torch.Tensor:
        k, w = len(SENTIMENT_LABELS), torch.from_numpy(weight[idx])
        loss = logits.new_zeros(())
        s = torch.from_numpy(y_sent[idx])
        known = s >= 0
        if known.any():
            ce = torch.nn.functional.cross_entropy(logits[known, :k], s[known], reduction="none")
            loss = loss + (ce * w[known]).sum() / w[known].sum()
        r = torch.from_numpy(has_reason[idx])
        if r.any() and self.reason_ids:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[r, k:-1], torch.from_numpy(y_reason[idx][r.numpy()]), reduction="none").sum(1)
            loss = loss + (bce * w[r]).sum() / w[r].sum()
        c = torch.from_numpy(y_churn[idx])
        known = c >= 0
        if known.any():
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[known, -1], c[known].float(), pos_weight=pos_weight, reduction="none")
            loss = loss + (bce * w[known]).sum() / w[known].sum()
        return loss

    def _report(self, logits, idx, y_sent, y_reason, has_reason, y_churn, groups) -> dict:
        k = len(SENTIMENT_LABELS)
        report: dict = {"sentiment_macro_f1": {}}
        pred = logits[:, :k].argmax(1)
        for g in np.unique(groups[idx]):
            rows = (groups[idx] == g) & (y_sent[idx] >= 0)
            if rows.any():
                report["sentiment_macro_f1"][str(g)] = round(float(f1_score(
                    y_sent[idx][rows], pred[rows], average="macro", labels=sorted(set(y_sent[idx][rows])))), 4)
        rows = has_reason[idx] & (y_reason[idx].sum(1) > 0)
        proba = sigmoid(logits[:, k:-1])
        if rows.any():
            top = proba[rows].argmax(1)
            report["reason_top1"] = round(float(y_reason[idx][rows][np.arange(rows.sum()), top].mean()), 4)
        rows = y_churn[idx] >= 0
        report["churn_f1"] = round(best_threshold(sigmoid(logits[rows, -1]), y_churn[idx][rows])[1], 4) if rows.any() else 0.0
        parts = [np.mean(list(report["sentiment_macro_f1"].values())), report.get("reason_top1", 0.0),
                 report["churn_f1"]]
        report["selection"] = round(float(np.mean(parts)), 4)
        return report

    def _calibrate(self, logits, idx, y_sent, y_reason, has_reason, y_churn) -> dict:
        k = len(SENTIMENT_LABELS)
        rows = y_sent[idx] >= 0
        temperature = fit_temperature(logits[rows, :k], y_sent[idx][rows]) if rows.any() else 1.0
        rows = has_reason[idx]
        reason_threshold, reason_f1 = (best_threshold(sigmoid(logits[rows, k:-1]), y_reason[idx][rows])
                                       if rows.any() and self.reason_ids else (0.5, 0.0))
        rows = y_churn[idx] >= 0
        churn_threshold, churn_f1 = (best_threshold(sigmoid(logits[rows, -1]), y_churn[idx][rows])
                                     if rows.any() else (0.5, 0.0))
        return {"temperature": round(temperature, 4), "reason_threshold": reason_threshold,
                "reason_micro_f1": round(reason_f1, 4), "churn_threshold": churn_threshold,
                "churn_f1": round(churn_f1, 4)}

    @torch.inference_mode()
    def _logits(self, head: SentimentHead, states, idx: np.ndarray) -> np.ndarray:
        out = np.zeros((len(idx), len(SENTIMENT_LABELS) + len(self.reason_ids) + 1), dtype=np.float32)
        order = np.argsort([len(states[i]) for i in idx], kind="stable")
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            hidden, mask = _pad_states([states[idx[r]] for r in rows])
            out[rows] = head(hidden, mask).numpy()
        return out

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
