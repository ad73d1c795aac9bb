"""/help: every command the member may use, one example each; admin commands only for admins."""

from __future__ import annotations

import re

from discord import app_commands

from bot.cogs import help as help_cog
from bot.render.payloads import MessagePayload
from tests.limits import check_message_limits
from tests.world import EPHEMERAL, World, first_embed


def listed_examples(response: dict) -> list[str]:
    return re.findall(r"`(/[^`]+)`", first_embed(response)["description"])


def leaf_commands(world: World) -> list[app_commands.Command]:
    return [c for c in world.bot.tree.walk_commands() if isinstance(c, app_commands.Command)]


async def test_help_lists_every_command_a_member_may_use_with_an_example(world: World) -> None:
    _, response = await world.command("help", user=world.alice)
    assert response["data"]["flags"] & EPHEMERAL
    examples = listed_examples(response)
    everyone = [c for c in leaf_commands(world) if not c.qualified_name.startswith("digest")]
    assert sorted(examples) == sorted(help_cog.example(c) for c in everyone)
    assert not any(e.startswith("/digest") for e in examples), "admin commands are hidden from non-admins"


async def test_help_shows_the_admin_commands_to_admins(world: World) -> None:
    _, response = await world.command("help", user=world.owner)
    examples = listed_examples(response)
    assert "/digest setup channel:#papers time:09:00 timezone:Europe/Berlin" in examples
    assert len(examples) == len(leaf_commands(world))


async def test_every_command_has_a_written_example_that_uses_its_real_options(world: World) -> None:
    for command in leaf_commands(world):
        written = help_cog.EXAMPLES.get(command.qualified_name)
        assert written, f"/{command.qualified_name} has no example in bot/cogs/help.py"
        assert written.startswith(f"/{command.qualified_name}")
        options = {p.display_name for p in command.parameters}
        used = set(re.findall(r"(?:^|\s)([a-z_]+):", written))
        assert used <= options, (command.qualified_name, used - options)
        assert {p.display_name for p in command.parameters if p.required} <= used, command.qualified_name


async def test_the_full_list_fits_in_one_embed(world: World) -> None:
    embed = help_cog.help_embed(leaf_commands(world))
    assert check_message_limits(MessagePayload(content=None, embeds=[embed])) == []
    assert "…" not in embed.description, "the list must not be cut"
