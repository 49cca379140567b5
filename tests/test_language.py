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


def test_a_language_the_deployment_does_not_serve_is_unknown(language_detector):
    texts = [
        "Der Kundendienst hat nie zurückgerufen und die Rechnung war falsch.",
        "Le service client n'a jamais rappelé et la facture était fausse.",
        "Jag är nöjd med fakturan",
        "Fatalna obsługa, nikt nie odpowiada.",
    ]
    assert language_detector.detect(texts) == ["unknown", "unknown", "sv", "pl"]


def test_serving_another_language_detects_it(settings):
    detector = LanguageDetector(["en", "sv", "pl", "de"])
    assert detector.detect(["Der Kundendienst hat nie zurückgerufen und die Rechnung war falsch."]) == ["de"]
