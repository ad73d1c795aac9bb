"""The fake Discord checks every request body against Discord's own OpenAPI spec.

A body the spec rejects is answered like Discord (400, code 50035, the failing field in
``errors``) and recorded; ``fake.check()`` (run by the fixtures at teardown) then fails the test.
"""

from __future__ import annotations

import discord
import pytest

from testing import FakeDiscord, running_bot
from testing.spec import SPEC_PATH, check_body, spec_route


def test_the_spec_and_its_licence_are_in_the_repository():
    assert SPEC_PATH.is_file()
    assert "MIT" in (SPEC_PATH.parent / "LICENSE").read_text(encoding="utf-8")


def test_concrete_paths_find_their_spec_route():
    assert spec_route("/channels/1/messages") == "/channels/{channel_id}/messages"
    assert spec_route("/webhooks/1/tok/messages/@original") == "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
    assert spec_route("/webhooks/1/tok/messages/55") == "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
    assert spec_route("/users/@me/channels") == "/users/@me/channels"
    assert spec_route("/no/such/route") is None


@pytest.mark.parametrize(
    ("body", "where", "fragment"),
    [
        ({"content": "x" * 4001}, "content", "4000 or fewer"),
        ({"embeds": [{"description": "d" * 4097}]}, "embeds.0.description", "4096 or fewer"),
        ({"embeds": [{"title": "t"}] * 11}, "embeds", "10 or fewer"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, "embeds.0.fields.0.value", "1024 or fewer"),
        ({"components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": "l" * 81, "custom_id": "a"}]}]},
         "components.0.components.0.label", "80 or fewer"),
    ],
)
def test_bodies_discord_rejects_are_found_with_the_failing_field(body, where, fragment):
    [violation] = check_body("POST", "/channels/1/messages", body)
    assert violation.where == where
    assert fragment in violation.message


def test_embeds_over_6000_characters_in_all_are_rejected_though_no_schema_says_so():
    fields = [{"name": "n", "value": "v" * 1000} for _ in range(7)]  # each field is fine; together 7,007
    [violation] = check_body("POST", "/interactions/1/tok/callback", {"type": 4, "data": {"embeds": [{"fields": fields}]}})
    assert violation.where == "data.embeds" and "6000" in violation.message
    assert check_body("POST", "/channels/1/messages", {"embeds": [{"fields": fields[:5]}]}) == []
    assert check_body("POST", "/channels/1/threads", {"name": "t", "message": {"embeds": [{"description": "d" * 4000},
                                                                                       {"description": "d" * 2001}]}})


def test_interaction_callbacks_are_checked_in_the_branch_of_their_type():
    [violation] = check_body("POST", "/interactions/1/tok/callback", {"type": 4, "data": {"content": "x" * 2001}})
    assert violation.where == "data.content"
    assert check_body("POST", "/interactions/1/tok/callback", {"type": 5, "data": {"flags": 64}}) == []


def test_known_omissions_of_the_spec_are_patched():
    # Snowflakes may be JSON integers (discord.py sends recipient_id that way).
    assert check_body("POST", "/users/@me/channels", {"recipient_id": 1234567890123}) == []
    # GUILD_MEDIA (16) is a channel type Discord documents: a channel option may ask for media channels.
    command = {"name": "setup", "description": "d", "type": 1,
               "options": [{"type": 7, "name": "channel", "description": "c", "channel_types": [0, 15, 16]}]}
    assert check_body("PUT", "/applications/1/commands", [command]) == []
    command["options"][0]["channel_types"] = [0, 17]  # still no such type
    [unknown] = check_body("PUT", "/applications/1/commands", [command])
    assert unknown.where == "0.options.0.channel_types.1"


async def test_a_bot_sending_what_the_spec_rejects_gets_400_and_fails_the_check():
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Spec", channels=("general",))
        channel_id = guild.channel_ids[0]
        bot = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.01)
        with pytest.raises(AssertionError, match="Discord's API schema rejects"):
            async with running_bot(fake, bot):
                channel = bot.get_channel(channel_id)
                with pytest.raises(discord.HTTPException) as refused:
                    await channel.send(embed=discord.Embed(description="d" * 4097))
                assert refused.value.status == 400 and refused.value.code == 50035
                assert "embeds.0.description" in str(refused.value)
                await channel.send("fine")  # the next valid body goes through
        assert [v.where for v in fake.spec_violations] == ["embeds.0.description"]
        assert len(fake.messages_in(channel_id)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x", "components": [{"type": 1, "components": [
            {"type": 2, "style": 2, "label": f"#{n} ▲ 0", "custom_id": f"paperbot:vote:{n}:2502.0000{n}"}
            for n in range(1, 6)]}]},
        {"components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": "x" * 81, "custom_id": "a"}]}]},
        {"components": [{"type": 99}]},
        {"components": [{"type": 1, "components": [{"type": 3, "custom_id": "s", "options": []}]}]},
        {"embeds": [{"title": "t", "type": "rich", "fields": [{"name": "n", "value": "v", "inline": True}]}],
         "allowed_mentions": {"parse": [], "roles": ["1", 2]}},
    ],
)
def test_the_faster_one_of_judges_exactly_like_the_standard_validator(body):
    from jsonschema import Draft202012Validator

    from testing import spec

    fast = spec._validator("/channels/{channel_id}/messages", "post")
    standard = Draft202012Validator(fast.schema, registry=spec._registry())
    assert fast.is_valid(body) == standard.is_valid(body)
    assert bool(list(fast.iter_errors(body))) == bool(list(standard.iter_errors(body)))
