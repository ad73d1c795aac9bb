"""`paperbot run` as a real process: its logs (one line per event, text or JSON, no tokens at any
level, no tracebacks for expected conditions) and what it does without a token.

The bot talks to the fake Discord on 127.0.0.1; "Discord is unreachable" is a closed local port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

from testing import FakeDiscord

REPO = Path(__file__).parent.parent


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BotProcess:
    """`python -m bot run` with a config file, its output read line by line as it comes."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, env
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> BotProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(self.config),
            cwd=REPO, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        return self

    async def wait_for_line(self, fragment: str, timeout: float = 30) -> str:
        async def read() -> str:
            for line in self.lines:
                if fragment in line:
                    return line
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"the bot exited before logging {fragment!r}:\n" + "\n".join(self.lines))
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if fragment in line:
                    return line

        try:
            return await asyncio.wait_for(read(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {fragment!r} in {timeout}s:\n" + "\n".join(self.lines)) from None

    async def stop(self, *, signal_it: bool = True) -> tuple[int, str]:
        """SIGTERM, as systemd and Docker send it (or wait for it to end); the exit status and the whole log."""
        if signal_it and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(self.process.communicate(), timeout=30)
        self.lines += rest.decode().splitlines()
        return self.process.returncode, "\n".join(self.lines)


def bot_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    return {**env, "DISCORD_TOKEN": token}


def write_config(tmp_path: Path, library: Path, api: str, gateway: str, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'{extra}\n[database]\npath = "{library}"\n'
        f'[discord]\napi_base_url = "{api}"\ngateway_url = "{gateway}"\n'
    )
    return config


async def test_a_debug_run_in_json_never_logs_the_interaction_or_bot_token(
    fake_discord: FakeDiscord, library_path: Path, tmp_path: Path
) -> None:
    guild = fake_discord.add_guild("Research", channels=("papers",))
    alice = fake_discord.add_user("alice")
    fake_discord.add_member(guild, alice)
    config = write_config(tmp_path, library_path, fake_discord.api_base_url, fake_discord.gateway_url,
                          'log_level = "DEBUG"\nlog_format = "json"')
    bot = await BotProcess(config, bot_env(fake_discord.token)).start()
    try:
        await bot.wait_for_line("connected as")
        channel = fake_discord.state.channel(guild.channel_ids[0])
        handle = await fake_discord.send_slash_command(guild, channel, alice, "paper", options={"id": "2502.13923"})
        response = await handle.answer(timeout=10)
        assert "Qwen2.5-VL" in response["data"]["embeds"][0]["title"]
        followup = await fake_discord.send_slash_command(guild, channel, alice, "papers", subcommand="search",
                                                         options={"query": "video diffusion"})
        await followup.response(timeout=10)
        await asyncio.sleep(0.5)  # let the DEBUG lines of the replies reach the log
    finally:
        code, log = await bot.stop()
    assert code == 0, log
    tokens = [i.token for i in fake_discord.interactions.values()]
    assert tokens and all(token not in log for token in tokens), "an interaction token was logged"
    assert fake_discord.token not in log, "the bot token was logged"
    assert "<redacted>" in log, "DEBUG logs the interaction URLs; the token part must show as <redacted>"
    entries = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    messages = [e["message"] for e in entries]
    assert sum(m.startswith("connected as") for m in messages) == 1, "each event is logged once"
    assert not any("voice will NOT be supported" in m for m in messages)
    assert not any("Traceback" in m or "exception" in e for m, e in zip(messages, entries))


async def test_text_logs_have_each_event_once_and_no_voice_warnings(
    fake_discord: FakeDiscord, library_path: Path, tmp_path: Path
) -> None:
    fake_discord.add_guild("Research", channels=("papers",))
    config = write_config(tmp_path, library_path, fake_discord.api_base_url, fake_discord.gateway_url)
    bot = await BotProcess(config, bot_env(fake_discord.token)).start()
    try:
        await bot.wait_for_line("connected as")
    finally:
        code, log = await bot.stop()
    assert code == 0, log
    assert log.count("connected as") == 1 and log.count("shutting down") == 1, log
    assert "PyNaCl" not in log and "davey" not in log and "Traceback" not in log, log


async def test_discord_unreachable_at_start_is_one_line_with_the_retry_plan(library_path: Path, tmp_path: Path) -> None:
    port = closed_port()
    config = write_config(tmp_path, library_path, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    bot = await BotProcess(config, bot_env("MTIz.fake.token")).start()
    try:
        line = await bot.wait_for_line("cannot reach Discord")
    finally:
        code, log = await bot.stop()
    assert "retrying in 5 s (attempt 1)" in line and f"127.0.0.1:{port}" in line
    assert code == 0, log
    assert "Traceback" not in log and "MTIz.fake.token" not in log
    assert log.count("cannot reach Discord") == 1 and log.count("shutting down") == 1, log


async def test_a_clean_stop_while_a_fetch_waits_to_retry_is_one_line(
    fake_discord: FakeDiscord, library_path: Path, tmp_path: Path
) -> None:
    fake_discord.add_guild("Research", channels=("papers",))
    source = f"http://127.0.0.1:{closed_port()}/{{yyyy}}/{{mm}}/{{dd}}.md"
    extra = f'[fetch]\nstart_time = "00:00"\nretry_initial_seconds = 600\n[[sources]]\nname = "down"\nmarkdown_url = "{source}"'
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\npath = "{library_path}"\n'
        f'[discord]\napi_base_url = "{fake_discord.api_base_url}"\ngateway_url = "{fake_discord.gateway_url}"\n{extra}\n'
    )
    bot = await BotProcess(config, bot_env(fake_discord.token)).start()
    try:
        await bot.wait_for_line("retrying until")  # the fetch now sleeps before its next try
    finally:
        code, log = await bot.stop()
    assert code == 0, log
    assert "raised an exception" not in log and "Traceback" not in log, log
    assert "stopped by the shutdown; it resumes on the next start" in log


async def test_a_refused_token_is_one_line_and_exit_1(fake_discord: FakeDiscord, library_path: Path,
                                                       tmp_path: Path) -> None:
    config = write_config(tmp_path, library_path, fake_discord.api_base_url, fake_discord.gateway_url)
    bot = await BotProcess(config, bot_env("not-the-token")).start()
    code, log = await bot.stop(signal_it=False)
    assert code == 1, log
    assert "Discord refused the token in DISCORD_TOKEN" in log and "Traceback" not in log


async def test_a_broken_library_stops_the_bot_before_discord_with_one_line(tmp_path: Path) -> None:
    library = tmp_path / "missing" / "library.db"
    port = closed_port()
    config = write_config(tmp_path, library, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    bot = await BotProcess(config, bot_env("MTIz.fake.token")).start()
    code, log = await bot.stop(signal_it=False)
    assert code == 1 and "Traceback" not in log
    assert log.strip().splitlines() == [f"error: the folder {library.parent} does not exist, so {library} "
                                        f"cannot be created: create it first (mkdir -p {library.parent}), "
                                        "or choose another path"]
