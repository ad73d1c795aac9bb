"""A running Paperbot on a fake Discord, with a server, a channel and two members.

Shared by the end-to-end command tests. Mark a test `@pytest.mark.commands(...)`
to change CommandSettings for its bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.client import Paperbot
from settings import CommandSettings, DatabaseSettings, Settings
from testing import FakeDiscord, running_bot
from testing.state import Channel, Guild, User

EPHEMERAL = 64


@dataclass
class World:
    fake: FakeDiscord
    bot: Paperbot
    guild: Guild
    channel: Channel
    alice: User
    bob: User
    owner: User  # the server's owner: every permission, so an admin

    async def command(self, name: str, subcommand: str | None = None, user: User | None = None, **options: Any):
        handle = await self.fake.send_slash_command(
            self.guild, self.channel, user or self.alice, name, subcommand=subcommand, options=options
        )
        return handle, await handle.answer()

    async def autocomplete(self, name: str, focused: str, value: str, subcommand: str | None = None):
        handle = await self.fake.send_autocomplete(
            self.guild, self.channel, self.alice, name, subcommand=subcommand, focused=focused, value=value
        )
        return (await handle.response())["data"]["choices"]


class QuickBot(Paperbot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause before a re-IDENTIFY in tests."""


def settings_for(path: Path, **commands: Any) -> Settings:
    return Settings(database=DatabaseSettings(path=path), commands=CommandSettings(**commands))


@pytest_asyncio.fixture
async def world(fake_discord: FakeDiscord, library_path: Path, request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("commands")
    settings = settings_for(library_path, **(marker.kwargs if marker else {}))
    guild = fake_discord.add_guild("Research", channels=("papers",))
    alice, bob = fake_discord.add_user("alice"), fake_discord.add_user("bob")
    fake_discord.add_member(guild, alice)
    fake_discord.add_member(guild, bob)
    channel = fake_discord.state.channel(guild.channel_ids[0])
    async with running_bot(fake_discord, lambda: QuickBot(settings, guild_ready_timeout=0.01)) as bot:
        owner = fake_discord.state.user(guild.owner_id)
        yield World(fake_discord, bot, guild, channel, alice, bob, owner)


def first_embed(response: dict) -> dict:
    return response["data"]["embeds"][0]


def text_of(embed: dict) -> str:
    parts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
    parts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


def assert_private_error(response: dict, *fragments: str) -> str:
    assert response["type"] == 4
    assert response["data"]["flags"] & EPHEMERAL, "errors are shown only to the member"
    text = text_of(first_embed(response)) if response["data"].get("embeds") else response["data"]["content"]
    for fragment in fragments:
        assert fragment.lower() in text.lower(), text
    return text


def buttons(message: dict) -> dict[str, dict]:
    return {b["label"]: b for row in message["components"] for b in row["components"]}




def seen(messages: list[dict]) -> list[dict]:
    """Messages as members see them: without the invisible ledger marker (`bot.posting.poster.with_marker`)."""
    from bot.posting.poster import without_marker

    return [{**m, "content": without_marker(m.get("content"))} for m in messages]


def every_try() -> int:
    """A send and all its immediate retries (`bot.posting.poster.RETRY_DELAYS`): a fault lasting this
    many requests leaves the message planned for the next run."""
    import bot.posting.poster

    return 1 + len(bot.posting.poster.RETRY_DELAYS)
