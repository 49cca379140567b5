import pytest

from nlp.language import LanguageDetector


def test_detects_configured_languages(language_detector):
    texts = [
        "The invoice was wrong and support never called back.",
        "Fakturan var fel och kundtjänsten ringde aldrig tillbaka.",
        "Faktura była błędna, a obsługa klienta nigdy nie oddzwoniła.",
        "12345 !!!",
    ]
    assert language_detector.detect(texts) == ["en", "sv", "pl", "unknown"]


def test_rejects_unsupported_codes():
    with pytest.raises(ValueError, match="unsupported language code"):
        LanguageDetector(["en", "xx"])
