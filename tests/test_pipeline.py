"""The library's front door: cheap imports, the default pipeline from one config, heads as values."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import pytest

import churn
import nlp
from nlp import Analysis, AnalyzerConfig, FeedbackAnalyzer, load_default
from nlp.analyzer import HEADS
from nlp.signals import RuleSignalDetector
from nlp.topics.model import TopicModel

README = Path(__file__).parents[1] / "README.md"
TEXTS = ["Great staff, but the invoice was wrong.", "Fakturan var fel och ingen svarar i telefon.",
         "Za drogo, rezygnuję i przechodzę do Play."]


def test_importing_the_packages_loads_no_model_and_no_heavy_library():
    code = ("import sys, nlp, churn\n"
            "from nlp import AnalyzerConfig, FeedbackAnalyzer, load_default, Analysis\n"
            "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'onnxruntime', 'spacy', 'lingua') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("package", [nlp, churn])
def test_public_names_resolve_and_the_version_is_the_distributions(package):
    assert package.__version__ == version("cxm")
    import churn.simulate  # noqa: F401  (a submodule named like an export must not shadow it)

    for name in package.__all__:
        assert not inspect.ismodule(getattr(package, name)), name
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_default_pipeline_has_every_default_head(analyzer_config, churn_analyzer):
    expected = {"sentiment", "sentence_splitter", "reasons", "signals"}
    if TopicModel.exists(analyzer_config.topic_model_dir):
        expected.add("topics")
    assert set(churn_analyzer.heads) == expected
    assert churn_analyzer.heads == tuple(h for h in HEADS if h in expected)


def test_without_drops_heads_from_a_copy_sharing_the_models(churn_analyzer):
    lean = churn_analyzer.without("sentence_splitter", "reasons")
    assert "reasons" not in lean.heads and "sentence_splitter" not in lean.heads and "reasons" in churn_analyzer.heads
    assert lean.sentiment is churn_analyzer.sentiment and lean.encoder is churn_analyzer.encoder
    (full,), (slim,) = churn_analyzer.analyze(TEXTS[:1]), lean.analyze(TEXTS[:1])
    assert full.sentences and full.reasons and not slim.sentences and slim.reasons == []
    assert slim.sentiment == full.sentiment and slim.signals == full.signals
    with pytest.raises(ValueError, match="unknown head"):
        churn_analyzer.without("sentiments")


def test_load_default_uses_the_components_it_is_given(analyzer_config, encoder, language_detector):
    signals = RuleSignalDetector(["Play"], ner=False)
    analyzer = load_default(analyzer_config.model_dir, encoder=encoder, language_detector=language_detector,
                            signals=signals)
    assert analyzer.signals is signals and analyzer.encoder is encoder
    results = analyzer.analyze(TEXTS)
    assert [r.language for r in results] == ["en", "sv", "pl"]
    assert [r.sentiment.label for r in results] == ["negative", "negative", "negative"]
    assert results[0].mixed and results[2].signals.competitors == ["Play"] and results[2].signals.churn_intent


def test_unknown_components_and_options_are_refused_before_anything_loads(analyzer_config):
    with pytest.raises(TypeError, match="unknown component"):
        FeedbackAnalyzer.from_config(analyzer_config, sentiments=object())
    with pytest.raises(ValueError, match="backend"):
        replace(analyzer_config, backend="tensorflow")


def test_analysis_survives_a_round_trip_through_json(churn_analyzer):
    for analysis in churn_analyzer.analyze([*TEXTS, "", None]):
        stored = json.loads(json.dumps(analysis.to_dict()))
        assert Analysis.from_dict(stored) == analysis


def test_an_analysis_stored_before_the_learned_churn_score_gets_the_rules_verdict():
    stored = {"language": "en", "signals": {"churn_intent": True, "competitors": [], "effort": 0.0, "urgency": 0.0},
              "reasons": [{"id": "price", "score": 0.9}]}
    analysis = Analysis.from_dict(stored)
    assert analysis.signals.churn_intent_score == 1.0 and analysis.reasons[0].id == "price"
    assert analysis.sentences == [] and analysis.sentiment is None and analysis.mixed is False


def test_the_config_defaults_to_the_users_cache_and_offline():
    config = AnalyzerConfig()
    assert config.offline and config.backend == "onnx" and config.model_dir.name == "models"
    assert config.topic_model_dir == config.model_dir / "topics"


@pytest.mark.slow
def test_readme_python_example_runs_and_prints_what_it_says(tmp_path, monkeypatch, capsys):
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    promised = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    printed = capsys.readouterr().out.splitlines()
    assert len(promised) == 3 and printed[:3] == promised
    risk = namespace["risk"]
    assert len(risk) > 100 and set(risk["tier"]) <= {"high", "medium", "low"} and risk["probability"].between(0, 1).all()
    assert (tmp_path / "my-churn-model" / "model_card.json").is_file()
