"""End-to-end checks that the real discord.py client works against the fake Discord.

These pin down the fake itself, so other test modules can trust it: if
these pass, a failure elsewhere is about Paperbot, not the fixture.
"""

from __future__ import annotations

import asyncio
import io
import time
from types import SimpleNamespace

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from testing import FakeDiscord, MessageFlag, Op, Perm, running_bot

WORDS = ["alpha", "alphabet", "beta"]
MESSAGES = "/channels/{channel_id}/messages"


class PingView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)  # no timeout task to leak between tests
        self.clicks = 0

    @discord.ui.button(label="Again", custom_id="ping:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.clicks += 1
        await interaction.response.edit_message(content=f"pong x{self.clicks + 1}", view=self)

    @discord.ui.button(label="Later", custom_id="ping:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()  # type 6: acknowledge now, edit the message afterwards
        await interaction.edit_original_response(content="pong (later)")


class TinyBot(commands.Bot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every re-IDENTIFY; skip that so invalid-session tests stay fast."""


def make_bot(*, intents: discord.Intents | None = None) -> commands.Bot:
    """A tiny real bot: /ping (embed + button), /echo (defer + follow-up, autocomplete), /papers search."""
    bot = TinyBot(
        command_prefix="!",
        intents=intents or discord.Intents.default(),
        allowed_mentions=discord.AllowedMentions.none(),
        guild_ready_timeout=0.01,
        help_command=None,
    )
    bot.views = []

    @bot.tree.command(description="Is the bot alive?")
    async def ping(interaction: discord.Interaction) -> None:
        view = PingView()
        bot.views.append(view)
        await interaction.response.send_message("pong", embed=discord.Embed(title="Pong"), view=view)

    @bot.tree.command(description="Repeat some text")
    async def echo(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(f"echo: {text}")

    @echo.autocomplete("text")
    async def echo_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=w, value=w) for w in WORDS if w.startswith(current)]

    @bot.tree.command(description="Respond, then edit the response and a follow-up")
    async def digest(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("working...")
        await interaction.edit_original_response(content="digest ready")
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content="extra!")
        bot.fetched_original = await interaction.original_response()
        await extra.delete()

    papers = app_commands.Group(name="papers", description="The paper library")

    @papers.command(description="Search papers")
    async def search(interaction: discord.Interaction, query: str, limit: int = 5) -> None:
        await interaction.response.send_message(f"{query}:{limit}", ephemeral=True)

    bot.tree.add_command(papers)
    return bot


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:  # noqa: F811
    return fake_discord


@pytest.fixture
def world(fake: FakeDiscord) -> SimpleNamespace:
    guild = fake.add_guild("Papers Club")
    alice = fake.add_user("alice")
    fake.add_member(guild, alice)
    return SimpleNamespace(guild=guild, channel=fake.state.channel(guild.channel_ids[0]), alice=alice,
                           forum=fake.add_forum_channel(guild, "paper-posts", tags=("nlp", "vision")))


@pytest.fixture
async def bot(fake: FakeDiscord, world: SimpleNamespace):
    async with running_bot(fake, make_bot) as client:
        yield client


@pytest.fixture
async def synced_bot(bot: commands.Bot) -> commands.Bot:
    await bot.tree.sync()
    return bot


# -- connecting -------------------------------------------------------------------


async def test_bot_connects_and_sees_the_world(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    assert [r.path for r in fake.requests[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake.gateway.ops(Op.IDENTIFY)[0]["d"]["token"] == fake.token
    assert "compress=zlib-stream" in fake.gateway.received[0]["url"]  # and text frames are fine anyway
    assert bot.application_id == fake.application_id

    guild = bot.get_guild(world.guild.id)
    assert guild is not None and guild.name == "Papers Club"
    assert isinstance(guild.get_channel(world.channel.id), discord.TextChannel)
    assert isinstance(guild.get_channel(world.forum.id), discord.ForumChannel)
    assert guild.me.id == fake.bot_user.id
    assert guild.me.guild_permissions.send_messages and not guild.me.guild_permissions.administrator


async def test_members_intent_chunks_the_guild(fake: FakeDiscord, world: SimpleNamespace) -> None:
    intents = discord.Intents.default()
    intents.members = True
    async with running_bot(fake, lambda: make_bot(intents=intents)) as client:
        assert fake.gateway.ops(Op.REQUEST_GUILD_MEMBERS)
        assert client.get_guild(world.guild.id).get_member(world.alice.id).name == "alice"


async def test_wrong_token_fails_login(fake: FakeDiscord, world: SimpleNamespace) -> None:
    with pytest.raises(discord.LoginFailure):
        async with running_bot(fake, make_bot, token="wrong"):
            pass


# -- application commands -------------------------------------------------------------


async def test_tree_sync_stores_commands(fake: FakeDiscord, bot: commands.Bot) -> None:
    synced = await bot.tree.sync()

    assert {c.name for c in synced} == {"ping", "echo", "digest", "papers"}
    stored = fake.commands[None]
    assert {name: int(c["id"]) for name, c in stored.items()} == {c.name: c.id for c in synced}
    assert stored["papers"]["options"][0]["name"] == "search"
    # Re-syncing keeps ids, as Discord does for unchanged names.
    assert {c.id for c in await bot.tree.sync()} == {c.id for c in synced}
    assert [c.name for c in await bot.tree.fetch_commands()] == [c.name for c in synced]


async def test_slash_command_round_trip(fake: FakeDiscord, world: SimpleNamespace, synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "ping")

    response = await handle.response()
    assert response["type"] == 4
    assert response["data"]["content"] == "pong"
    assert response["data"]["embeds"][0]["title"] == "Pong"
    assert response["data"]["components"][0]["components"][0]["custom_id"] == "ping:again"
    assert response["data"]["allowed_mentions"] == {"parse": []}
    assert handle.original["interaction_metadata"]["user"]["id"] == str(world.alice.id)
    assert fake.messages_in(world.channel) == [handle.original]
    assert handle.payload["data"]["id"] == fake.commands[None]["ping"]["id"]


async def test_subcommand_with_typed_options(fake: FakeDiscord, world: SimpleNamespace,
                                             synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "papers",
                                           subcommand="search", options={"query": "llm", "limit": 3})

    sub = handle.payload["data"]["options"][0]
    assert (sub["name"], sub["type"]) == ("search", 1)
    assert [(o["name"], o["type"], o["value"]) for o in sub["options"]] == [("query", 3, "llm"), ("limit", 4, 3)]
    response = await handle.response()
    assert response["data"]["content"] == "llm:3"
    assert response["data"]["flags"] & MessageFlag.EPHEMERAL
    assert fake.messages_in(world.channel) == []  # ephemeral messages are not in the channel


async def test_deferred_response_then_followup(fake: FakeDiscord, world: SimpleNamespace,
                                               synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "echo", options={"text": "hi"})

    assert (await handle.response())["type"] == 5
    followup = await handle.followup()
    assert followup["content"] == "echo: hi"
    # The first follow-up after a thinking defer replaces the "thinking..." message.
    assert followup["id"] == handle.original["id"] and not followup["flags"] & MessageFlag.LOADING
    request = fake.last_request("POST", "/webhooks/{webhook_id}/{token}")
    assert request.json["allowed_mentions"] == {"parse": []} and request.query["wait"] == "1"


async def test_autocomplete_choices(fake: FakeDiscord, world: SimpleNamespace, synced_bot: commands.Bot) -> None:
    handle = await fake.send_autocomplete(world.guild, world.channel, world.alice, "echo", focused="text", value="al")

    assert handle.payload["data"]["options"] == [{"name": "text", "type": 3, "value": "al", "focused": True}]
    response = await handle.response()
    assert response == {"type": 8, "data": {"choices": [{"name": "alpha", "value": "alpha"},
                                                         {"name": "alphabet", "value": "alphabet"}]}}


async def test_button_click_reaches_view_and_edits_message(fake: FakeDiscord, world: SimpleNamespace,
                                                           synced_bot: commands.Bot) -> None:
    ping = await fake.send_slash_command(world.guild, world.channel, world.alice, "ping")
    await ping.response()

    click = await fake.click_button(ping.original, "ping:again", world.alice)

    response = await click.response()
    assert response["type"] == 7 and response["data"]["content"] == "pong x2"
    assert synced_bot.views[0].clicks == 1
    assert fake.state.messages[int(ping.original["id"])]["content"] == "pong x2"
    assert click.payload["message"]["id"] == ping.original["id"]


async def test_deferred_update_then_edit_original(fake: FakeDiscord, world: SimpleNamespace,
                                                   synced_bot: commands.Bot) -> None:
    ping = await fake.send_slash_command(world.guild, world.channel, world.alice, "ping")
    await ping.response()

    click = await fake.click_button(ping.original, "ping:later", world.alice)

    assert (await click.response())["type"] == 6
    assert (await click.edit())["content"] == "pong (later)"
    assert fake.state.messages[int(ping.original["id"])]["content"] == "pong (later)"


async def test_original_response_and_followup_edits(fake: FakeDiscord, world: SimpleNamespace,
                                                    synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "digest")

    await fake.wait_for_request("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}")
    assert [e["content"] for e in handle.edits] == ["digest ready"]
    assert synced_bot.fetched_original.content == "digest ready"
    assert fake.last_request("PATCH", f"/webhooks/{fake.application_id}/{handle.token}/messages/"
                                      f"{handle.followups[0]['id']}").json["content"] == "extra!"
    assert [m["content"] for m in fake.messages_in(world.channel)] == ["digest ready"]  # follow-up deleted


async def test_slash_command_in_dm(fake: FakeDiscord, world: SimpleNamespace, synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(None, None, world.alice, "ping")

    assert "member" not in handle.payload and handle.payload["user"]["id"] == str(world.alice.id)
    assert (await handle.response())["data"]["content"] == "pong"
    assert handle.original["channel_id"] == str(fake.state.dm_channel(world.alice).id)


async def test_responding_twice_is_rejected(fake: FakeDiscord, world: SimpleNamespace,
                                            synced_bot: commands.Bot) -> None:
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "ping")
    await handle.response()
    request = fake.last_request("POST", "/interactions/{interaction_id}/{token}/callback")
    assert request.params["interaction_id"] == str(handle.id)

    async with synced_bot.http._HTTPClient__session.post(  # replay the same callback by hand
            f"{fake.api_url}{request.path}", json=request.json) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 40060


# -- channel messages ------------------------------------------------------------------


async def test_enforced_nonce_deduplicates(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    channel = bot.get_channel(world.channel.id)

    first = await channel.send("daily digest", nonce=424242)
    second = await channel.send("daily digest", nonce=424242)

    assert first.id == second.id
    assert len(fake.messages_in(world.channel)) == 1
    posts = fake.requests_to("POST", MESSAGES)
    assert len(posts) == 2 and posts[0].json["enforce_nonce"] is True


async def test_files_are_parsed_and_served(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    channel = bot.get_channel(world.channel.id)
    message = await channel.send("the paper", file=discord.File(io.BytesIO(b"%PDF-1.4 tiny"), filename="paper.pdf"))

    request = fake.last_request("POST", MESSAGES)
    assert request.json["content"] == "the paper"
    assert [(f.filename, f.data) for f in request.files] == [("paper.pdf", b"%PDF-1.4 tiny")]
    assert await message.attachments[0].read() == b"%PDF-1.4 tiny"


async def test_edit_delete_and_fetch(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    channel = bot.get_channel(world.channel.id)
    message = await channel.send("draft")
    edited = await message.edit(content="final")
    assert edited.content == "final" and edited.edited_at is not None
    assert (await channel.fetch_message(message.id)).content == "final"
    await message.delete()
    with pytest.raises(discord.NotFound) as caught:
        await channel.fetch_message(message.id)
    assert caught.value.code == 10008


async def test_threads_and_forum_posts(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    message = await bot.get_channel(world.channel.id).send("discuss this")
    thread = await message.create_thread(name="Discussion")
    assert thread.id == message.id  # Discord reuses the starter message id

    forum = bot.get_channel(world.forum.id)
    nlp = next(t for t in forum.available_tags if t.name == "nlp")
    post = await forum.create_thread(name="Attention Is All You Need", content="abstract...",
                                     applied_tags=[nlp], reason="daily digest")
    assert post.thread.id == post.message.id and post.message.content == "abstract..."
    request = fake.last_request("POST", "/channels/{channel_id}/threads")
    assert request.json["applied_tags"] == [str(nlp.id)] and request.reason == "daily digest"
    assert fake.state.channels[post.thread.id].applied_tags == [nlp.id]


async def test_direct_messages(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    user = await bot.fetch_user(world.alice.id)
    await user.send("your digest")
    assert fake.messages_in(fake.state.dm_channel(world.alice))[0]["content"] == "your digest"

    fake.set_dm_closed(world.alice)
    with pytest.raises(discord.Forbidden) as caught:
        await user.send("again")
    assert caught.value.code == 50007


# -- faults -----------------------------------------------------------------------------


async def test_forced_403_raises_forbidden(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    fake.set_channel_forbidden(world.channel)
    with pytest.raises(discord.Forbidden) as caught:
        await bot.get_channel(world.channel.id).send("hello")
    assert caught.value.code == 50013 and caught.value.text == "Missing Permissions"


async def test_permission_overwrites_are_enforced_and_visible(fake: FakeDiscord, world: SimpleNamespace) -> None:
    fake.set_channel_permissions(world.channel, fake.bot_user, deny=Perm.SEND_MESSAGES)
    async with running_bot(fake, make_bot) as client:
        channel = client.get_channel(world.channel.id)
        assert not channel.permissions_for(channel.guild.me).send_messages  # discord.py agrees with the fake
        with pytest.raises(discord.Forbidden):
            await channel.send("hello")


async def test_429_is_retried_after_retry_after(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    fake.fail_next("POST", f"/channels/{world.channel.id}/messages", status=429, retry_after=0.05)
    started = time.monotonic()

    message = await bot.get_channel(world.channel.id).send("hello")

    assert time.monotonic() - started >= 0.05
    assert [r.status for r in fake.requests_to("POST", MESSAGES)] == [429, 200]
    assert fake.messages_in(world.channel)[0]["id"] == str(message.id)


async def test_429_without_via_is_not_retried(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    fake.fail_next("POST", MESSAGES, status=429, via=False)  # discord.py reads this as a Cloudflare ban
    with pytest.raises(discord.HTTPException) as caught:
        await bot.get_channel(world.channel.id).send("hello")
    assert caught.value.status == 429 and len(fake.requests_to("POST", MESSAGES)) == 1


async def test_rate_limiter_buckets_are_respected(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    fake.enable_rate_limits(per_route=(2, 0.2))
    channel = bot.get_channel(world.channel.id)
    started = time.monotonic()

    for i in range(3):
        await channel.send(f"message {i}")

    # discord.py sees X-RateLimit-Remaining: 0 and waits for the bucket to reset instead of hitting a 429.
    assert time.monotonic() - started >= 0.15
    assert [r.status for r in fake.requests_to("POST", MESSAGES)] == [200, 200, 200]
    assert fake.requests_to("POST", MESSAGES)[0].response is not None


async def test_unknown_route_is_a_recorded_404(fake: FakeDiscord, bot: commands.Bot) -> None:
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/no/such/route"))
    request = fake.last_request("GET", "/no/such/route")
    assert request.route is None and request.response == {"message": "404: Not Found", "code": 0}


# -- gateway ------------------------------------------------------------------------------


async def test_reconnect_resumes_the_session(fake: FakeDiscord, world: SimpleNamespace,
                                             synced_bot: commands.Bot) -> None:
    resumed = asyncio.ensure_future(synced_bot.wait_for("resumed", timeout=2))
    session_id = fake.gateway.current.id

    await fake.gateway.send_reconnect()

    resume = await fake.gateway.wait_for_op(Op.RESUME)
    assert resume["d"]["session_id"] == session_id and resume["d"]["seq"] > 0
    assert resume["url"].startswith(fake.resume_gateway_url)
    await resumed
    assert len(fake.gateway.ops(Op.IDENTIFY)) == 1
    # Events still flow on the resumed connection.
    handle = await fake.send_slash_command(world.guild, world.channel, world.alice, "ping")
    assert (await handle.response())["type"] == 4


async def test_invalid_session_reidentifies(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    await fake.gateway.send_invalid_session(resumable=False)

    await fake.gateway.wait_for_op(Op.IDENTIFY, count=2)
    await fake.gateway.wait_for_dispatch("READY", count=2)
    await fake.wait_for(bot.is_ready, what="the bot to be ready again")
    assert bot.get_guild(world.guild.id) is not None


async def test_dropped_connection_resumes(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    await fake.gateway.disconnect(code=4000)  # a network blip from Discord's side

    await fake.gateway.wait_for_dispatch("RESUMED")
    message = await fake.send_user_message(world.channel, world.alice, "still there?")
    await fake.wait_for(lambda: bot.get_channel(world.channel.id).last_message_id == int(message["id"]),
                        what="the bot to see the new message")


async def test_latency_and_global_rate_limit(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    fake.add_latency(0.05, "GET", "/channels/{channel_id}", times=1)
    started = time.monotonic()
    await bot.fetch_channel(world.channel.id)
    assert time.monotonic() - started >= 0.05

    fake.enable_rate_limits(per_route=(100, 1.0), global_per_second=2, global_window=0.1)
    results = await asyncio.gather(*(bot.fetch_channel(world.channel.id) for _ in range(3)))
    assert len(results) == 3  # the third waited out a global 429
    assert any(r.status == 429 and r.response["global"] for r in fake.requests_to("GET", "/channels/{channel_id}"))


async def test_archived_posts_are_listed_apart_and_a_deleted_forum_takes_its_posts(
    fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot
) -> None:
    forum = bot.get_channel(world.forum.id)
    kept = await forum.create_thread(name="kept", content="a")
    archived = await forum.create_thread(name="archived", content="b")
    fake.state.channels[archived.thread.id].archived = True
    assert [t.id for t in await forum.guild.active_threads()] == [kept.thread.id]
    assert [t.id async for t in forum.archived_threads()] == [archived.thread.id]
    sent = await bot.get_channel(world.channel.id).send("x", nonce="n1")
    await bot.get_channel(world.channel.id).fetch_message(sent.id)
    assert fake.last_request("POST", "/channels/{channel_id}/messages").response["nonce"] == "n1"
    assert "nonce" not in fake.last_request("GET", "/channels/{channel_id}/messages/{message_id}").response

    await fake.delete_channel(world.forum)

    assert await bot.get_guild(world.guild.id).active_threads() == []


async def test_deleted_channel_is_unknown(fake: FakeDiscord, world: SimpleNamespace, bot: commands.Bot) -> None:
    channel = bot.get_channel(world.channel.id)

    await fake.delete_channel(world.channel)

    await fake.wait_for(lambda: bot.get_channel(world.channel.id) is None, what="CHANNEL_DELETE to reach the bot")
    with pytest.raises(discord.NotFound) as caught:
        await channel.send("anyone?")
    assert caught.value.code == 10003
