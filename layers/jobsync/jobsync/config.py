"""One validated settings model for every function, read from the environment.

Lambda functions get these from template.yaml; the local stack sets the same
variables. The optional YAML file (`JOBSYNC_CONFIG`) only carries the
`background.job_status_polling` keys of the contract.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


class ConfigError(RuntimeError):
    """The environment does not describe a usable configuration."""


def _require_priced(sku: str, where: str) -> None:
    from jobsync.domain.cost import price_per_second

    if price_per_second(sku) is None:
        # A typo here would silently make every cost null: refuse to start instead.
        raise ValueError(f"{where}: no price known for hardware {sku!r}")


class PollingConfig(BaseModel):
    """What the deployment says about background polling (before the user's preference)."""

    model_config = ConfigDict(frozen=True)

    # None means "not said": polling then follows the webhook rule.
    enabled: bool | None = None
    interval_seconds: int = Field(default=30, ge=1, le=3600)
    # How often the scheduler invokes the poller. EventBridge cannot fire more
    # often than once a minute, so one invocation runs several ticks.
    schedule_period_seconds: int = Field(default=60, ge=1, le=3600)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    jobs_table: str = "jobsync-jobs"
    connections_table: str = "jobsync-connections"
    state_table: str = "jobsync-state"
    tokens_table: str = "jobsync-tokens"

    # sha256 hex digests of the bootstrap API tokens (admin scope); the tokens themselves are never stored.
    # Tokens issued through the API live in the tokens table, also as digests.
    api_token_hashes: tuple[str, ...] = ()

    replicate_api_token: SecretStr | None = None
    # In AWS the token stays in Secrets Manager; the functions only know where.
    replicate_api_token_secret_arn: str | None = None
    replicate_api_base_url: str = "https://api.replicate.com/v1"
    replicate_webhook_secret: SecretStr | None = None
    # Webhooks only through CloudFront (services/origin_verify.py): the Secrets Manager secret whose value
    # CloudFront adds to what it forwards to the API. None: every webhook is taken (no per-IP rule to keep).
    origin_verify_secret_arn: str | None = None
    provider_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    provider_max_retries: int = Field(default=4, ge=0, le=10)
    # A longer wait than this is not worth holding a Lambda for: give up instead.
    provider_max_retry_wait_seconds: float = Field(default=10.0, ge=0, le=120)

    webhook_url: str | None = None
    polling: PollingConfig = PollingConfig()

    hardware_by_model: dict[str, str] = Field(default_factory=dict)
    default_hardware: str = "gpu-h100"

    # Checked between pages (Replicate's hold a hundred): a cap below a page still takes whole pages.
    # Deployments keep at least 100 (template.yaml's MinValue); tests use small pages and small caps.
    sync_cap_per_list: int = Field(default=1000, ge=1, le=100_000)
    max_connections_per_ip: int = Field(default=5, ge=1, le=1000)
    broadcast_workers: int = Field(default=64, ge=1, le=256)
    # A broadcast of more posts (connections × messages) than this is split: the broadcaster posts the
    # first share itself and hands each other share to itself (`broadcaster_function`). A post costs
    # about 0.3 ms of CPU and a 512 MB function has about a third of a vCPU: 10,000 posts are about
    # 10 s of its 60 s timeout.
    broadcaster_function: str | None = None
    broadcast_posts_per_invocation: int = Field(default=10_000, ge=1, le=1_000_000)
    # Inline progress asks the provider for fresh logs at most this often per job.
    log_refresh_seconds: float = Field(default=5.0, ge=0, le=3600)
    # The function that fetches ended jobs' final log tails (handed off to; see services/final_logs.py).
    tail_keeper_function: str | None = None
    # The function that imports a provider's history in the background (services/history_import.py),
    # and how many pages of each list a sync reads itself before it answers and hands the rest to it.
    history_importer_function: str | None = None
    sync_first_pages: int = Field(default=2, ge=1, le=50)
    # How long an importer's lease (or a hand-off to one) holds before the poller's tick or a sync
    # starts another: the longest an import waits after a crash or a lost invocation.
    history_import_lease_seconds: float = Field(default=60.0, ge=5, le=900)
    # Final-tail fetches one tail keeper runs at once. The template runs at most 2 tail keepers
    # (ReservedConcurrentExecutions): 8 requests in flight at Replicate's 150-500 ms a GET stay
    # under its 3,000 reads a minute (50/s), leaving room for the poller's list pages.
    final_log_workers: int = Field(default=4, ge=1, le=64)
    # A pending final tail handed to a tail keeper this long ago is taken to be lost and handed off
    # again by the poller's tick: the tail keeper's 120 s timeout, three tries (Lambda retries twice,
    # after about 1 and 2 minutes) and time queued behind the two tail keepers allowed to run. Kept
    # well under the hour after which Replicate deletes a job's logs.
    final_tail_resume_after_seconds: float = Field(default=900.0, ge=60, le=1800)
    # How many jobs one WebSocket connection may follow at once.
    max_follows_per_connection: int = Field(default=10, ge=1, le=100)

    websocket_url: str | None = None
    websocket_management_url: str | None = None

    # Notifications (services/notifications.py): the SNS topic, the cost that makes a job worth a message
    # (None: no cost messages), the dashboard whose job page messages link to, and the webhook channel:
    # the function that delivers, and the URL itself — in AWS in Secrets Manager (only its ARN here),
    # locally given directly. The URL is a credential (Slack's is): never logged.
    notify_topic_arn: str | None = None
    notify_cost_threshold_usd: float | None = Field(default=None, ge=0)
    dashboard_url: str | None = None
    notify_webhook_function: str | None = None
    notify_webhook_url: SecretStr | None = None
    notify_webhook_url_secret_arn: str | None = None

    @field_validator("api_token_hashes")
    @classmethod
    def _hashes_are_sha256(cls, hashes: tuple[str, ...]) -> tuple[str, ...]:
        for digest in hashes:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("JOBSYNC_API_TOKEN_HASHES must hold lowercase sha256 hex digests")
        return hashes

    @field_validator("default_hardware")
    @classmethod
    def _known_sku(cls, sku: str) -> str:
        _require_priced(sku, "JOBSYNC_DEFAULT_HARDWARE")
        return sku

    @field_validator("hardware_by_model")
    @classmethod
    def _known_skus(cls, mapping: dict[str, str]) -> dict[str, str]:
        for model, sku in mapping.items():
            _require_priced(sku, f"JOBSYNC_HARDWARE_MAP[{model!r}]")
        return mapping

    @field_validator("replicate_api_base_url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @property
    def webhooks_configured(self) -> bool:
        return bool(self.webhook_url)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _polling_from(env: dict[str, str]) -> dict[str, Any]:
    polling: dict[str, Any] = {}
    config_path = env.get("JOBSYNC_CONFIG")
    if config_path:
        polling.update(_yaml_polling(Path(config_path)))
    if env.get("SIMPLETUNER_JOB_POLL_INTERVAL"):
        polling["interval_seconds"] = env["SIMPLETUNER_JOB_POLL_INTERVAL"]
    if env.get("JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS"):
        polling["schedule_period_seconds"] = env["JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS"]
    if env.get("JOBSYNC_POLLING_ENABLED", "").strip().lower() in {"true", "false"}:
        polling["enabled"] = env["JOBSYNC_POLLING_ENABLED"].strip().lower() == "true"
    return polling


def _yaml_polling(path: Path) -> dict[str, Any]:
    import yaml  # only deployments that use the YAML file pay for the import

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"JOBSYNC_CONFIG {path}: {exc}") from exc
    section = (document.get("background") or {}).get("job_status_polling") or {}
    if not isinstance(section, dict):
        raise ConfigError("background.job_status_polling must be a mapping")
    return {key: section[key] for key in ("enabled", "interval_seconds") if key in section}


def _json_map(value: str | None) -> object:
    """The JSON in `value` (None when unset); Settings checks that it is a mapping of strings."""
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"JOBSYNC_HARDWARE_MAP is not JSON: {exc}") from exc


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {
        "jobs_table": env.get("JOBS_TABLE_NAME"),
        "connections_table": env.get("CONNECTIONS_TABLE_NAME"),
        "state_table": env.get("STATE_TABLE_NAME"),
        "tokens_table": env.get("TOKENS_TABLE_NAME"),
        "api_token_hashes": _split(env.get("JOBSYNC_API_TOKEN_HASHES")),
        "replicate_api_token": env.get("REPLICATE_API_TOKEN") or None,
        "replicate_api_token_secret_arn": env.get("REPLICATE_API_TOKEN_SECRET_ARN") or None,
        "replicate_api_base_url": env.get("REPLICATE_API_BASE_URL"),
        "replicate_webhook_secret": env.get("REPLICATE_WEBHOOK_SECRET") or None,
        "origin_verify_secret_arn": env.get("JOBSYNC_ORIGIN_VERIFY_SECRET_ARN") or None,
        "webhook_url": env.get("JOBSYNC_WEBHOOK_URL") or None,
        "polling": _polling_from(env),
        "hardware_by_model": _json_map(env.get("JOBSYNC_HARDWARE_MAP")),
        "default_hardware": env.get("JOBSYNC_DEFAULT_HARDWARE"),
        "sync_cap_per_list": env.get("JOBSYNC_SYNC_CAP"),
        "max_connections_per_ip": env.get("JOBSYNC_MAX_CONNECTIONS_PER_IP"),
        "websocket_url": env.get("JOBSYNC_WEBSOCKET_URL") or None,
        "websocket_management_url": env.get("JOBSYNC_WEBSOCKET_MANAGEMENT_URL") or None,
        "log_refresh_seconds": env.get("JOBSYNC_LOG_REFRESH_SECONDS"),
        "notify_topic_arn": env.get("JOBSYNC_NOTIFY_TOPIC_ARN") or None,
        "notify_cost_threshold_usd": env.get("JOBSYNC_NOTIFY_COST_THRESHOLD_USD") or None,
        "dashboard_url": env.get("JOBSYNC_DASHBOARD_URL") or None,
        "notify_webhook_function": env.get("JOBSYNC_NOTIFY_WEBHOOK_FUNCTION") or None,
        "notify_webhook_url": env.get("JOBSYNC_NOTIFY_WEBHOOK_URL") or None,
        "notify_webhook_url_secret_arn": env.get("JOBSYNC_NOTIFY_WEBHOOK_SECRET_ARN") or None,
        "tail_keeper_function": env.get("JOBSYNC_TAIL_KEEPER_FUNCTION") or None,
        "broadcaster_function": env.get("JOBSYNC_BROADCASTER_FUNCTION") or None,
        "broadcast_posts_per_invocation": env.get("JOBSYNC_BROADCAST_POSTS_PER_INVOCATION") or None,
        "final_log_workers": env.get("JOBSYNC_FINAL_LOG_WORKERS"),
        "final_tail_resume_after_seconds": env.get("JOBSYNC_FINAL_TAIL_RESUME_AFTER_SECONDS") or None,
        "max_follows_per_connection": env.get("JOBSYNC_MAX_FOLLOWS_PER_CONNECTION"),
        "history_importer_function": env.get("JOBSYNC_HISTORY_IMPORTER_FUNCTION") or None,
        "sync_first_pages": env.get("JOBSYNC_SYNC_FIRST_PAGES") or None,
        "history_import_lease_seconds": env.get("JOBSYNC_HISTORY_IMPORT_LEASE_SECONDS") or None,
    }
    try:
        return Settings(**{key: value for key, value in raw.items() if value is not None})
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
