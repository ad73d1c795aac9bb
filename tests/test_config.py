"""Settings: the example file is complete and valid, the environment overrides it, errors are clear."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from settings import ConfigError, Settings, discord_token, load_settings

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        inner = getattr(kind, "__args__", (kind,))[0] if getattr(kind, "__origin__", None) is list else kind
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            names += setting_names(inner, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_the_example_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    undocumented = [n for n in setting_names(Settings) if f"{n.rsplit('.', 1)[-1]} =" not in text
                    and f"# {n.rsplit('.', 1)[-1]} =" not in text]
    assert undocumented == []


def test_the_example_is_valid_and_names_no_token() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.sources and settings.database.path == Path("paperbot.db")
    assert not re.search(r"^\s*#?\s*\w*token\w*\s*=", EXAMPLE.read_text(), re.MULTILINE | re.IGNORECASE)


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOT_DATABASE__PATH", "/tmp/elsewhere.db")
    monkeypatch.setenv("PAPERBOT_COMMANDS__PAGE_SIZE", "7")
    settings = load_settings(EXAMPLE)
    assert settings.database.path == Path("/tmp/elsewhere.db") and settings.commands.page_size == 7


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[commands]\npage_size = 30\n", "page_size"),
        ("[fetch]\ntimezone = 'Mars/Base'\n", "unknown time zone"),
        ("[[sources]]\nname = 'x'\n", "needs markdown_url, json_url or folder"),
        ("[database\n", "cannot read config file"),
        ("surprise = 1\n", "surprise"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, toml: str, fragment: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(path)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_the_token_comes_from_the_environment_and_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "very-secret")
    token = discord_token()
    assert token.get_secret_value() == "very-secret"
    assert "very-secret" not in repr(token) and "very-secret" not in str(token)
    monkeypatch.delenv("DISCORD_TOKEN")
    assert discord_token() is None


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[database]\npth = 'x.db'\n", "[database] pth"),
        ("[discord]\ntoken = 'abc'\n", "[discord] token"),
        ("[fetch]\nstart = '07:00'\n", "[fetch] start"),
        ("[[sources]]\nname = 'x'\nfolder = '/srv'\nfoldr = '/srv'\n", "[sources] foldr"),
        ("log_levl = 'DEBUG'\n", "log_levl"),
    ],
)
def test_an_unknown_key_anywhere_is_an_error_naming_it(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert f"unknown setting: {named} in {path}" in message and "\n" not in message


def test_an_unknown_environment_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOT_DATABSE__PATH", "/tmp/x.db")
    with pytest.raises(ConfigError, match="environment variable PAPERBOT_DATABSE__PATH"):
        load_settings(EXAMPLE)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("PAPERBOT_COMMANDS__PAGE_SIZE", "30", "less than or equal to 10"),
        ("PAPERBOT_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("PAPERBOT_LOG_FORMAT", "xml", "'text' or 'json'"),
        ("PAPERBOT_FETCH__TIMEZONE", "Mars/Base", "unknown time zone"),
    ],
)
def test_a_bad_environment_value_names_the_variable_not_the_file(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(EXAMPLE)
    message = str(caught.value)
    assert message.startswith(f"invalid setting: environment variable {variable}: ") and fragment in message
    assert "config.example.toml" not in message and "\n" not in message and "http" not in message


def test_a_bad_file_value_is_one_line_naming_section_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[commands]\npage_size = 30\n[delivery]\nconcurrency = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"invalid setting: [commands] page_size in {path}: ")
    assert "(and 1 more)" in message and "\n" not in message and "errors.pydantic.dev" not in message


def test_log_level_is_accepted_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("log_level = 'debug'\nlog_format = 'json'\n")
    settings = load_settings(path)
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")


def test_a_database_url_from_the_environment_names_the_library_and_stays_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PAPERBOT_DATABASE__URL", "postgresql://paperbot:hunter2@db:5432/paperbot?search_path=lab")
    database = load_settings(EXAMPLE).database
    assert database.target == "postgresql://paperbot:hunter2@db:5432/paperbot?search_path=lab"
    assert database.is_postgres and database.describe() == "postgresql://paperbot:***@db:5432/paperbot?search_path=lab"
    assert "hunter2" not in repr(database) and "hunter2" not in str(load_settings(EXAMPLE))
    assert database.files == Path("paperbot-lab")  # heartbeat and command fingerprint: in the working directory
    assert database.secrets == ("hunter2",)  # taken out of log lines
    monkeypatch.setenv("PAPERBOT_DATABASE__URL", f"sqlite:///{tmp_path / 'library.db'}")
    database = load_settings(EXAMPLE).database
    assert not database.is_postgres and database.files == tmp_path / "library.db"


def test_a_database_url_beside_a_path_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[database]\npath = "paperbot.db"\n')
    monkeypatch.setenv("PAPERBOT_DATABASE__URL", "postgresql://paperbot:hunter2@db/paperbot")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "set either path or url" in message and "hunter2" not in message and "\n" not in message


def test_a_database_url_of_another_kind_is_refused_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOT_DATABASE__URL", "mysql://paperbot:hunter2@db/paperbot")
    with pytest.raises(ConfigError) as caught:
        load_settings(EXAMPLE)
    message = str(caught.value)
    assert message.startswith("invalid setting: environment variable PAPERBOT_DATABASE__URL: must start with")
    assert "hunter2" not in message and "paperbot:***@db" in message
