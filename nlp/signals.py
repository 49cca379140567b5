"""CX signals per text (en/sv/pl): churn intent, competitor mentions, effort/friction and urgency.

Patterns are regular expressions over stems that cover the inflections customers write
("säger/sagt/sa upp", "rezygnuję/zrezygnowałem"); every language's patterns run on every text,
because short texts are often misdetected. A churn cue preceded by a negation in the same clause
("I am not cancelling", "jag säger inte upp", "nie rezygnuję") does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nlp.language import ENGLISH_PIPELINE
from nlp.results import Signals

_FLAGS = re.IGNORECASE | re.UNICODE
_CLAUSE_END = re.compile(r"[.;!?\n]|,\s*(?:but|men|ale)\b", _FLAGS)
_NEGATION = re.compile(
    r"\b(?:not|never|don'?t|doesn'?t|won'?t|wouldn'?t|isn'?t|aren'?t|am not|"
    r"inte|ej|aldrig|icke|nie|nigdy)\b|n't\b",
    _FLAGS,
)


@dataclass(frozen=True)
class Cue:
    pattern: re.Pattern
    weight: float = 1.0
    negatable: bool = True


def _cues(spec: Iterable[tuple[str, float] | str], negatable: bool = True) -> list[Cue]:
    out = []
    for item in spec:
        pattern, weight = (item, 1.0) if isinstance(item, str) else item
        out.append(Cue(re.compile(pattern, _FLAGS), weight, negatable))
    return out


_PROVIDER_EN = r"(?:provider|supplier|operator|company|network|carrier|airline|bank|broadband|isp)"
_PROVIDER_SV = r"(?:operatör\w*|leverantör\w*|bolag\w*|bank\w*|företag\w*|nät\w*)"
_PROVIDER_PL = r"(?:operator\w*|dostawc\w*|sie[ćc]\w*|bank\w*|firm\w*)"
_NUMBER_EN = r"(?:two|three|four|five|six|seven|eight|nine|ten|several|many|multiple|numerous|countless|\d+)"
_NUMBER_SV = r"(?:två|tre|fyra|fem|sex|sju|åtta|nio|tio|flera|många|otaliga|\d+)"
_NUMBER_PL = r"(?:dwa|trzy|cztery|pięć|sześć|siedem|osiem|dziewięć|dziesięć|kilka|kilkanaście|wiele|\d+)"

CHURN_CUES = _cues([
    # English
    # "I am / we will / I want to ... cancel": the customer is the one cancelling.
    r"\b(?:i|we)(?:'m|'ll|\s+am|\s+are|\s+will|\s+shall)?\s+(?:(?:be|now|definitely|seriously|going to|gonna|want to|"
    r"wish to|would like to|intend to|plan to|(?:have\s+)?decided to|thinking of|considering)\s+)*cancel(?:l?ing)?\b"
    r"(?!\s+(?:and|then)\s+re)(?!\s+(?:my|our|the|a|this)\s+(?:flight|booking|trip|reservation|appointment))",
    r"\b(?:i|we)(?:'ve|\s+have)?\s+(?:now\s+|ultimately\s+|already\s+|just\s+|previously\s+)?cancell?ed\s+"
    r"(?:my|our|all|the)?\s*(?:contract|subscription|account|membership|services?|plan|package|broadband|order|company)",
    r"\brequested\s+(?:a\s+)?cancellation|\byou(?:'ve|\s+have)?\s+lost\s+a\s+customer",
    r"\b(?:as soon as|when)\s+(?:my\s+)?contract(?:'s|\s+is|\s+ends|\s+allows)?\b[^.;!?]{0,20}\b(?:i(?:'ll|\s+will)\s+)?"
    r"(?:change|leave|switch|move|go)",
    r"\b(?:i(?:'ll|\s+will)|going to)\s+end\s+my\s+contract",
    r"\b(?:use|go\s+to|go)\s+any(?:one|where|body)\s+(?:else|but)\b",
    rf"\b(?:switch|switching|switched|mov(?:e|ing)|go(?:ing)?|chang(?:e|ing))\s+(?:over\s+)?to\s+(?:an?other|a different|a new|a cheaper|a better)\s+{_PROVIDER_EN}",
    r"\b(?:switch(?:ing)?|mov(?:e|ing)|port(?:ing)?)\s+(?:over\s+)?to\s+(?:(?-i:[A-Z])\w+|a\s+competitor|the\s+competition)",
    r"\b(?:leav(?:e|ing)|quit(?:ting)?|ditch(?:ing)?)\s+(?:you|you guys|your company|this company)\b",
    r"\bleav(?:e|ing)\s+(?:you\s+)?for\s+(?-i:[A-Z])\w+",
    r"\bterminat\w*\s+(?:my|our|the)\s+(?:contract|account|subscription|service|agreement)",
    r"\bclos(?:e|ing)\s+(?:my|our)\s+account",
    r"\btak(?:e|ing)\s+my\s+(?:business|money|custom)\s+elsewhere",
    r"\blooking\s+(?:for|at)\s+(?:an?other|a new|a different|alternative)\s+" + _PROVIDER_EN,
    # Swedish
    r"\b(?:säg(?:a|er|s|t)?|sagt|sade|sa)\s+(?:(?:inte|aldrig|ej)\s+)?upp\b",
    r"\buppsägning\w*",
    rf"\bbyt(?:a|er|t|te|er\s+nu)\b[^.;!?]{{0,30}}\b(?:annan|annat|ny|nytt|billigare)\s+{_PROVIDER_SV}",
    r"\bbyt(?:a|er|t|te)\s+till\s+[A-ZÅÄÖ]\w+",
    r"\bavslut(?:a|ar|at|ade)\s+(?:mitt|mina|vårt|abonnemang|avtal|konto)\w*",
    r"\blämn(?:a|ar|at|ade)\s+(?:er|ert\s+\w+)\b",
    r"\bflytt(?:a|ar|at|ade)\s+till\s+(?:en\s+)?(?:annan|[A-ZÅÄÖ]\w+)",
    # Polish
    r"\b(?:z)?rezygn\w*",
    r"\bwypowi(?:adam|adamy|em|emy|edzia\w*|edzie\w*|edział\w*|edzieć|adać)\b[^.;!?]{0,20}\bumow\w*",
    r"\brozwiąz(?:uj\w*|ać|ę|ał\w*)\s+umow\w*",
    rf"\bzmieni(?:am|ę|ać|łem|łam|my)\s+{_PROVIDER_PL}",
    r"\bprzechodz(?:ę|imy)\s+do\s+(?:konkurencji|inne\w*|\w+)",
    r"\bprzejd(?:ę|ziemy)\s+do\s+(?:konkurencji|inne\w*|\w+)",
    r"\bodchodz(?:ę|imy)\b",
])
# Negation is part of these cues ("won't be renewing", "inte förnya", "nie przedłużę").
CHURN_NEGATED_CUES = _cues([
    r"\b(?:not|won'?t|will not|never)\s+(?:be\s+)?renew\w*",
    r"\b(?:inte|aldrig)\s+förlänga\w*|\b(?:inte|aldrig)\s+förnya\w*",
    r"\bnie\s+przedłuż\w*",
], negatable=False)

EFFORT_CUES = _cues([
    # English
    (r"\b(?:had|have|needed|need|has|having)\s+to\s+(?:call|ring|phone|contact|chase|e-?mail|write|explain|repeat|ask|go)\w*", 0.45),
    (rf"\b{_NUMBER_EN}\s+(?:times|calls|phone calls|e-?mails|attempts|visits|engineers?|weeks|hours)\b", 0.45),
    (r"\b(?:called|rang|phoned|contacted|e-?mailed|chased|tried)\b[^.;!?]{0,25}\b(?:again|repeatedly|times|twice)\b", 0.35),
    (r"\b(?:again and again|over and over|repeatedly|every time|each time|twice)\b", 0.25),
    (r"\bon hold\b|\bin a queue\b|\b(?:transferred|passed)\s+(?:around|between|from)", 0.3),
    (r"\bstill\s+(?:not|no|hasn'?t|haven'?t|isn'?t|waiting|unresolved)\b", 0.3),
    (r"\bno(?:body|one)\s+(?:could|can|would|will)\s+(?:help|explain|tell|fix)", 0.3),
    (r"\b(?:hassle|nightmare|ordeal|run-?around|jump through hoops|chasing)\b", 0.35),
    (r"\brepeat(?:ed|ing)?\s+(?:myself|my)\b", 0.35),
    # Swedish
    (r"\b(?:fick|får|måste|behövde|var\s+tvungen\s+att|tvingades)\s+(?:ringa|maila|mejla|skriva|förklara|kontakta|jaga|åka|gå)\w*", 0.45),
    (rf"\b{_NUMBER_SV}\s+(?:gånger|samtal|mejl|mail|försök|besök|veckor|timmar)\b", 0.45),
    (r"\b(?:ringt|ringde|mejlat|mailat|kontaktat|försökt)\b[^.;!?]{0,25}\b(?:igen|gånger|flera)\b", 0.35),
    (r"\bom och om igen\b|\bvarje gång\b|\bgång på gång\b", 0.25),
    (r"\b(?:telefonkö|i kö|kopplad\w*\s+(?:runt|vidare))\b", 0.3),
    (r"\bfortfarande\s+(?:inte|ingen|inget|ej)\b|\bfortfarande\s+olöst", 0.3),
    (r"\b(?:krångel|krångligt|mardröm|strul)\b", 0.35),
    # Polish
    (r"\b(?:musiał(?:em|am|o|y|ysmy|yśmy)?|muszę|trzeba\s+było|byłem\s+zmuszony|byłam\s+zmuszona)\s+(?:dzwonić|zadzwonić|pisać|napisać|tłumaczyć|wyjaśniać|czekać|jeździć|chodzić|prosić)\w*", 0.45),
    (rf"\b{_NUMBER_PL}\s+(?:razy|rozmów|telefonów|maili|e-?maili|prób|wizyt|tygodni|godzin)\b", 0.45),
    (r"\b(?:dzwoniłem|dzwoniłam|pisałem|pisałam|dzwoniliśmy)\b[^.;!?]{0,25}\b(?:razy|ponownie|znowu|wielokrotnie)\b", 0.35),
    (r"\b(?:wielokrotnie|w kółko|za każdym razem|ciągle|znowu)\b", 0.25),
    (r"\b(?:przełącz\w*|odsyłan\w*|na infolinii|w kolejce)\b", 0.3),
    (r"\bnadal\s+(?:nie|brak)\b|\bwciąż\s+(?:nie|brak)\b", 0.3),
    (r"\b(?:koszmar|męczarni\w*|udręk\w*)\b", 0.35),
])

URGENCY_CUES = _cues([
    # English
    (r"\b(?:urgent(?:ly)?|asap|emergency|immediately|right now|right away|as soon as possible|at once)\b", 0.6),
    (r"\b(?:today|tonight|tomorrow|by the end of the day)\b", 0.25),
    (r"\b(?:without|no)\s+(?:internet|service|power|signal|connection|phone|water|heating|money)\b", 0.35),
    (r"\b(?:for|in)\s+(?:\d+|two|three|four|five|several)\s+days\b", 0.2),
    (r"\b(?:need|needs|require)\s+(?:this|it|help|an answer)\s+(?:now|fixed|sorted|today)\b", 0.35),
    (r"\b(?:stranded|stuck|missed my|deadline|legal action|ombudsman|complaint)\b", 0.3),
    # Swedish
    (r"\b(?:brådskande|akut|omedelbart|genast|snarast|omgående|så snart som möjligt|nu direkt)\b", 0.6),
    (r"\b(?:idag|i dag|ikväll|i kväll|imorgon|i morgon)\b", 0.25),
    (r"\butan\s+(?:internet|tjänst|ström|täckning|uppkoppling|telefon|pengar)\b", 0.35),
    (r"\b(?:anmäl\w*|arn|konsumentverket)\b", 0.3),
    # Polish
    (r"\b(?:pilne|pilnie|natychmiast|jak najszybciej|od razu|niezwłocznie|bezzwłocznie)\b", 0.6),
    (r"\b(?:dzisiaj|dziś|jutro|wieczorem)\b", 0.25),
    (r"\bbez\s+(?:internetu|usługi|prądu|zasięgu|telefonu|pieniędzy)\b", 0.35),
    (r"\b(?:reklamacj\w*|rzecznik\w*|uokik|skarg\w*)\b", 0.3),
])
RULE_FLOOR = 0.75
NEGATED_CAP = 0.25
_SHOUTING = re.compile(r"!{2,}")
_COMPARISON = re.compile(
    r"\b(?:switch\w*|mov(?:e|ing)\s+to|go(?:ing)?\s+(?:over\s+)?to|better|cheaper|than|instead|offer\w*|deal|leav\w*|join\w*)\b",
    _FLAGS,
)


def _clause_prefix(text: str, start: int) -> str:
    """The text from the last clause boundary before ``start`` up to ``start``."""
    boundary = 0
    for m in _CLAUSE_END.finditer(text, 0, start):
        boundary = m.end()
    return text[boundary:start]


def _negated(text: str, match: re.Match) -> bool:
    window = _clause_prefix(text, match.start())[-40:] + match.group(0)
    return bool(_NEGATION.search(window))


def churn_phrases(text: str) -> tuple[bool, bool]:
    """``(stated, negated)``: a churn phrase states intent; one was found only under a negation."""
    if any(c.pattern.search(text) for c in CHURN_NEGATED_CUES):
        return True, False
    negated = False
    for cue in CHURN_CUES:
        for match in cue.pattern.finditer(text):
            if not (cue.negatable and _negated(text, match)):
                return True, False
            negated = True
    return False, negated


def churn_intent(text: str) -> bool:
    return churn_phrases(text)[0]


def churn_intent_score(probability: float | None, threshold: float, stated: bool, negated: bool) -> float:
    """The learned churn probability rescaled so its validation threshold sits at 0.5, plus the rules.

    A stated phrase lifts the score to at least :data:`RULE_FLOOR` (the rules are high-precision
    evidence); a phrase found only under a negation ("I'm not cancelling") caps it at
    :data:`NEGATED_CAP`. Without a learned probability the rules alone give 1.0 or 0.0.
    """
    if probability is None:
        return 1.0 if stated else 0.0
    if probability < threshold:
        score = 0.5 * probability / threshold
    else:
        score = 0.5 + 0.5 * (probability - threshold) / max(1.0 - threshold, 1e-9)
    if stated:
        score = max(score, RULE_FLOOR)
    elif negated:
        score = min(score, NEGATED_CAP)
    return round(float(score), 4)


def _score(text: str, cues: Sequence[Cue]) -> float:
    """Noisy-OR of the matched cues' weights: more, and stronger, cues push the score towards 1."""
    keep = 1.0
    for cue in cues:
        if cue.pattern.search(text):
            keep *= 1.0 - cue.weight
    return round(1.0 - keep, 4)


def effort_score(text: str) -> float:
    return _score(text, EFFORT_CUES)


def urgency_score(text: str) -> float:
    score = _score(text, URGENCY_CUES)
    if _SHOUTING.search(text):
        score = 1.0 - (1.0 - score) * 0.8
    return round(score, 4)


class RuleSignalDetector:
    """Pattern-based signals; competitor names from a list, plus English ORG entities from spaCy.

    ``competitors`` are matched as whole words (case-sensitive when written in capitals, such as
    "EE" or "BT"). With ``ner=True`` an ORG entity also counts when its clause compares or
    switches ("moving to Acme, they are cheaper") and it is not one of ``own_brands``.
    """

    def __init__(self, competitors: Sequence[str] = (), *, own_brands: Sequence[str] = (), ner: bool = True):
        names = [c.strip() for c in competitors if c and c.strip()]
        self.competitors = list(dict.fromkeys(names))
        self.own_brands = {b.strip().lower() for b in own_brands if b and b.strip()}
        self._patterns = [
            (name, re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", 0 if name.isupper() else re.IGNORECASE))
            for name in self.competitors
        ]
        self._nlp = _load_english_ner() if ner else None

    def detect(self, texts: Sequence[str], languages: Sequence[str], *,
               churn_probability: Sequence[float] | None = None, churn_threshold: float = 0.5) -> list[Signals]:
        """Signals per text; ``churn_probability`` (the text model's) joins the phrase rules when given."""
        if len(texts) != len(languages):
            raise ValueError(f"got {len(texts)} texts but {len(languages)} languages")
        if churn_probability is not None and len(churn_probability) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(churn_probability)} churn probabilities")
        named = [self._named(t) for t in texts]
        if self._nlp is not None:
            english = [i for i, lang in enumerate(languages) if lang == "en"]
            for i, doc in zip(english, self._nlp.pipe([texts[i] for i in english], batch_size=64)):
                for ent in doc.ents:
                    if ent.label_ == "ORG" and self._is_competitor(ent):
                        named[i].append(ent.text.strip())
        probabilities = [None] * len(texts) if churn_probability is None else churn_probability
        scores = [churn_intent_score(p, churn_threshold, *churn_phrases(text))
                  for text, p in zip(texts, probabilities)]
        return [
            Signals(
                churn_intent=score >= 0.5,
                competitors=list(dict.fromkeys(found)),
                effort=effort_score(text),
                urgency=urgency_score(text),
                churn_intent_score=score,
            )
            for text, found, score in zip(texts, named, scores)
        ]

    def _named(self, text: str) -> list[str]:
        return [name for name, pattern in self._patterns if pattern.search(text)]

    def _is_competitor(self, ent) -> bool:
        name = ent.text.strip().lstrip("@#")
        if len(name) < 2 or name.lower() in self.own_brands:
            return False
        if any(name.lower() == c.lower() for c in self.competitors):
            return False
        return bool(_COMPARISON.search(ent.sent.text))


def _load_english_ner():
    """en_core_web_sm's NER (with the parser for sentence bounds), or None where it is not installed."""
    import spacy

    try:
        return spacy.load(ENGLISH_PIPELINE, exclude=["lemmatizer"])
    except OSError:
        return None
