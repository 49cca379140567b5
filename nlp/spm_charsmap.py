"""Compile a per-codepoint normalisation table into a SentencePiece precompiled charsmap.

``tokenizers.normalizers.Precompiled`` takes the same binary charsmap that
SentencePiece models embed; the ``sentencepiece`` package compiles one from a
rule TSV (source codepoints, a tab, target codepoints, all in hex).
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def compile_charsmap(table: dict[int, tuple[int, ...]]) -> bytes:
    """Compile ``{codepoint: replacement codepoints}`` into charsmap bytes."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    lines = [
        f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}" for cp, out in sorted(table.items())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
        normalizer = spm.SentencePieceNormalizer(rule_tsv=str(rules))
        spec = sentencepiece_model_pb2.NormalizerSpec()
        spec.ParseFromString(normalizer.serialized_normalizer_spec())
    return spec.precompiled_charsmap
