"""The digest channels on real SQLite files."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from storage import channels
from storage.channels import DigestChannel

DAY = dt.date(2025, 2, 20)
GUILD = 900


def a_channel(channel_id: int = 100, **settings) -> DigestChannel:
    values = dict(channel_id=channel_id, guild_id=GUILD, post_time=dt.time(9, 0), timezone="Europe/Paris")
    return DigestChannel(**(values | settings))



@pytest.fixture
async def channel(conn) -> DigestChannel:
    row = a_channel()
    await channels.save_channel(conn, row)
    return row


# ----- digest channels -----------------------------------------------------------------------


async def test_a_saved_channel_reads_back_with_its_settings(conn):
    saved = a_channel(tags=["Robotics", " ", "Robotics", "NLP"], style="thread", empty_day_note=True,
                      set_up_by=42, post_time=dt.time(7, 30, 15))
    await channels.save_channel(conn, saved)
    got = await channels.get_channel(conn, 100)
    assert got.model_dump(exclude={"created_at", "updated_at"}) == saved.model_copy(
        update={"tags": ["Robotics", "NLP"], "post_time": dt.time(7, 30)}
    ).model_dump(exclude={"created_at", "updated_at"})
    assert got.broken_reason is None and not got.broken_notified and got.last_error is None
    assert got.created_at is not None and got.created_at.tzinfo is not None and got.updated_at is not None


async def test_created_at_is_kept_on_update_unless_given(conn):
    await channels.save_channel(conn, a_channel())
    created = (await channels.get_channel(conn, 100)).created_at
    await channels.save_channel(conn, a_channel(style="thread"))
    assert (await channels.get_channel(conn, 100)).created_at == created
    back_then = dt.datetime(2025, 3, 18, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    await channels.save_channel(conn, a_channel(created_at=back_then))
    assert (await channels.get_channel(conn, 100)).created_at == back_then


async def test_channel_settings_are_validated():
    with pytest.raises(ValidationError, match="unknown time zone"):
        a_channel(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        a_channel(style="fancy")


async def test_channels_list_by_guild_and_remove(conn):
    for channel_id, guild_id in [(3, 1), (1, 2), (2, 1)]:
        await channels.save_channel(conn, a_channel(channel_id, guild_id=guild_id))
    assert [c.channel_id for c in await channels.list_channels(conn)] == [1, 2, 3]
    assert [c.channel_id for c in await channels.list_channels(conn, guild_id=1)] == [2, 3]
    assert await channels.remove_channel(conn, 2) is True
    assert await channels.remove_channel(conn, 2) is False
    assert await channels.get_channel(conn, 2) is None


async def test_mark_broken_asks_to_notify_once_until_the_channel_is_saved_again(conn, channel):
    assert await channels.mark_broken(conn, 100, "Paperbot lost access to #papers (Missing Permissions)") is True
    assert await channels.mark_broken(conn, 100, "Paperbot can no longer find #papers (Unknown Channel)") is False
    broken = await channels.get_channel(conn, 100)
    assert broken.broken_reason == "Paperbot can no longer find #papers (Unknown Channel)"
    assert broken.broken_notified

    await channels.save_channel(conn, broken)  # an admin fixed it and saved the settings
    fixed = await channels.get_channel(conn, 100)
    assert fixed.broken_reason is None and not fixed.broken_notified
    assert await channels.mark_broken(conn, 100, "again") is True
    assert await channels.mark_broken(conn, 999, "no such channel") is False


async def test_record_error_keeps_the_last_one_and_none_clears_it(conn, channel):
    await channels.record_error(conn, 100, "Discord answered 503: Service Unavailable")
    failing = await channels.get_channel(conn, 100)
    assert failing.last_error == "Discord answered 503: Service Unavailable"
    assert failing.last_error_at is not None and failing.last_error_at.tzinfo is not None
    await channels.record_error(conn, 100, None)
    healthy = await channels.get_channel(conn, 100)
    assert healthy.last_error is None and healthy.last_error_at is None
