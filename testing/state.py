"""The fake's world: users, guilds, roles, members, channels and messages.

Everything is plain dataclasses plus ``to_dict`` methods that produce the JSON
Discord would send, because discord.py builds its models from exactly those
shapes. Messages are stored as those JSON dicts directly: the REST handlers
merge edits into them and tests read them back as-is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


class Perm:
    """Permission bits the fake reasons about (a subset of Discord's)."""

    CREATE_INSTANT_INVITE = 1 << 0
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38

    ALL = (1 << 53) - 1
    #: What @everyone gets in a fresh guild (roughly Discord's default).
    EVERYONE = (
        CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
        | READ_MESSAGE_HISTORY | USE_EXTERNAL_EMOJIS | CHANGE_NICKNAME | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS | CREATE_PRIVATE_THREADS | SEND_MESSAGES_IN_THREADS
    )
    #: What anyone can do in a DM.
    DM = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
    #: What the bot's managed role gets (what a typical invite link asks for).
    BOT = (
        VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
        | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS | MANAGE_THREADS
    )


class ChannelType:
    TEXT = 0
    DM = 1
    CATEGORY = 4
    NEWS = 5
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    FORUM = 15
    MEDIA = 16

    THREADS = (PUBLIC_THREAD, PRIVATE_THREAD)
    MESSAGEABLE = (TEXT, DM, NEWS, PUBLIC_THREAD, PRIVATE_THREAD)


class MessageFlag:
    SUPPRESS_EMBEDS = 1 << 2
    HAS_THREAD = 1 << 5
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12


class Snowflakes:
    """Deterministic snowflake ids: the same test always sees the same ids.

    Each id is one millisecond after the previous one, starting at ``start``,
    so ``discord.utils.snowflake_time`` stays meaningful and ordering by id
    matches creation order (as on Discord).
    """

    def __init__(self, start: dt.datetime = DEFAULT_START) -> None:
        self._base_ms = int(start.timestamp() * 1000) - DISCORD_EPOCH_MS
        self._count = 0

    def next(self) -> int:
        self._count += 1
        return ((self._base_ms + self._count) << 22) | (self._count & 0xFFF)

    def skip_until(self, wanted: Callable[[int], bool]) -> None:
        """Skip ids until the next one is ``wanted`` (e.g. a guild id on a given shard)."""
        while not wanted(((self._base_ms + self._count + 1) << 22) | ((self._count + 1) & 0xFFF)):
            self._count += 1

    @staticmethod
    def time_of(snowflake: int) -> dt.datetime:
        ms = (snowflake >> 22) + DISCORD_EPOCH_MS
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)

    @classmethod
    def iso(cls, snowflake: int) -> str:
        return cls.time_of(snowflake).isoformat()


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
        }

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class Member:
    user: User
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = DEFAULT_START.isoformat()

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user.to_dict(),
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }


@dataclass
class Channel:
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    parent_id: int | None = None
    position: int = 0
    topic: str | None = None
    #: Discord-shaped overwrites: {"id", "type" (0 role, 1 member), "allow", "deny"}.
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[User] = field(default_factory=list)  # DMs
    owner_id: int | None = None  # threads
    available_tags: list[dict[str, Any]] = field(default_factory=list)  # forums
    applied_tags: list[int] = field(default_factory=list)  # forum posts
    last_message_id: int | None = None
    message_count: int = 0
    archived: bool = False
    locked: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in ChannelType.THREADS

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "flags": 0,
        }
        if self.type == ChannelType.DM:
            data["recipients"] = [u.to_dict() for u in self.recipients]
            return data
        data.update(
            guild_id=str(self.guild_id),
            name=self.name,
            parent_id=str(self.parent_id) if self.parent_id else None,
            rate_limit_per_user=0,
            nsfw=False,
        )
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=1,
                applied_tags=[str(t) for t in self.applied_tags],
                thread_metadata={
                    "archived": self.archived,
                    "locked": self.locked,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": Snowflakes.iso(self.id),
                    "create_timestamp": Snowflakes.iso(self.id),
                    "invitable": True,
                },
            )
            return data
        data.update(position=self.position, permission_overwrites=self.permission_overwrites, topic=self.topic)
        if self.type in (ChannelType.FORUM, ChannelType.MEDIA):
            data.update(
                available_tags=self.available_tags,
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
                default_thread_rate_limit_per_user=0,
            )
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    locale: str = "en-US"

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]


class State:
    """All objects the fake knows about, plus the permission maths Discord does.

    Objects are added synchronously (``add_*``) so tests can build a world
    before the bot connects; the gateway reads it when sending READY.
    """

    def __init__(self, ids: Snowflakes) -> None:
        self.ids = ids
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.attachments: dict[int, bytes] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.bot_user: User | None = None
        self.cdn_base = ""  # set by the server once it knows its port

    # -- building the world ------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(id=self.ids.next(), username=username, bot=bot, global_name=global_name)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Test Guild", *, owner: User | None = None,
                  channels: tuple[str, ...] = ("general",)) -> Guild:
        owner = owner or self.add_user(f"{name} owner")
        guild = Guild(id=self.ids.next(), name=name, owner_id=owner.id)
        self.guilds[guild.id] = guild
        # @everyone shares the guild's id, exactly as on Discord.
        guild.roles[guild.id] = Role(id=guild.id, guild_id=guild.id, name="@everyone", permissions=Perm.EVERYONE)
        self.add_member(guild, owner)
        if self.bot_user is not None:
            bot_role = self.add_role(guild, self.bot_user.username, Perm.BOT, managed=True)
            self.add_member(guild, self.bot_user, roles=[bot_role])
        for channel_name in channels:
            self.add_channel(guild, channel_name)
        return guild

    def add_role(self, guild: Guild | int, name: str, permissions: int = 0, *, managed: bool = False) -> Role:
        guild = self.guild(guild)
        role = Role(id=self.ids.next(), guild_id=guild.id, name=name, permissions=permissions,
                    position=len(guild.roles), managed=managed)
        guild.roles[role.id] = role
        return role

    def add_member(self, guild: Guild | int, user: User | int, *, roles: list[Role | int] = (),
                   nick: str | None = None) -> Member:
        guild, user = self.guild(guild), self.user(user)
        member = Member(user=user, guild_id=guild.id, roles=[_id(r) for r in roles], nick=nick)
        guild.members[user.id] = member
        return member

    def add_channel(self, guild: Guild | int, name: str, *, type: int = ChannelType.TEXT,
                    parent: Channel | int | None = None, topic: str | None = None, **extra: Any) -> Channel:
        guild = self.guild(guild)
        channel = Channel(id=self.ids.next(), type=type, name=name, guild_id=guild.id,
                          parent_id=_id(parent) if parent else None, position=len(guild.channel_ids),
                          topic=topic, **extra)
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel

    def add_forum_channel(self, guild: Guild | int, name: str, *, tags: tuple[str, ...] = ()) -> Channel:
        available = [{"id": str(self.ids.next()), "name": t, "moderated": False, "emoji_id": None, "emoji_name": None}
                     for t in tags]
        return self.add_channel(guild, name, type=ChannelType.FORUM, available_tags=available)

    def add_thread(self, parent: Channel, name: str, *, owner: User, thread_id: int | None = None,
                   type: int = ChannelType.PUBLIC_THREAD, applied_tags: list[int] = ()) -> Channel:
        thread = Channel(id=thread_id or self.ids.next(), type=type, name=name, guild_id=parent.guild_id,
                         parent_id=parent.id, owner_id=owner.id, applied_tags=list(applied_tags))
        self.channels[thread.id] = thread
        return thread

    def remove_channel(self, channel: Channel | int) -> Channel:
        """The channel and, as on Discord, its threads (a forum's posts)."""
        channel = self.channel(channel)
        del self.channels[channel.id]
        for thread in [c for c in self.channels.values() if c.is_thread and c.parent_id == channel.id]:
            del self.channels[thread.id]
        guild = self.guild_of(channel)
        if guild is not None and channel.id in guild.channel_ids:
            guild.channel_ids.remove(channel.id)
        return channel

    def dm_channel(self, user: User | int) -> Channel:
        """The one DM channel between the bot and ``user`` (created on first use)."""
        user = self.user(user)
        if user.id not in self.dm_channels:
            channel = Channel(id=self.ids.next(), type=ChannelType.DM, recipients=[user])
            self.channels[channel.id] = channel
            self.dm_channels[user.id] = channel.id
        return self.channels[self.dm_channels[user.id]]

    def set_overwrite(self, channel: Channel | int, target: Role | Member | User | int, *,
                      allow: int = 0, deny: int = 0) -> None:
        channel = self.channel(channel)
        target_type = 0 if isinstance(target, Role) or _id(target) in self.guilds[channel.guild_id].roles else 1
        target_id = target.user.id if isinstance(target, Member) else _id(target)
        channel.permission_overwrites = [o for o in channel.permission_overwrites if o["id"] != str(target_id)]
        channel.permission_overwrites.append(
            {"id": str(target_id), "type": target_type, "allow": str(allow), "deny": str(deny)})

    # -- lookups (accept objects or ids, raise KeyError with a useful message) --

    def guild(self, guild: Guild | int) -> Guild:
        return self._lookup(self.guilds, guild, "guild")

    def channel(self, channel: Channel | int) -> Channel:
        return self._lookup(self.channels, channel, "channel")

    def user(self, user: User | Member | int) -> User:
        if isinstance(user, Member):
            return user.user
        return self._lookup(self.users, user, "user")

    @staticmethod
    def _lookup(table: dict[int, Any], key: Any, kind: str) -> Any:
        try:
            return table[_id(key)]
        except KeyError:
            raise KeyError(f"fake Discord has no {kind} {_id(key)}") from None

    def guild_of(self, channel: Channel) -> Guild | None:
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def threads_of(self, guild: Guild) -> list[Channel]:
        return [c for c in self.channels.values() if c.guild_id == guild.id and c.is_thread]

    # -- permissions -------------------------------------------------------

    def base_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return Perm.ALL
        member = guild.members.get(user_id)
        perms = guild.everyone.permissions
        for role_id in member.roles if member else ():
            perms |= guild.roles[role_id].permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel: Channel, user_id: int) -> int:
        """Discord's permission algorithm: base, then @everyone, role and member overwrites."""
        guild = self.guild_of(channel)
        if guild is None:  # DMs
            return Perm.DM
        perms = self.base_permissions(guild, user_id)
        if perms & Perm.ADMINISTRATOR:
            return Perm.ALL
        source = self.channels[channel.parent_id] if channel.is_thread else channel
        overwrites = {int(o["id"]): (int(o["allow"]), int(o["deny"])) for o in source.permission_overwrites}
        allow, deny = overwrites.get(guild.id, (0, 0))
        perms = (perms & ~deny) | allow
        member = guild.members.get(user_id)
        role_allow = role_deny = 0
        for role_id in member.roles if member else ():
            a, d = overwrites.get(role_id, (0, 0))
            role_allow, role_deny = role_allow | a, role_deny | d
        perms = (perms & ~role_deny) | role_allow
        allow, deny = overwrites.get(user_id, (0, 0))
        return (perms & ~deny) | allow

    # -- payloads ------------------------------------------------------------

    def member_dict(self, guild: Guild, user_id: int, *, channel: Channel | None = None) -> dict[str, Any]:
        data = guild.members[user_id].to_dict()
        if channel is not None:  # interactions carry the member's permissions in that channel
            data["permissions"] = str(self.permissions_in(channel, user_id))
        return data

    def guild_dict(self, guild: Guild) -> dict[str, Any]:
        """The REST ``GET /guilds/{id}`` shape."""
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "region": "us-west",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "preferred_locale": guild.locale,
            "features": [],
            "roles": [r.to_dict() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "vanity_url_code": None,
            "max_members": 500000,
        }

    def guild_create_dict(self, guild: Guild, *, all_members: bool = True) -> dict[str, Any]:
        """The gateway GUILD_CREATE shape: the REST guild plus channels, members, threads.

        Without the presences intent Discord only includes the bot's own member,
        which is what makes discord.py request member chunks (op 8).
        """
        data = self.guild_dict(guild)
        members = [m for m in guild.members.values() if all_members or m.user is self.bot_user]
        data.update(
            unavailable=False,
            large=False,
            member_count=len(guild.members),
            joined_at=DEFAULT_START.isoformat(),
            channels=[self.channels[c].to_dict() for c in guild.channel_ids],
            threads=[t.to_dict() for t in self.threads_of(guild)],
            members=[m.to_dict() for m in members],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data

    def new_message(self, channel: Channel, author: User, payload: dict[str, Any], *, files: list[Any] = (),
                    type: int = 0, **extra: Any) -> dict[str, Any]:
        """Build and store a Discord message object from a send/followup payload."""
        message_id = extra.pop("id", None) or self.ids.next()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "author": author.to_dict(),
            "content": payload.get("content") or "",
            "timestamp": Snowflakes.iso(message_id),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.attachments_for(payload, files),
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "pinned": False,
            "type": type,
            "flags": int(payload.get("flags") or 0),
        }
        if channel.guild_id:
            message["guild_id"] = str(channel.guild_id)
        if payload.get("nonce") is not None:
            message["nonce"] = payload["nonce"]
        reference = payload.get("message_reference")
        if reference and int(reference.get("message_id", 0)) in self.messages:
            message["type"] = 19  # REPLY
            message["message_reference"] = {"channel_id": str(channel.id), **reference}
            message["referenced_message"] = self.messages[int(reference["message_id"])]
        message.update(extra)
        self.messages[message_id] = message
        channel.last_message_id = message_id
        channel.message_count += 1
        return message

    def edit_message(self, message: dict[str, Any], payload: dict[str, Any], *,
                     files: list[Any] = ()) -> dict[str, Any]:
        for key in ("content", "embeds", "components", "flags"):
            if key in payload:
                message[key] = payload[key] if payload[key] is not None else ([] if key != "content" else "")
        if "attachments" in payload or files:
            message["attachments"] = self.attachments_for(payload, files, previous=message["attachments"])
        message["edited_timestamp"] = Snowflakes.iso(self.ids.next())
        return message

    def attachments_for(self, payload: dict[str, Any], files: list[Any], *, previous: list[dict] = ()) -> list[dict]:
        """Attachments of a message: kept old ones (listed by id) plus the uploaded files.

        discord.py lists new uploads in ``payload["attachments"]`` as ``{"id": index, ...}``
        and sends the bytes as multipart part ``files[index]``.
        """
        kept_ids = {str(a.get("id")) for a in payload.get("attachments", [])}
        result = [a for a in previous if a["id"] in kept_ids] if "attachments" in payload else list(previous)
        for upload in files:
            attachment_id = self.ids.next()
            self.attachments[attachment_id] = upload.data
            url = f"{self.cdn_base}/attachments/{attachment_id}/{upload.filename}"
            result.append({
                "id": str(attachment_id),
                "filename": upload.filename,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
                "content_type": upload.content_type,
            })
        return result


def _id(obj: Any) -> int:
    """Accept fake objects, discord.py models (anything with ``.id``) or raw ids."""
    if isinstance(obj, Member):
        return obj.user.id
    if isinstance(obj, dict):
        return int(obj["id"])
    return int(getattr(obj, "id", obj))
