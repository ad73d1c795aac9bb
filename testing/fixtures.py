"""Running a real discord.py bot against a FakeDiscord, for tests and benchmarks.

Import from a conftest.py::

    from testing.fixtures import fake_discord, running_bot  # noqa: F401

Create bots with ``guild_ready_timeout=0.01``: discord.py otherwise waits 2 s
after the last GUILD_CREATE before it calls itself ready.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, TypeVar, Union

import discord
import pytest_asyncio

from .server import FakeDiscord, point_discordpy_at

ClientT = TypeVar("ClientT", bound=discord.Client)


@asynccontextmanager
async def running_bot(fake: FakeDiscord, bot: Union[ClientT, Callable[[], ClientT]], *, token: str | None = None,
                      ready_timeout: float = 5.0, close_timeout: float = 5.0) -> AsyncIterator[ClientT]:
    """Run ``bot.start(token)`` against ``fake`` until the block ends; yields the ready client.

    ``bot`` may be a client or a factory (called inside the running loop).
    If the bot's task dies, its exception is raised (here, or from any
    ``fake.wait_for``/``handle.response()``) instead of showing up as a timeout.
    On exit the client is closed and its task awaited, so no tasks or
    aiohttp sessions leak into the next test.
    """
    client = bot if isinstance(bot, discord.Client) else bot()
    with point_discordpy_at(fake):
        task = asyncio.create_task(client.start(fake.token if token is None else token), name="fakediscord-bot")
        try:
            await fake.wait_for(lambda: client.is_ready() or task.done(), timeout=ready_timeout,
                                what="the bot to become ready (READY, GUILD_CREATEs, then guild_ready_timeout)")
            if not client.is_ready():
                task.result()  # raises the crash itself (e.g. LoginFailure), if any
                raise RuntimeError("bot.start() returned before the bot became ready")
            fake.watch(task)
            yield client
        except BaseException as exc:
            crash = await _shutdown(client, task, close_timeout)
            if crash is not None and crash is not exc and crash is not exc.__cause__:
                exc.add_note(f"meanwhile the bot's task died with {crash!r}")
            raise
        crash = await _shutdown(client, task, close_timeout)
        if crash is not None:
            raise crash
        fake.check()


async def _shutdown(client: discord.Client, task: asyncio.Task, timeout: float) -> BaseException | None:
    """Close the client and collect its task's exception (None if it ended cleanly)."""
    if not client.is_closed():
        await client.close()
    try:
        await asyncio.wait_for(task, timeout)
    except asyncio.TimeoutError:  # wait_for has cancelled the task by now
        return RuntimeError(f"bot.start() did not return within {timeout}s of close()")
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # we are the ones being cancelled
    except Exception as exc:
        return exc
    return None


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with no guilds; fails the test if the fake itself crashed."""
    async with FakeDiscord() as fake:
        yield fake
    fake.check()
