"""Session-wide real models: loaded once, shared by every test that needs them."""

from __future__ import annotations

import pytest

from api.settings import Settings
from nlp import AnalyzerConfig, FeedbackAnalyzer
from nlp.pipeline import build_encoder, build_language_detector


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Default settings; the model cache is the one `./run` prepared (built on demand otherwise)."""
    return Settings()


@pytest.fixture(scope="session")
def analyzer_config(settings) -> AnalyzerConfig:
    """The library's default analyzer config, on the service's model cache."""
    return AnalyzerConfig(model_dir=settings.model_dir)


@pytest.fixture(scope="session")
def encoder(analyzer_config):
    return build_encoder(analyzer_config)


@pytest.fixture(scope="session")
def language_detector(analyzer_config):
    return build_language_detector(analyzer_config)


@pytest.fixture(scope="session")
def churn_analyzer(analyzer_config, encoder, language_detector):
    """The default feedback analyzer with every head, built once."""
    return FeedbackAnalyzer.from_config(analyzer_config, encoder=encoder, language_detector=language_detector)


@pytest.fixture(scope="session")
def churn_simulation(churn_analyzer):
    """A small simulated CX history (2,400 customers), its texts analysed once by the configured analyzer."""
    from dataclasses import replace

    from churn.simulate import simulate
    from churn.text_features import annotate_tables, text_heads

    sim = simulate(2400, seed=7)
    return replace(sim, tables=annotate_tables(sim.tables, churn_analyzer)), text_heads(churn_analyzer)
