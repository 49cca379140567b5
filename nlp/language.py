"""Offline language identification restricted to the languages a deployment serves."""

from __future__ import annotations

from collections.abc import Sequence

UNKNOWN = "unknown"


class LanguageDetector:
    """Lingua detector over ``languages`` (ISO 639-1 codes); low confidence gives ``"unknown"``.

    Short, ambiguous texts ("ok", "123") are common in feedback; calling them
    ``unknown`` is more useful downstream than a confident guess.
    """

    def __init__(self, languages: Sequence[str] = ("en", "sv", "pl"), min_confidence: float = 0.5):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        if len(languages) < 2:
            raise ValueError("language detection needs at least two candidate languages")
        try:
            langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in languages]
        except AttributeError as exc:
            raise ValueError(f"unsupported language code in {list(languages)}") from exc
        self.languages = tuple(languages)
        self.min_confidence = min_confidence
        self._detector = (
            LanguageDetectorBuilder.from_languages(*langs).with_preloaded_language_models().build()
        )

    def detect(self, texts: Sequence[str]) -> list[str]:
        """ISO 639-1 code per text, or ``"unknown"``."""
        results = self._detector.compute_language_confidence_values_in_parallel(list(texts))
        out = []
        for values in results:
            best = values[0] if values else None
            if best is None or best.value < self.min_confidence:
                out.append(UNKNOWN)
            else:
                out.append(best.language.iso_code_639_1.name.lower())
        return out
