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
def churn_analyzer(settings, encoder):
    """The configured feedback analyzer with every default head, built once."""
    from api.components import build_analyzer

    return build_analyzer(settings, encoder)


@pytest.fixture(scope="session")
def churn_simulation(churn_analyzer):
    """A small simulated CX history (2,400 customers), its texts analysed once by the configured analyzer."""
    from dataclasses import replace

    from churn.simulate import simulate
    from churn.text_features import annotate_tables, text_heads

    sim = simulate(2400, seed=7)
    return replace(sim, tables=annotate_tables(sim.tables, churn_analyzer)), text_heads(churn_analyzer)
