"""Settings: `config.toml`, overridden by `PAPERBOT_*` environment variables.

Every setting is documented in `config.example.toml`. The bot token is a secret,
so it is never a setting: it is read from `DISCORD_TOKEN` when the bot starts and
is never logged or written anywhere.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG = Path("config.toml")
TOKEN_VARIABLE = "DISCORD_TOKEN"


class DatabaseSettings(BaseModel):
    """Where the library is: a SQLite file (`path`), or `url` (`sqlite:///path` or `postgresql://…`).

    A URL may hold a password, so it is a secret: shown only redacted, best set in the environment
    (PAPERBOT_DATABASE__URL). One place only: a `url` beside an explicit `path` is an error.
    """

    path: Path = Path("paperbot.db")
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(DATABASE_SCHEMES):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @model_validator(mode="after")
    def _one_library(self) -> DatabaseSettings:
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError("set either path or url (PAPERBOT_DATABASE__URL), not both: url names the whole library")
        return self

    @property
    def target(self) -> str | Path:
        """What `storage.db.connect` opens: the URL (password included), or the SQLite file."""
        return self.url.get_secret_value() if self.url is not None else self.path

    @property
    def is_postgres(self) -> bool:
        return self.url is not None and self.url.get_secret_value().startswith(POSTGRES_SCHEMES)

    @property
    def files(self) -> Path:
        """Beside what the bot keeps its small files (heartbeat, command fingerprint): the SQLite
        file, or for PostgreSQL `paperbot-<schema>` in the working directory."""
        if self.url is None:
            return self.path
        url = self.url.get_secret_value()
        if not self.is_postgres:
            return Path(url[len("sqlite:///"):])
        schema = re.search(r"[?&]search_path=([A-Za-z_][A-Za-z0-9_]*)", url)
        return Path(f"paperbot-{schema.group(1) if schema else 'public'}")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The URL's password, if any: taken out of every log line like the bot token."""
        if self.url is None:
            return ()
        password = urlsplit(self.url.get_secret_value()).password
        return (password,) if password else ()

    def describe(self) -> str:
        """The library for messages and logs: the file, or the URL without its password."""
        if self.url is None:
            return str(self.path)
        return redacted(self.url.get_secret_value())


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DATABASE_SCHEMES = ("sqlite:///", *POSTGRES_SCHEMES)


def redacted(url: str) -> str:
    """A database URL without its password (as `storage.postgres.redacted`, without importing asyncpg)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


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
    # Per-user cooldowns of /papers export (a whole file per use) and of /stats (charts, summaries).
    export_rate: int = Field(default=2, ge=1)
    export_per_seconds: float = Field(default=60.0, gt=0)
    stats_rate: int = Field(default=5, ge=1)
    stats_per_seconds: float = Field(default=60.0, gt=0)
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
    # Papers one channel post (and one subscriber's DM) shows at most; a bigger day is stored whole and
    # the post ends with how to see the rest. Same default as bot.render.DEFAULT_MAX_PAPERS_PER_POST.
    max_papers_per_post: int = Field(default=200, ge=1, le=5000)


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

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

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
    """The configuration cannot be used; the message (one line) names the file or variable and the setting."""


ENV_PREFIX = "PAPERBOT_"
ENV_NESTING = "__"


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
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"cannot read config file {path}: not valid TOML: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {path}: {getattr(error, 'strerror', None) or error}") from None
    unknown = [f"{key} in {path}" for key in unknown_keys(Settings, values)]
    unknown += [f"environment variable {name}" for name in unknown_variables(os.environ)]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ConfigError(f"unknown setting: {unknown[0]}{more}; config.example.toml lists every setting")
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigError(describe(error, path)) from None


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (itself or in a list), if it is a section."""
    if typing.get_origin(annotation) in (list, types.UnionType, typing.Union):
        models = [_section_model(arg) for arg in typing.get_args(annotation)]
        return next((model for model in models if model is not None), None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def unknown_keys(model: type[BaseModel], values: Any, prefix: str = "") -> list[str]:
    """Dotted names of keys in a config file that are no setting (typos inside sections included)."""
    if not isinstance(values, dict):
        return []
    found = []
    for key, value in values.items():
        field = model.model_fields.get(key)
        if field is None:
            found.append(f"[{prefix.rstrip('.')}] {key}" if prefix else key)
            continue
        section = _section_model(field.annotation)
        if section is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            found += unknown_keys(section, item, f"{prefix}{key}.")
    return found


def unknown_variables(environ: typing.Mapping[str, str]) -> list[str]:
    """PAPERBOT_* variables that name no setting (a typo there would otherwise be silently ignored)."""
    found = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        model: type[BaseModel] | None = Settings
        for part in name[len(ENV_PREFIX):].lower().split(ENV_NESTING):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                found.append(name)
                break
            model = _section_model(field.annotation)
    return found


def describe(error: ValidationError, path: Path | None) -> str:
    """A pydantic error as one line: where the value came from (file or variable), the setting, what is wrong."""
    problems = error.errors(include_url=False)
    first = problems[0]
    location = [str(part) for part in first["loc"]]
    variable = _variable_for(location)
    message = first["msg"].removeprefix("Value error, ")
    if variable is not None:
        where = f"environment variable {variable}"
    else:
        setting = location[-1] if len(location) == 1 else f"[{'.'.join(location[:-1])}] {location[-1]}"
        where = f"{setting} in {path or 'the defaults'}"
    value = first.get("input")
    if isinstance(value, str):
        value = redacted(value)  # a database URL's password never reaches a message
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and first["type"] != "missing" else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid setting: {where}: {message}{shown}{more}"


def _variable_for(location: list[str]) -> str | None:
    """The PAPERBOT_* variable that set the value at `location`, if one did (the environment wins)."""
    for end in range(len(location), 0, -1):
        name = ENV_PREFIX + ENV_NESTING.join(location[:end]).upper()
        if name in {key.upper() for key in os.environ}:
            return name
    return None


def discord_token() -> SecretStr | None:
    """The bot token from the environment, wrapped so it never shows up in a repr or log."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return SecretStr(token) if token else None
