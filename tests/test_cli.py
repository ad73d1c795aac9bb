"""The command line around deployment: --version, run without a token, invite, health, and
terminal text for search and show."""

from __future__ import annotations

import base64
import logging
import os
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import discord
import pytest
from typer.testing import CliRunner

from bot import console, health
from bot.__main__ import app
from storage.models import SearchHit, SearchPage, StoredPaper

REPO = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("PAPERBOT_") or n == "DISCORD_TOKEN"]:
        monkeypatch.delenv(name)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "paperbot", False)]:
        root.removeHandler(handler)


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def one_line_error(result, fragment: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def test_version_is_the_one_in_pyproject() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"paperbot {version}"


# --- run without a token ---------------------------------------------------------------------


def test_run_without_a_token_on_a_fresh_clone_previews_from_a_throwaway_library(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "examples").symlink_to(REPO / "examples")  # a fresh clone: the samples, no config.toml
    monkeypatch.chdir(tmp_path)
    result = invoke("run")
    assert result.exit_code == 0, result.output
    assert "throw-away library" in result.stderr and "configured library is not touched" in result.stderr
    assert "📄 Papers for" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples"], "the preview wrote to the configured library"


def configured(tmp_path: Path) -> tuple[Path, Path]:
    library = tmp_path / "production.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{library}"\n[console]\nsample_folder = "{REPO / "examples/digests"}"\n')
    return config, library


def test_run_without_a_token_in_a_configured_deployment_fails_loudly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, library = configured(tmp_path)
    result = invoke("run", "--config", str(config))
    line = one_line_error(result, "DISCORD_TOKEN is not set, and this is a configured deployment")
    assert f"--config {config}" in line and "paperbot run --preview" in line
    assert not library.exists(), "nothing may be written to the configured library"


def test_run_without_a_token_with_paperbot_variables_fails_loudly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    library = tmp_path / "production.db"
    result = invoke("run", env={"PAPERBOT_DATABASE__PATH": str(library)})
    one_line_error(result, "PAPERBOT_DATABASE__PATH is set")
    assert not library.exists()


def test_run_without_a_token_with_a_config_toml_here_fails_loudly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("")
    one_line_error(invoke("run"), "config.toml is present")


def test_preview_flag_never_touches_the_configured_library(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, library = configured(tmp_path)
    result = invoke("run", "--preview", "--config", str(config), env={"DISCORD_TOKEN": "set-but-previewing"})
    assert result.exit_code == 0, result.output
    assert "📄 Papers for" in result.stdout and "throw-away library" in result.stderr
    assert not library.exists()


# --- invite ----------------------------------------------------------------------------------


def test_invite_asks_for_exactly_the_permissions_the_posts_need() -> None:
    result = invoke("invite", "--client-id", "1234567890")
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=1234567890&")
    assert "scope=bot+applications.commands" in url
    granted = discord.Permissions(int(re.search(r"permissions=(\d+)", url).group(1)))
    expected = discord.Permissions(view_channel=True, send_messages=True, embed_links=True, read_message_history=True,
                                   create_public_threads=True, send_messages_in_threads=True)
    assert granted == expected
    assert not (granted.administrator or granted.manage_guild or granted.mention_everyone)
    assert "no privileged intents" in result.stderr


def test_invite_with_forum_tags_adds_manage_channels_only() -> None:
    plain = int(re.search(r"permissions=(\d+)", invite("invite", "--client-id", "1")).group(1))
    forum = int(re.search(r"permissions=(\d+)", invite("invite", "--client-id", "1", "--forum-tags")).group(1))
    assert discord.Permissions(forum - plain) == discord.Permissions(manage_channels=True)


def invite(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_invite_reads_the_application_id_from_the_token() -> None:
    token = base64.b64encode(b"987654321").decode().rstrip("=") + ".Gabcde.signature"
    result = invoke("invite", env={"DISCORD_TOKEN": token})
    assert result.exit_code == 0 and "client_id=987654321&" in result.stdout


def test_invite_without_an_id_is_one_line() -> None:
    one_line_error(invoke("invite"), "give --client-id")


def test_the_readme_shows_the_invite_permissions() -> None:
    value = int(re.search(r"permissions=(\d+)", invite("invite", "--client-id", "1")).group(1))
    forum = int(re.search(r"permissions=(\d+)", invite("invite", "--client-id", "1", "--forum-tags")).group(1))
    readme = (REPO / "README.md").read_text()
    assert f"permissions={value}&scope=bot+applications.commands" in readme and f"permissions={forum}" in readme
    assert "Paperbot needs none" in readme and "privileged gateway intents" in readme.lower()


def test_the_bot_asks_for_no_privileged_intents() -> None:
    intents = discord.Intents.default()
    assert not (intents.members or intents.presences or intents.message_content)


# --- health ----------------------------------------------------------------------------------


def test_health_fails_without_a_heartbeat_and_passes_with_a_fresh_one(tmp_path: Path) -> None:
    env = {"PAPERBOT_DATABASE__PATH": str(tmp_path / "library.db")}
    one_line_error(invoke("health", env=env), "unhealthy: no heartbeat")
    beat = health.heartbeat_path(tmp_path / "library.db")
    health.write(beat, connected=True, scheduler_running=True)
    result = invoke("health", env=env)
    assert result.exit_code == 0 and "healthy" in result.stdout


@pytest.mark.parametrize(
    ("connected", "running", "age", "fragment"),
    [
        (False, True, 0, "not connected to Discord"),
        (True, False, 0, "scheduler is not running"),
        (True, True, health.STALE_AFTER_SECONDS + 5, "stopped or hangs"),
    ],
)
def test_health_names_what_is_wrong(tmp_path: Path, connected: bool, running: bool, age: float, fragment: str) -> None:
    health.write(health.heartbeat_path(tmp_path / "library.db"), connected=connected, scheduler_running=running,
                 now=datetime.now(UTC) - timedelta(seconds=age))
    one_line_error(invoke("health", env={"PAPERBOT_DATABASE__PATH": str(tmp_path / "library.db")}), fragment)


# --- terminal text ---------------------------------------------------------------------------


PAPER = StoredPaper(
    arxiv_id="2502.13923", title="Qwen2.5-VL *Technical* Report", url="https://arxiv.org/abs/2502.13923",
    authors=["Keqin Chen", "Shuai Bai"], summary="A vision-language model [link](https://evil.example) **bold**",
    tags=["Multimodal"], github_urls=["https://github.com/QwenLM/Qwen2.5-VL"], days=[datetime(2025, 2, 20).date()],
    sources=["timlrx"],
)


def rendered(text) -> str:
    from rich.console import Console

    terminal = Console(width=100, force_terminal=True, color_system="truecolor", file=open(os.devnull, "w"))
    with terminal.capture() as capture:
        terminal.print(text)
    return capture.get()


def test_search_results_are_terminal_text_with_bold_linked_titles() -> None:
    page = SearchPage(hits=[SearchHit(paper=PAPER, snippet="a **vision** model")], total=1)
    text = console.search_results(page)
    assert "**" not in text.plain and "Qwen2.5-VL *Technical* Report" in text.plain
    ansi = rendered(text)
    assert "\x1b]8;" in ansi, "the title is a terminal hyperlink"
    bold = {text.plain[span.start:span.end] for span in text.spans if "bold" in str(span.style)}
    assert "vision" in bold, "matched words are bold, not wrapped in asterisks"


def test_show_prints_the_paper_without_discord_markdown() -> None:
    text = console.paper_text(PAPER)
    plain = text.plain
    assert "Qwen2.5-VL *Technical* Report" in plain and "\\*" not in plain, "no Discord escapes"
    assert "](https://arxiv" not in plain and "Authors: Keqin Chen, Shuai Bai" in plain
    assert "Code: https://github.com/QwenLM/Qwen2.5-VL" in plain and "In digests: 2025-02-20 via timlrx" in plain
    links = [str(span.style) for span in text.spans if "link" in str(span.style)]
    assert not any("evil.example" in link for link in links), "digest text never becomes a link"


def test_a_leading_exclusion_is_a_query_after_double_dash(library_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"PAPERBOT_DATABASE__PATH": str(library_path)}
    refused = invoke("search", "-video", "diffusion", env=env)
    assert refused.exit_code == 2  # taken as an option, as the README warns
    result = invoke("search", "--", "-video", "diffusion", env=env)
    assert result.exit_code == 0, result.output
    assert "results" in result.stdout and "**" not in result.stdout


@pytest.mark.parametrize(
    ("config", "env", "fragment"),
    [
        ("[database]\npth = 'x.db'\n", {}, "unknown setting: [database] pth in"),
        ("[discord]\ntoken = 'abc'\n", {}, "unknown setting: [discord] token in"),
        ("", {"PAPERBOT_LOG_LEVEL": "LOUD"}, "environment variable PAPERBOT_LOG_LEVEL"),
        ("", {"PAPERBOT_DATABSE__PATH": "x.db"}, "environment variable PAPERBOT_DATABSE__PATH"),
    ],
)
def test_a_config_mistake_is_one_line_and_exit_1_for_any_command(
    tmp_path: Path, monkeypatch, config: str, env: dict[str, str], fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(config)
    for command in (["db", "migrate"], ["run"], ["health"]):
        one_line_error(invoke(*command, env=env), fragment)
    assert not (tmp_path / "paperbot.db").exists()


def test_sync_without_a_token_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("sync"), "DISCORD_TOKEN is not set")


def test_with_json_logs_an_error_is_one_json_line(tmp_path: Path, monkeypatch) -> None:
    import json

    import bot.__main__ as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_json_errors", False)
    result = invoke("run", env={"PAPERBOT_LOG_FORMAT": "json", "PAPERBOT_DATABASE__PATH": str(tmp_path / "x.db")})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR" and entry["message"].startswith("DISCORD_TOKEN is not set")
