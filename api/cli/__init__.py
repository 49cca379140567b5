"""The ``cxm`` command line: one module per command group, registered on one Typer app."""

from api.cli.app import app
from api.cli import alerts, analyze, churn, score, serve, setup, topics, train_reasons, train_sentiment, worker  # noqa: F401  (modules register their commands)

__all__ = ["app"]
