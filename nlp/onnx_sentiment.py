"""The analyzer's transformer pass on ONNX Runtime: the same graph and weights, faster on CPU.

:class:`nlp.sentiment_model.SharedPass` (the text model's logits plus the encoder's sentence embeddings)
is exported from the looked-up word vectors on: the 250k x 384 vocabulary table (384 MB) stays in
the encoder's memory-mapped weights, of which a batch touches only its own rows. One export per
distinct pair of model files goes into the model cache (built once, safely: :mod:`nlp.build_once`);
later starts load it in well under a second. Outputs match torch to 1e-5; the export is a pure
function of the weights, so nothing is trusted from outside.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nlp.build_once import build_once
from nlp.encoder import Encoder
from nlp.sentiment_model import SentimentPredictor, TransformerSentiment

_EXPORT_VERSION = 3
MODEL_FILE = "model.onnx"
_MARKER = "cxm-export.json"
MAX_BATCH_TOKENS = 1024
"""Rows x tokens per session run. ONNX Runtime's fused attention materialises every
``(rows, heads, tokens, tokens)`` score, so 32 texts of 256 tokens would hold 0.2 GB per layer;
1024 runs short feedback ~30 at a time and long texts 4 at a time (peak RSS -0.15 GB on PolEmo,
measured no slower)."""


def files_fingerprint(*directories: Path) -> str:
    """SHA-256 over the names and bytes of every file in ``directories``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for directory in directories:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(directory)};".encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def export_key(sentiment: TransformerSentiment) -> str:
    """What the exported graph is a function of.

    The files both models were loaded from when known: hashing the loaded tensors instead would
    page the whole memory-mapped encoder into RAM (+0.4 GB resident) just to name a directory.
    """
    if sentiment.source is not None and sentiment.encoder.source is not None:
        return files_fingerprint(sentiment.encoder.source, sentiment.source)
    return weights_fingerprint(sentiment.shared_pass())


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, shapes, bytes) of ``module``."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.data)
    return digest.hexdigest()


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and quantiser log advice meant for their developers (missing torchvision etc.)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


class _FromWordVectors(torch.nn.Module):
    """The exported entry point: :meth:`SharedPass.from_word_vectors` as a module's ``forward``."""

    def __init__(self, sentiment: TransformerSentiment):
        super().__init__()
        self.shared = sentiment.shared_pass()

    def forward(self, word_vectors: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.shared.from_word_vectors(word_vectors, attention_mask)


def word_vectors(encoder: Encoder, input_ids: torch.Tensor) -> np.ndarray:
    """The graph's first input: ``input_ids`` looked up in the encoder's vocabulary table."""
    with torch.inference_mode():
        return encoder.model.embeddings.word_embeddings(input_ids).numpy()


def export_shared_pass(sentiment: TransformerSentiment, target: Path) -> None:
    """Write ``target/model.onnx`` (+ external weights): word vectors and mask in, logits and embeddings out."""
    sample = sentiment.encoder.tokenize(["a short text", "a somewhat longer text to export with"])
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            _FromWordVectors(sentiment), (torch.from_numpy(word_vectors(sentiment.encoder, sample["input_ids"])),
                                          sample["attention_mask"]), str(target / MODEL_FILE),
            input_names=["word_vectors", "attention_mask"], output_names=["logits", "embeddings"],
            dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}), dynamo=True, external_data=True,
            verbose=False,
        )


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 weights for the matrix multiplications (ONNX Runtime's quantiser)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source / MODEL_FILE), str(target / MODEL_FILE), weight_type=QuantType.QInt8,
                         use_external_data_format=True)


def ensure_onnx_model(sentiment: TransformerSentiment, cache_dir: str | Path,
                      quantize: Literal["none", "int8"] = "none") -> Path:
    """The exported graph for exactly these weights (and ``quantize``), exporting it first if needed."""
    wanted = {"export_version": _EXPORT_VERSION, "torch": torch.__version__, "quantize": quantize,
              "weights": export_key(sentiment)}
    target = Path(cache_dir).expanduser() / "onnx" / f"sentiment-{quantize}-{wanted['weights'][:16]}"

    def export(directory: Path) -> None:
        if quantize == "int8":
            fp32 = Path(tempfile.mkdtemp(prefix=".fp32-", dir=directory))
            export_shared_pass(sentiment, fp32)
            _quantize_int8(fp32, directory)
            shutil.rmtree(fp32)
        else:
            export_shared_pass(sentiment, directory)

    return build_once(target, wanted, export, _MARKER)


class OnnxSentiment(SentimentPredictor):
    """:class:`TransformerSentiment`'s predictions, computed by an ONNX Runtime session.

    The session is thread-safe; the torch encoder stays for tokenising and for ``encoder.encode``
    (taxonomy and topic fitting), so every embedding in the system lives in one space.
    """

    def __init__(self, session, sentiment: TransformerSentiment, path: Path, *,
                 max_batch_tokens: int = MAX_BATCH_TOKENS):
        self.session, self.path, self.max_batch_tokens = session, path, max_batch_tokens
        self.encoder = sentiment.encoder
        self.temperature = sentiment.temperature
        self.labels = sentiment.labels
        self.reason_ids = sentiment.reason_ids
        self.reason_threshold = sentiment.reason_threshold
        self.churn_threshold = sentiment.churn_threshold

    @classmethod
    def from_torch(cls, sentiment: TransformerSentiment, cache_dir: str | Path, *,
                   quantize: Literal["none", "int8"] = "none", threads: int | None = None) -> OnnxSentiment:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Threads waiting for work sleep instead of spinning: the service runs model calls side by side
        # (CXM_ANALYZE_CONCURRENCY) on few cores, where spinning threads take the cores the others need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The arena keeps the peak of the longest batch for good (+0.4 GB after 256-token batches);
        # plain allocation measured no slower per text.
        options.enable_cpu_mem_arena = False
        path = ensure_onnx_model(sentiment, cache_dir, quantize) / MODEL_FILE
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, sentiment, path)

    def _forward_batch(self, batch: dict[str, torch.Tensor],
                       with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Run in slices of at most ``max_batch_tokens`` rows x tokens (see :data:`MAX_BATCH_TOKENS`)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        outputs = ["logits", "embeddings"] if with_embeddings else ["logits"]
        step = max(1, self.max_batch_tokens // ids.shape[1])
        parts = [self.session.run(outputs, {"word_vectors": word_vectors(self.encoder, ids[start:start + step]),
                                            "attention_mask": mask[start:start + step].numpy()})
                 for start in range(0, len(ids), step)]
        logits = np.concatenate([p[0] for p in parts])
        return logits, np.concatenate([p[1] for p in parts]) if with_embeddings else None
