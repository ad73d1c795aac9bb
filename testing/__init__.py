"""A small fake Discord (REST + gateway) that the real, unmodified discord.py talks to.

Typical use::

    async with FakeDiscord() as fake:
        guild = fake.add_guild("Papers")
        alice = fake.add_user("alice")
        fake.add_member(guild, alice)
        async with running_bot(fake, make_bot) as bot:
            await bot.tree.sync()
            handle = await fake.send_slash_command(guild, guild.channel_ids[0], alice, "ping")
            assert (await handle.response())["type"] == 4
"""

from .faults import ApiError, Fault, RateLimiter, Reply
from .fixtures import fake_discord, running_bot
from .gateway import Gateway, Intent, Op
from .interactions import Interaction, InteractionType, ResponseType
from .rest import RecordedRequest, UploadedFile, routes
from .server import FakeDiscord, point_discordpy_at
from .state import Channel, ChannelType, Guild, Member, MessageFlag, Perm, Role, Snowflakes, State, User

__all__ = [
    "ApiError", "Channel", "ChannelType", "FakeDiscord", "Fault", "Gateway", "Guild", "Intent", "Interaction",
    "InteractionType", "Member", "MessageFlag", "Op", "Perm", "RateLimiter", "RecordedRequest", "Reply",
    "ResponseType", "Role", "Snowflakes", "State", "UploadedFile", "User", "fake_discord", "point_discordpy_at",
    "routes", "running_bot",
]
