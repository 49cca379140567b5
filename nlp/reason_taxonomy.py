"""The NPS+ reason taxonomy: a user-editable YAML file with stable ids and en/sv/pl wording.

Validation walks the YAML node tree so every error names the file and line to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
REASON_KEYS = {"id", "label", "description", "examples"}
REQUIRED_LANGUAGE = "en"


class TaxonomyError(ValueError):
    """The taxonomy file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Reason:
    id: str
    label: dict[str, str]
    description: dict[str, str]
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def phrases(self) -> list[str]:
        """Every wording of this reason, in every language: what zero-shot tagging compares against."""
        out = []
        for lang in self.label:
            out.append(self.label[lang])
            if lang in self.description:
                out.append(f"{self.label[lang]}: {self.description[lang]}")
        for examples in self.examples.values():
            out.extend(examples)
        return out


@dataclass(frozen=True)
class ReasonTaxonomy:
    reasons: tuple[Reason, ...]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.reasons]

    def check_ids(self, ids: Iterable[str]) -> None:
        """Fail on reason ids the taxonomy does not define (e.g. in labelled training data)."""
        unknown = sorted(set(ids) - set(self.ids))
        if unknown:
            raise TaxonomyError(f"unknown reason ids {unknown}; the taxonomy defines {self.ids}")

    def to_dict(self) -> dict:
        return {
            "reasons": [
                {
                    "id": r.id,
                    "label": dict(r.label),
                    "description": dict(r.description),
                    **({"examples": {k: list(v) for k, v in r.examples.items()}} if r.examples else {}),
                }
                for r in self.reasons
            ]
        }


def default_taxonomy_path() -> Path:
    return Path(str(resources.files("nlp") / "resources" / "reason_taxonomy.yaml"))


def load_taxonomy(path: str | Path | None = None) -> ReasonTaxonomy:
    """Read and validate a taxonomy file (the shipped default when ``path`` is None)."""
    path = Path(path) if path is not None else default_taxonomy_path()
    if not path.is_file():
        raise TaxonomyError(f"{path}: no such taxonomy file")
    return parse_taxonomy(path.read_text(encoding="utf-8"), source=str(path))


def save_taxonomy(taxonomy: ReasonTaxonomy, path: str | Path) -> None:
    Path(path).write_text(
        yaml.safe_dump(taxonomy.to_dict(), allow_unicode=True, sort_keys=False, width=100),
        encoding="utf-8",
    )


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> ReasonTaxonomy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark else "unknown line"
        raise TaxonomyError(f"{source}: {line}: invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{source}: invalid YAML: {exc}") from exc
    return _Walker(source).taxonomy(root)


class _Walker:
    """Turn the composed node tree into a taxonomy, failing with ``source: line N: ...``."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, node: yaml.Node | None, message: str) -> TaxonomyError:
        line = f"line {node.start_mark.line + 1}: " if node is not None else ""
        return TaxonomyError(f"{self.source}: {line}{message}")

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key in {what}")
            if name in out:
                raise self.fail(key, f"duplicate key {name!r} in {what}")
            out[name] = (key, value)
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty string")
        return str(node.value).strip()

    def texts_by_language(self, node: yaml.Node, what: str) -> dict[str, str]:
        out = {}
        for lang, (key, value) in self.mapping(node, what).items():
            if not re.fullmatch(r"[a-z]{2}", lang):
                raise self.fail(key, f"{what}: {lang!r} is not a two-letter language code")
            out[lang] = self.scalar(value, f"{what}.{lang}")
        if REQUIRED_LANGUAGE not in out:
            raise self.fail(node, f"{what} needs an {REQUIRED_LANGUAGE!r} entry")
        return out

    def examples(self, node: yaml.Node, what: str) -> dict[str, tuple[str, ...]]:
        out = {}
        for lang, (key, value) in self.mapping(node, what).items():
            if not re.fullmatch(r"[a-z]{2}", lang):
                raise self.fail(key, f"{what}: {lang!r} is not a two-letter language code")
            if not isinstance(value, yaml.SequenceNode):
                raise self.fail(value, f"{what}.{lang} must be a list of phrases")
            out[lang] = tuple(self.scalar(v, f"an example in {what}.{lang}") for v in value.value)
        return out

    def taxonomy(self, root: yaml.Node | None) -> ReasonTaxonomy:
        if root is None:
            raise self.fail(None, "the file is empty; it needs a 'reasons' list")
        top = self.mapping(root, "the top level")
        extra = set(top) - {"reasons", "version"}
        if extra:
            raise self.fail(top[sorted(extra)[0]][0], f"unknown top-level key {sorted(extra)[0]!r}")
        if "reasons" not in top:
            raise self.fail(root, "missing the 'reasons' list")
        items = top["reasons"][1]
        if not isinstance(items, yaml.SequenceNode) or not items.value:
            raise self.fail(items, "'reasons' must be a non-empty list")
        reasons, seen = [], {}
        for item in items.value:
            reason = self.reason(item)
            if reason.id in seen:
                raise self.fail(item, f"duplicate reason id {reason.id!r} (first defined on line {seen[reason.id]})")
            seen[reason.id] = item.start_mark.line + 1
            reasons.append(reason)
        return ReasonTaxonomy(tuple(reasons))

    def reason(self, node: yaml.Node) -> Reason:
        fields = self.mapping(node, "a reason")
        extra = set(fields) - REASON_KEYS
        if extra:
            name = sorted(extra)[0]
            raise self.fail(fields[name][0], f"unknown key {name!r} in a reason (allowed: {sorted(REASON_KEYS)})")
        for required in ("id", "label", "description"):
            if required not in fields:
                raise self.fail(node, f"a reason is missing {required!r}")
        reason_id = self.scalar(fields["id"][1], "id")
        if not ID_PATTERN.match(reason_id):
            raise self.fail(fields["id"][1], f"reason id {reason_id!r} must be lower-case letters, digits and _")
        return Reason(
            id=reason_id,
            label=self.texts_by_language(fields["label"][1], f"{reason_id}.label"),
            description=self.texts_by_language(fields["description"][1], f"{reason_id}.description"),
            examples=self.examples(fields["examples"][1], f"{reason_id}.examples") if "examples" in fields else {},
        )
