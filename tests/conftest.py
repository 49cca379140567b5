"""Session-wide real models: loaded once, shared by every test that needs them."""

from __future__ import annotations

import pytest

from api.components import build_encoder, build_language_detector
from api.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Default settings; the model cache is the one `./run` prepared (built on demand otherwise)."""
    return Settings()


@pytest.fixture(scope="session")
def encoder(settings):
    return build_encoder(settings)


@pytest.fixture(scope="session")
def language_detector(settings):
    return build_language_detector(settings)


@pytest.fixture(scope="session")
def churn_simulation(settings, encoder):
    """A small simulated CX history, its texts analysed once by the configured analyzer."""
    from dataclasses import replace

    from api.components import build_analyzer
    from churn.simulate import simulate
    from churn.text_features import annotate_tables, text_heads

    analyzer = build_analyzer(settings, encoder)
    sim = simulate(1200, seed=7)
    return replace(sim, tables=annotate_tables(sim.tables, analyzer)), text_heads(analyzer)
