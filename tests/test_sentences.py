import pytest

from nlp.sentences import SpacySentenceSplitter


@pytest.fixture(scope="module")
def splitter():
    return SpacySentenceSplitter()


def pieces(splitter, text, language):
    (spans,) = splitter.split([text], [language])
    return [text[a:b] for a, b in spans]


def test_english_sentences_and_contrastive_clauses(splitter):
    text = "Great staff, but the invoice was wrong. I will leave!  However, the app is fine."
    assert pieces(splitter, text, "en") == [
        "Great staff", "but the invoice was wrong.", "I will leave!", "However, the app is fine.",
    ]


def test_but_that_is_not_a_contrast_does_not_split(splitter):
    assert pieces(splitter, "It was nothing but trouble.", "en") == ["It was nothing but trouble."]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Bra personal men fakturan var fel. Jag slutar!", "sv", ["Bra personal", "men fakturan var fel.", "Jag slutar!"]),
        ("Priset var bra, fast leveransen dröjde.", "sv", ["Priset var bra", "fast leveransen dröjde."]),
        ("Sitter fast i kön.", "sv", ["Sitter fast i kön."]),
        ("Obsługa miła, ale faktura była błędna. Polecam!", "pl", ["Obsługa miła", "ale faktura była błędna.", "Polecam!"]),
        ("Lekarz dobry, jednak długo czekałam.", "pl", ["Lekarz dobry", "jednak długo czekałam."]),
    ],
)
def test_swedish_and_polish(splitter, text, language, expected):
    assert pieces(splitter, text, language) == expected


def test_spans_index_the_original_text_in_input_order(splitter):
    texts = ["  Hello there. Bye.", "Dzień dobry.", "", ":)"]
    spans = splitter.split(texts, ["en", "pl", "en", "unknown"])
    assert [[texts[i][a:b] for a, b in s] for i, s in enumerate(spans)] == [
        ["Hello there.", "Bye."], ["Dzień dobry."], [], [":)"],
    ]


def test_pipelines_are_built_once_per_language(splitter):
    splitter.split(["One.", "Två."], ["en", "sv"])
    english = splitter.pipeline("en")
    splitter.split(["Three."], ["en"])
    assert splitter.pipeline("en") is english
    assert "senter" in english.pipe_names


def test_mismatched_lengths_are_rejected(splitter):
    with pytest.raises(ValueError, match="differ in length"):
        splitter.split(["a", "b"], ["en"])
