"""/digest setup|remove|status|post|role|roundup: where and when the daily digest and weekly roundup go.

Only members with Manage Server see these commands (default permissions) and
may run them (checked again at run time, since server owners can override
the defaults). Replies are ephemeral: configuration talk stays out of channels.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.cogs.options import MAX_CHOICES, known_tag, parse_date, quoted, shown_tag, tag_choices
from bot.errors import UserError
from bot.views import Pager
from storage import channels, outbox, papers
from storage.channels import DigestChannel

DEFAULT_TIME = time(9, 0)
MAX_CHANNEL_TAGS = 25
DEFAULT_ROUNDUP_TIME = time(17, 0)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # 0 = Monday
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "off"]
DEFAULT_ZONE = "UTC"
Style = Literal["compact", "thread"]

NEEDED = {  # permission attribute -> how Discord's UI names it
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    # to look for a message whose answer Discord lost before sending it again (never twice)
    "read_message_history": "Read Message History",
}
NEEDED_FOR_THREADS = {
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
}
NEEDED_IN_FORUMS = {  # in a forum, Send Messages is what Discord's UI calls Create Posts
    "view_channel": "View Channel",
    "send_messages": "Create Posts",
    "send_messages_in_threads": "Send Messages in Threads",
    "embed_links": "Embed Links",
    "read_message_history": "Read Message History",
}
NEEDED_FOR_FORUM_TAGS = {"manage_channels": "Manage Channels"}
DigestTarget = discord.TextChannel | discord.ForumChannel


def _tag_list(names: list[str], room: int) -> str:
    """As many tag names as fit in `room`, escaped, then `+N more`."""
    shown: list[str] = []
    for index, name in enumerate(names):
        candidate = ", ".join([*shown, shown_tag(name)])
        rest = len(names) - index - 1
        if len(candidate) + (len(f", +{rest} more") if rest else 0) > room:
            return ", ".join(shown) + (", " if shown else "") + f"+{len(names) - len(shown)} more"
        shown.append(shown_tag(name))
    return ", ".join(shown)


@functools.cache
def zone_names() -> list[str]:
    return sorted(available_timezones())


def parse_time(value: str | None, default: time = DEFAULT_TIME) -> time:
    if not value:
        return default
    try:
        return time.fromisoformat(value.strip().zfill(5))
    except ValueError:
        raise UserError(f"`time` must be a 24-hour time like 09:00 or 18:30, not “{quoted(value)}”.") from None


def parse_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"“{quoted(value)}” is not a time zone I know. Use an IANA name like Europe/Berlin "
            "or America/New_York (start typing to see them)."
        ) from None
    return value


def missing_permissions(
    channel: discord.abc.GuildChannel, style: Style | Literal["forum"], *, create_forum_tags: bool = False
) -> list[str]:
    granted = channel.permissions_for(channel.guild.me)
    if style == "forum":
        needed = NEEDED_IN_FORUMS | (NEEDED_FOR_FORUM_TAGS if create_forum_tags else {})
    else:
        needed = NEEDED | (NEEDED_FOR_THREADS if style == "thread" else {})
    return [label for attribute, label in needed.items() if not getattr(granted, attribute)]


def discord_time(moment: datetime | None, zone: str) -> str:
    """A moment as the server's local time and as a Discord timestamp each member sees in their own zone."""
    if moment is None:
        return "not scheduled"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {zone} (<t:{int(moment.timestamp())}:R>)"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Digest(commands.GroupCog, group_name="digest", group_description="Daily digest posts (admins)"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db  # type: ignore[attr-defined]
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Default permissions can be overridden per server, so check Manage Server at run time too."""
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    @property
    def daily(self):
        return self.bot.daily  # type: ignore[attr-defined]

    async def _server_zone(self, guild_id: int) -> str:
        """The zone this server already uses, so a second channel needs no repeat."""
        configured = await channels.list_channels(self.db, guild_id=guild_id)
        return configured[0].timezone if configured else DEFAULT_ZONE

    async def _tags(self, text: str | None) -> list[str]:
        parts = [part.strip() for part in (text or "").split(",") if part.strip()]
        if len(parts) > MAX_CHANNEL_TAGS:  # each is a lookup, and the list is shown in every status
            raise UserError(f"A digest channel can follow at most {MAX_CHANNEL_TAGS} tags; you gave {len(parts)}.")
        return list(dict.fromkeys([await known_tag(self.db, part) for part in parts]))

    async def tag_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await tag_choices(self.db, current)

    async def zone_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.strip().lower().replace(" ", "_")
        found = [z for z in zone_names() if needle in z.lower()]
        return [app_commands.Choice(name=z, value=z) for z in found[:MAX_CHOICES]]

    @app_commands.command(name="setup", description="Post the daily digest in a channel")
    @app_commands.describe(
        channel="Where to post: a text channel, or a forum (one post per day)",
        time="Local time to post, 24-hour HH:MM (default 09:00)",
        timezone="IANA time zone, e.g. Europe/Berlin (default: this server's, else UTC)",
        tags="Only papers with any of these tags, comma-separated (default: all papers)",
        style="compact: one message per day; thread: a header and a thread with one post per paper",
        empty_day_note="Also post a short note on days without a digest",
        create_forum_tags="Forums: create forum tags for the papers' tags (needs Manage Channels)",
    )
    @app_commands.autocomplete(timezone=zone_autocomplete)
    async def setup(
        self,
        interaction: discord.Interaction,
        channel: DigestTarget,
        time: str | None = None,
        timezone: str | None = None,
        tags: str | None = None,
        style: Style | None = None,
        empty_day_note: bool = False,
        create_forum_tags: bool = False,
    ) -> None:
        post_time = parse_time(time)
        zone = parse_zone(timezone) if timezone else await self._server_zone(interaction.guild_id)
        tag_names = await self._tags(tags)
        is_forum = isinstance(channel, discord.ForumChannel)
        if is_forum and style == "compact":
            raise UserError(f"{channel.mention} is a forum: each day is one post with a message per paper, "
                            "so `style` cannot be compact there (leave it out).")
        if create_forum_tags and not is_forum:
            raise UserError("`create_forum_tags` is only for forum channels.")
        chosen: Style | Literal["forum"] = "forum" if is_forum else (style or "compact")
        missing = missing_permissions(channel, chosen, create_forum_tags=create_forum_tags)
        if missing:
            raise UserError(f"I can't post in {channel.mention}: I need the {', '.join(missing)} permission there.")
        existing = await channels.get_channel(self.db, channel.id)
        row = DigestChannel(
            channel_id=channel.id, guild_id=interaction.guild_id, post_time=post_time, timezone=zone,
            tags=tag_names, style=chosen, empty_day_note=empty_day_note, create_forum_tags=create_forum_tags,
            set_up_by=interaction.user.id,
            created_at=existing.created_at if existing else datetime.now(UTC),
        )
        await channels.save_channel(self.db, row)
        self.daily.schedule(row)
        scope = f"papers tagged {_tag_list(tag_names, 600)}" if tag_names else "every paper"
        await interaction.response.send_message(
            f"{'Updated' if existing else 'Set up'}: {channel.mention} gets {scope} daily at "
            f"{post_time:%H:%M} {zone}, "
            + ("one forum post per day" + (" (with forum tags created as needed)" if create_forum_tags else "")
               if is_forum else f"{chosen} style")
            + ". Next post: "
            f"{discord_time(self.daily.next_post_time(channel.id), zone)}.",
            ephemeral=True, allowed_mentions=render.NO_MENTIONS,
        )

    @app_commands.command(name="remove", description="Stop posting the daily digest in a channel")
    async def remove(self, interaction: discord.Interaction, channel: DigestTarget) -> None:
        if not await channels.remove_channel(self.db, channel.id):
            raise UserError(f"{channel.mention} does not get the daily digest; `/digest status` lists those that do.")
        self.daily.unschedule(channel.id)
        await interaction.response.send_message(
            f"{channel.mention} will no longer get the daily digest.", ephemeral=True,
            allowed_mentions=render.NO_MENTIONS,
        )

    @app_commands.command(name="status", description="Where and when the digest is posted, and how it went")
    async def status(self, interaction: discord.Interaction) -> None:
        configured = await channels.list_channels(self.db, guild_id=interaction.guild_id)
        if not configured:
            raise UserError("No channel gets the daily digest yet: use `/digest setup`.")
        fields = [(f"#{render.escape_text(self._channel_name(row.channel_id))}", await self._status_lines(row))
                  for row in configured]
        pages = render.field_pages("Daily digest", fields, noun="channel")

        async def render_page(number: int) -> discord.Embed:
            return pages[number]

        await Pager.send(interaction, page_count=len(pages), render_page=render_page, ephemeral=True,
                         timeout=self.bot.settings.commands.view_timeout_seconds)  # type: ignore[attr-defined]

    async def _status_lines(self, row: DigestChannel) -> str:
        """One channel's schedule, filters and last outcome; every part fits, tags cut first."""
        last = await outbox.last_done(self.db, "digest", row.channel_id)
        lines = [
            f"Next post: {discord_time(self.daily.next_post_time(row.channel_id), row.timezone)}",
            f"Daily at {row.post_time:%H:%M} {row.timezone} · {row.style}",
            f"Last day delivered: {last.isoformat() if last else 'none yet'}",
        ]
        if row.roundup_weekday is not None:
            weekday = WEEKDAYS[row.roundup_weekday].title()
            next_roundup = discord_time(self.daily.next_roundup_time(row.channel_id), row.timezone)
            lines.append(f"Weekly roundup: {weekday}s at {row.roundup_time:%H:%M} · next: {next_roundup}")
        if row.broken_reason:
            lines.append(f"⛔ Not posting: {render.escape_text(row.broken_reason)}. Fix it, then run `/digest setup` again.")
        elif row.last_error:
            lines.append(f"⚠️ Last error: {render.escape_text(row.last_error)}")
        if not row.broken_reason and not self._can_read_history(row.channel_id):
            lines.append("⚠️ Paperbot cannot read the message history here (Read Message History): after a "
                         "lost answer from Discord it cannot check whether a post went through, so it may "
                         "post it twice. Grant the permission.")
        lines = [render.truncate(line, 300) for line in lines]
        if row.tags:
            room = render.MAX_FIELD_VALUE - sum(len(line) + 1 for line in lines) - len("Tags: ")
            lines.insert(2, "Tags: " + _tag_list(row.tags, room))
        return "\n".join(lines)

    def _can_read_history(self, channel_id: int) -> bool:
        """True unless the channel is known and Paperbot lacks Read Message History there."""
        channel = self.bot.get_channel(channel_id)
        me = getattr(getattr(channel, "guild", None), "me", None)
        if channel is None or me is None:
            return True
        return channel.permissions_for(me).read_message_history

    def _channel_name(self, channel_id: int) -> str:
        channel = self.bot.get_channel(channel_id)
        return getattr(channel, "name", None) or str(channel_id)

    @app_commands.command(name="role", description="Mention a role in digests with papers carrying a tag")
    @app_commands.describe(tag="The tag (start typing to see them)", role="The role to mention; leave out to stop")
    @app_commands.autocomplete(tag=tag_autocomplete)
    async def role(self, interaction: discord.Interaction, tag: str, role: discord.Role | None = None) -> None:
        name = await known_tag(self.db, tag)
        if role is not None and role.is_default():
            raise UserError("Paperbot never mentions @everyone; choose a role made for the tag.")
        changed = await channels.set_tag_role(self.db, interaction.guild_id, name, role.id if role else None)
        if role is not None:
            text = f"Digests with papers tagged {shown_tag(name)} will mention {role.mention}."
        elif changed:
            text = f"Digests no longer mention a role for {shown_tag(name)}."
        else:
            raise UserError(f"No role is mentioned for {shown_tag(name)}.")
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=render.NO_MENTIONS)

    @app_commands.command(name="roundup", description="A weekly post of the week's top papers and busiest tags")
    @app_commands.describe(
        channel="A digest channel (the roundup uses its time zone and tags)",
        weekday="The day to post it on, or off to stop",
        time="Local time to post, 24-hour HH:MM (default 17:00)",
    )
    async def roundup(self, interaction: discord.Interaction, channel: DigestTarget, weekday: Weekday,
                      time: str | None = None) -> None:
        at = parse_time(time, DEFAULT_ROUNDUP_TIME)
        row = await channels.get_channel(self.db, channel.id)
        if row is None:
            raise UserError(f"{channel.mention} does not get the daily digest: set it up with `/digest setup` "
                            "first (the roundup uses its time zone).")
        if weekday == "off":
            if row.roundup_weekday is None:
                raise UserError(f"{channel.mention} has no weekly roundup.")
            await channels.set_roundup(self.db, channel.id, None)
            text = f"{channel.mention} will no longer get the weekly roundup."
        else:
            if row.style == "forum":
                raise UserError(f"{channel.mention} is a forum; the weekly roundup goes to a text channel.")
            await channels.set_roundup(self.db, channel.id, WEEKDAYS.index(weekday), at)
            text = (f"{channel.mention} gets the week's top papers and busiest tags every {weekday.title()} at "
                    f"{at:%H:%M} {row.timezone}. Next roundup: ")
        self.daily.schedule(await channels.get_channel(self.db, channel.id))
        if weekday != "off":
            text += f"{discord_time(self.daily.next_roundup_time(channel.id), row.timezone)}."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=render.NO_MENTIONS)

    @app_commands.command(name="post", description="Post a day's digest now (default: the latest day)")
    @app_commands.describe(day="The digest day, YYYY-MM-DD", channel="A digest channel (default: this one)")
    async def post(self, interaction: discord.Interaction, day: str | None = None,
                   channel: DigestTarget | None = None) -> None:
        target = channel or interaction.channel
        row = await channels.get_channel(self.db, target.id)
        if row is None:
            raise UserError(f"{target.mention} is not a digest channel; set it up with `/digest setup` first.")
        wanted: date | None = parse_date(day, "day") or await papers.latest_day(self.db)
        if wanted is None or not await papers.papers_on_day(self.db, wanted):
            raise UserError(f"There is no digest for {wanted or 'any day'} in the library.")
        done = await outbox.get(self.db, "digest", row.channel_id, wanted)
        if done is not None and done.status == "done":
            raise UserError(f"The digest for {wanted} was already posted in {target.mention}.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.daily.poster.deliver(row, wanted, late=False)
        await interaction.followup.send(
            f"{target.mention}: {outcome.describe()}", ephemeral=True, allowed_mentions=render.NO_MENTIONS
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Digest(bot))
