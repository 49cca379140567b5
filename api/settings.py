"""The one typed settings object, read where the app and the command line start.

Sources, highest priority first: keyword arguments, ``CXM_*`` environment
variables, a ``.env`` file, then an optional TOML file named by ``CXM_CONFIG``.
``nlp`` and ``churn`` never read it: they take plain arguments.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from nlp.encoder import BUILTIN_E5


def _default_database_url() -> str:
    return f"sqlite:///{Path(user_data_dir('cxm')) / 'cxm.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CXM_", env_file=".env", extra="forbid", validate_default=True
    )

    database_url: str = Field(default_factory=_default_database_url)
    model_dir: Path = Field(
        default_factory=lambda: Path(user_cache_dir("cxm")) / "models",
        description="Cache for converted models (the encoder is built here on first use).",
    )
    encoder: str = Field(
        BUILTIN_E5,
        description="Builtin name, a local Hugging Face model directory, or a hub id (online).",
    )
    offline: bool = Field(
        True, description="Forbid model-hub downloads; set false to allow hub ids (online users)."
    )
    sentiment_model: str = Field(
        "builtin", description="The text model (sentiment, reasons, churn intent): 'builtin' (shipped with cxm) or a directory saved by `cxm train sentiment`."
    )
    topic_model: Path | None = Field(
        None,
        description="Directory saved by `cxm topics fit` (default: model_dir/topics); used when present.",
    )
    reason_taxonomy: Path | None = Field(
        None, description="YAML reason taxonomy (default: the one shipped with cxm); ids the text model knows are tagged by its head, others zero-shot."
    )
    reason_model: Path | None = Field(
        None, description="Directory saved by `cxm train reasons`; replaces the text model's head and zero-shot tagging when set."
    )
    competitors: list[str] = Field(
        [], description="Competitor names to find in feedback (e.g. ['Telia', 'Tele2', 'Orange'])."
    )
    own_brands: list[str] = Field(
        [], description="Your own brand names, never reported as competitors by entity recognition."
    )
    competitor_ner: bool = Field(True, description="Also report English ORG entities in switch/compare clauses.")
    languages: list[str] = ["en", "sv", "pl"]
    topic_display_language: str = Field(
        "en", min_length=2, max_length=8,
        description="Language of topic labels written by `cxm topics fit` (keywords are kept per language).")
    language_min_confidence: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(32, ge=1, le=1024)
    max_length: int = Field(256, ge=16, le=512, description="Tokens per text fed to the model.")
    max_sentences: int = Field(
        32, ge=1, le=10_000,
        description="Most sentences of one text scored one by one (sentence sentiment, mixed); each costs a "
        "model pass, so a long text held the model for seconds. Beyond it the analysis lists the first ones "
        "with sentences_truncated: true; the document-level results are unaffected.")
    torch_threads: int | None = Field(None, ge=1)
    backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="Runtime of the analyzer's transformer pass: onnx (ONNX Runtime; exported once into "
        "model_dir, same outputs to ~1e-6, several times faster per text on CPU) or torch.",
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8: dynamic int8 linear layers, ~2x faster on CPU at a measured accuracy cost "
        "(docs/model_cards/sentiment.md).",
    )
    data_dir: Path = Field(
        Path("../shared/data"), description="Labelled training/benchmark data (optional)."
    )

    # Database: an outage answers 503 + Retry-After within these bounds instead of hanging
    database_connect_timeout_s: int = Field(
        5, ge=2, le=300, description="PostgreSQL connection attempts give up after this (libpq counts whole seconds, at least 2).")
    database_pool_timeout_s: float = Field(
        5.0, gt=0, le=300, description="Waiting for a free pooled PostgreSQL connection gives up after this.")
    database_statement_timeout_s: float = Field(
        30.0, ge=0, le=86_400, description="PostgreSQL cancels a statement running longer (0: no limit; "
        "migrations run without one).")
    database_lock_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Waiting for a lock gives up after this: PostgreSQL's lock_timeout, "
        "SQLite's busy timeout (one writer at a time).")
    database_retry_after_s: int = Field(
        5, ge=1, le=3600, description="Retry-After of a 503 database_unavailable answer.")

    # Service (API, database, triage queue)
    api_docs_open: bool = Field(
        False, description="Serve /docs, /redoc and /openapi.json to anyone (development); off: /openapi.json "
        "needs an API key of any role and the docs pages are not served.")
    api_max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies get 413.")
    api_max_batch: int = Field(500, ge=1, le=10_000, description="Most feedback items in one POST.")
    api_rate_limit_per_minute: int = Field(
        1200, ge=1, description="Sustained requests per API key per minute; beyond it 429."
    )
    api_rate_limit_burst: int = Field(120, ge=1, description="Requests a key may send at once.")
    api_rate_limits_shared: bool = Field(
        True, description="Keep the request, character and failed-key budgets in the database, so they hold "
        "across API processes and machines (one small write per request); false: each process counts its own.")
    api_analyze_chars_per_minute: int = Field(
        120_000, ge=10_000, description="Characters of text one API key may send to POST /v1/analyze per minute "
        "(also the most in one call; beyond it 413): the request limit alone lets one key's long texts hold the "
        "model for everyone. Bulk analysis belongs in POST /v1/feedback or `cxm score`.")
    api_failed_auth_per_minute: int = Field(
        20, ge=1, description="Wrong API keys a client address may send per minute (as a burst too); beyond "
        "it every request from that address gets 429 until the budget refills.")
    min_group_size: int = Field(
        5, ge=1, le=1000,
        description="Metrics grouped `by` a segment show a segment only with at least this many distinct "
        "customers in the period; smaller ones are merged into '(other)', so no group is one customer.",
    )
    analyze_batch_wait_ms: float = Field(
        0.0, ge=0, le=1000,
        description="Extra wait for /v1/analyze calls to share a batch (0: calls that queued while "
        "the model was busy share the next one, with no added delay).",
    )
    analyze_max_batch: int = Field(32, ge=1, le=1024, description="Most texts in one analyzer call of /v1/analyze.")
    analyze_max_batch_chars: int = Field(
        2_000, ge=100, le=1_000_000,
        description="Most characters in one analyzer call of /v1/analyze (a longer text goes alone): a large call "
        "is split into such batches, taken fairly between API keys, so a small call waits for one batch at most.")
    analyze_concurrency: int = Field(
        2, ge=1, le=64,
        description="/v1/analyze batches run at once, at most one per API key: one key's long texts leave the "
        "others a lane.")
    analyze_max_queue: int = Field(
        256, ge=1, le=100_000, description="Most /v1/analyze calls waiting for the model; beyond it 503 + Retry-After.")
    analyze_timeout_s: float = Field(
        30.0, gt=0, le=600, description="A /v1/analyze call waiting longer for the model gets 503 + Retry-After.")
    analyze_on_ingest: bool = Field(
        True, description="Analyse stored feedback within the request (inline, the embedded default); false: "
        "queued mode, POST /v1/feedback answers once rows are stored and `cxm worker` processes analyse them.")
    ingest_max_pending: int = Field(
        100_000, ge=0, description="Back-pressure: while more feedback rows than this wait for analysis, "
        "POST /v1/feedback answers 503 ingest_backlog with Retry-After (0: no bound).")
    analysis_max_attempts: int = Field(5, ge=1, description="Attempts before a row is marked failed.")
    analysis_retry_interval_s: float = Field(
        30.0, ge=0, description="A failed analysis is retried by `cxm worker` after this long (0: `cxm worker` "
        "retries no analyses, unless queued mode: analyze_on_ingest false)."
    )
    worker_poll_interval_s: float = Field(
        5.0, gt=0, le=3600, description="`cxm worker` looks for queued retraining runs this often.")
    worker_lease_s: float = Field(
        120.0, gt=0, le=86_400,
        description="A running run whose worker sent no heartbeat for this long is recorded failed (its worker "
        "died); the worker beats every quarter of it.")
    model_refresh_interval_s: float = Field(
        30.0, ge=0, le=86_400,
        description="API processes load a churn model retraining activated within this long (0: only at start "
        "and on flag).")
    pii_redact: list[Literal["email", "phone", "card", "personnummer", "pesel"]] = Field(
        ["email", "phone", "card", "personnummer", "pesel"],
        description="Personal data replaced by a placeholder before storage or analysis.",
    )
    case_cooldown_days: int = Field(
        30, ge=0, description="A customer whose case was resolved or dismissed this recently gets no new case.",
    )
    cases_per_day: int = Field(
        25, ge=0,
        description="Most new cases `flag` opens in any 24 hours, highest churn probability first: what the "
        "team can work (0: no cap). Customers above the threshold beyond it wait in the queue without a case.",
    )
    risk_threshold: float | None = Field(
        None, ge=0, le=1,
        description="Churn probability that opens a case; unset: the churn model's own, chosen at training.",
    )
    churn_model: Path | None = Field(
        None,
        description="Directory saved by `cxm train churn`; pins the churn model (unset: the latest one "
        "activated by retraining, else the one shipped with cxm).",
    )
    retrain_min_pr_auc_gain: float = Field(
        -0.01, ge=-1, le=1,
        description="A retrained churn model is activated when its validation PR-AUC minus the current "
        "model's is at least this (negative: a small loss is tolerated for fresher data).",
    )

    # Alerts (rules and their webhooks are in the database, managed through /v1/admin/alerts)
    alerts_interval_s: float = Field(
        60.0, ge=0, le=86_400, description="`cxm worker` evaluates alert rules and sends due webhooks this often "
        "(0: off; `cxm alerts run` from cron does the same once).")
    alerts_timeout_s: float = Field(5.0, gt=0, le=120, description="One webhook call gives up after this.")
    alerts_max_attempts: int = Field(
        8, ge=1, le=50, description="Webhook calls per alert before its delivery is recorded failed.")
    alerts_retry_base_s: float = Field(
        30.0, gt=0, le=86_400, description="Wait before the first retry of a failed webhook call, doubled after "
        "each further failure (exponential backoff) up to CXM_ALERTS_RETRY_MAX_S.")
    alerts_retry_max_s: float = Field(3600.0, gt=0, le=7 * 86_400, description="Longest wait between retries.")

    # Web app (/app)
    web_secret: SecretStr | None = Field(
        None, description="Signs the web app's session cookies; unset: a random secret per process, so "
        "sign-ins end when it restarts and are not shared between processes (set it when running several).")
    web_session_hours: float = Field(8.0, gt=0, le=24 * 30, description="How long a web sign-in lasts.")
    web_cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set true when served behind TLS).")

    @property
    def topic_model_dir(self) -> Path:
        return self.topic_model or self.model_dir / "topics"

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        value = [v.strip().lower() for v in value]
        if len(value) < 2 or any(len(v) != 2 for v in value):
            raise ValueError("languages must be two or more ISO 639-1 codes, e.g. ['en','sv','pl']")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        config_file = os.environ.get("CXM_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"CXM_CONFIG points to a missing file: {config_file}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


@lru_cache
def get_settings() -> Settings:
    """Settings for this process, validated once (FastAPI dependency and CLI entry)."""
    return Settings()
