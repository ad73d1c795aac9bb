"""Settings: `config.toml`, overridden by `PAPERBOT_*` environment variables.

Every setting is documented in `config.example.toml`. The bot token is a secret,
so it is never a setting: it is read from `DISCORD_TOKEN` when the bot starts and
is never logged or written anywhere.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG = Path("config.toml")
TOKEN_VARIABLE = "DISCORD_TOKEN"


class DatabaseSettings(BaseModel):
    path: Path = Path("paperbot.db")


class DiscordSettings(BaseModel):
    # Both optional: point the bot at a REST rate-limit proxy or gateway proxy (or a test fake).
    api_base_url: str | None = None
    gateway_url: str | None = None
    # Sync commands to these guilds only (instant, for development) instead of globally.
    dev_guild_ids: list[int] = Field(default_factory=list)
    # Clusters: this process runs shards `shard_ids` (default: all) of `shard_count`; unset: one shard.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: list[int] | None = None
    # One global rate limit shared by every process of the bot (a secret if it holds a password).
    rate_limit_redis_url: SecretStr | None = None

    @model_validator(mode="after")
    def _shards_fit(self) -> DiscordSettings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("shard_ids needs shard_count (the bot's total number of shards)")
        if not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("shard_ids must list each shard once, e.g. [0, 1, 2, 3]")
        if not all(0 <= shard < self.shard_count for shard in self.shard_ids):
            raise ValueError(f"shard_ids must be between 0 and shard_count - 1 ({self.shard_count - 1})")
        return self


class CommandSettings(BaseModel):
    page_size: int = Field(default=5, ge=1, le=10)
    # Per-user cooldown of the search commands: `search_rate` uses per `search_per_seconds`.
    search_rate: int = Field(default=5, ge=1)
    search_per_seconds: float = Field(default=30.0, gt=0)
    # Buttons stop working (and are disabled) after this long without use.
    view_timeout_seconds: float = Field(default=300.0, gt=0)


class SourceSettings(BaseModel):
    """Where one producer's digests come from: URL templates and/or a local folder."""

    name: str
    markdown_url: str | None = None  # e.g. https://…/archive/{yyyy}/{mm}/{dd}.md
    json_url: str | None = None  # the producer's daily_results twin, where it has one
    folder: Path | None = None

    @model_validator(mode="after")
    def _has_a_location(self) -> SourceSettings:
        if not (self.markdown_url or self.json_url or self.folder):
            raise ValueError(f"source {self.name!r} needs markdown_url, json_url or folder")
        return self


class FetchSettings(BaseModel):
    """When the day's digests are fetched from the sources' URLs, and how long to keep trying."""

    start_time: time = time(6, 0)  # first attempt each day, in `timezone`
    timezone: str = "UTC"
    # Keep retrying a not-yet-published day this long after start_time; then "no digest".
    deadline_hours: float = Field(default=18.0, gt=0, le=24)
    retry_initial_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    http_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
        return value


class DeliverySettings(BaseModel):
    """How daily digests are posted to the channels that asked for them."""

    # On start, days missed while the bot was down are posted (marked late) this far back.
    catch_up_days: int = Field(default=3, ge=0, le=31)
    # Channels posted to at once: enough to keep the pacer busy while each one waits on Discord's
    # answer (~0.1-0.3 s) and on its channel's limit of 5 messages per 5 s (thread digests).
    concurrency: int = Field(default=50, ge=1, le=500)
    # Digest requests per second across all channels: Discord allows a bot 50 in all, and every
    # 429 counts towards a ban; a little headroom is left for commands and direct messages.
    requests_per_second: float = Field(default=48.0, gt=0, le=50)


class SubscriptionSettings(BaseModel):
    """Personal tag and keyword subscriptions, delivered by direct message."""

    # Subscriptions (tags and keywords together) one member may have.
    max_per_user: int = Field(default=25, ge=1, le=1000)


class ConsoleSettings(BaseModel):
    # Digests ingested by `paperbot run` when no token is set, so a newcomer sees it work.
    sample_folder: Path = Path("examples/digests")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAPERBOT_", env_nested_delimiter="__", extra="forbid"
    )

    log_level: str = "INFO"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which file and setting."""


def load_settings(config_path: Path | None = None) -> Settings:
    """Settings from `config_path` (or ./config.toml when present) and the environment."""
    path = config_path
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    values: dict = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read config file {path}: {error}") from None
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration in {path or 'the environment'}: {error}") from None


def discord_token() -> SecretStr | None:
    """The bot token from the environment, wrapped so it never shows up in a repr or log."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return SecretStr(token) if token else None
