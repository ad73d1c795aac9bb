"""digests.charts on its own, and /stats tags and /stats day end to end on the fake Discord."""

from __future__ import annotations

import datetime as dt
import struct
import zlib

import pytest

from digests import charts
from bot.cogs import stats as stats_cog
from storage import papers as library
from storage import stats
from tests.world import EPHEMERAL, World, assert_private_error, first_embed, text_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", "ends with IEND"
    return width, height


WEEKS = [dt.date(2025, 1, 6) + dt.timedelta(weeks=n) for n in range(10)]


# ----- rendering -----------------------------------------------------------------------------


def test_a_chart_is_a_png_of_the_fixed_size() -> None:
    png = charts.render_tag_trends(WEEKS, {"Robotics": list(range(10)), "Multimodal": [5] * 10}, title="A test")
    assert png_size(png) == charts.CHART_SIZE == (1000, 500)


def test_the_png_decodes(tmp_path) -> None:
    from PIL import Image  # matplotlib depends on Pillow

    png = charts.render_tag_trends(WEEKS, {"Robotics": [1] * 10}, title="decodes")
    path = tmp_path / "chart.png"
    path.write_bytes(png)
    with Image.open(path) as image:
        image.load()
        assert image.size == (1000, 500)
        assert image.getpixel((5, 5))[:3] == (0x31, 0x33, 0x38), "Discord's dark background, not white"


@pytest.mark.parametrize("series", [
    {},                                                       # no tags at all
    {f"Tag {n}": [n] * 10 for n in range(8)},                 # the most a chart shows
    {"$x^2$ _hidden? " + "very long tag name " * 5: [0] * 10},  # mathtext, leading-underscore, long names
])
def test_awkward_data_still_renders(series) -> None:
    assert png_size(charts.render_tag_trends(WEEKS, series, title="$5 @everyone")) == (1000, 500)


def test_a_single_week_renders() -> None:
    assert png_size(charts.render_tag_trends(WEEKS[:1], {"Robotics": [3]}, title="one")) == (1000, 500)


def test_mismatched_or_empty_data_is_refused() -> None:
    with pytest.raises(ValueError):
        charts.render_tag_trends([], {}, title="nothing")
    with pytest.raises(ValueError):
        charts.render_tag_trends(WEEKS, {"Robotics": [1, 2]}, title="short")


def test_the_same_data_is_rendered_once() -> None:
    series = {"Cached": [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]}
    first = charts.render_tag_trends(WEEKS, series, title="cache test")
    misses = charts.render_tag_trends.cache_info().misses
    again = charts.render_tag_trends(list(WEEKS), {"Cached": tuple(series["Cached"])}, title="cache test")
    assert again is first, "the cached bytes, not a new render"
    assert charts.render_tag_trends.cache_info().misses == misses
    other = charts.render_tag_trends(WEEKS, series, title="another title")
    assert other != first and charts.render_tag_trends.cache_info().misses == misses + 1


def test_renders_are_deterministic() -> None:
    series = {"Deterministic": [2] * 10}
    first = charts.render_tag_trends(WEEKS, series, title="det")
    charts.render_tag_trends.cache_clear()
    assert charts.render_tag_trends(WEEKS, series, title="det") == first


def test_periods_are_whole_weeks_back_from_the_latest_day() -> None:
    latest = dt.date(2025, 3, 27)  # a Thursday
    assert stats_cog.period_start(latest, "4w") == dt.date(2025, 3, 3)
    assert stats_cog.period_start(latest, "52w") == dt.date(2024, 4, 1)
    assert stats_cog.period_start(latest, "all") is None
    assert set(stats_cog.PERIODS) == {"4w", "12w", "26w", "52w", "all"}


# ----- /stats tags, end to end -----------------------------------------------------------------


async def chart_message(world: World, handle, response: dict) -> dict:
    """The message carrying the chart: the response itself, or the follow-up after a thinking defer."""
    if response["type"] == 5:
        await handle.followup()
    else:
        assert response["type"] == 4
    return handle.original


def chart_bytes(world: World, message: dict) -> bytes:
    """The chart's bytes as Discord stored them, checked against the multipart upload the bot sent."""
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "trends.png"
    assert message["embeds"][0]["image"]["url"] == "attachment://trends.png"
    stored = world.fake.state.attachments[int(attachment["id"])]
    upload = [r for r in world.fake.requests if r.files][-1]
    assert [(f.filename, f.data) for f in upload.files] == [("trends.png", stored)]
    sent = upload.json.get("data", upload.json)  # an interaction callback wraps the message in "data"
    assert sent["allowed_mentions"] == {"parse": []}
    assert sent["embeds"][0]["image"]["url"] == "attachment://trends.png"
    return stored


async def test_stats_commands_are_synced(world: World) -> None:
    stats_command = world.fake.commands[None]["stats"]
    options = {o["name"]: o for o in stats_command["options"]}
    assert set(options) == {"tags", "day"}
    period = next(o for o in options["tags"]["options"] if o["name"] == "period")
    assert [c["value"] for c in period["choices"]] == ["4w", "12w", "26w", "52w", "all"]


async def test_stats_tags_replies_with_a_chart_of_the_top_tags(world: World) -> None:
    handle, response = await world.command("stats", "tags", period="all")
    message = await chart_message(world, handle, response)
    assert not message["flags"] & EPHEMERAL
    assert png_size(chart_bytes(world, message)) == (1000, 500)
    _, series = await stats.tag_counts_by_week(world.bot.db, since=None, until=None, tags=None)
    description = message["embeds"][0]["description"]
    for name, counts in series.items():
        assert f"**{name}** — {sum(counts)}" in description


async def test_stats_tags_with_chosen_tags(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = []
    real = charts.render_tag_trends

    def counting(weeks, series, *, title):
        renders.append(dict(series))
        return real(weeks, series, title=title)

    monkeypatch.setattr(charts, "render_tag_trends", counting)
    handle, response = await world.command("stats", "tags", period="26w", tags="robotics, computer vision")
    message = await chart_message(world, handle, response)
    assert png_size(chart_bytes(world, message)) == (1000, 500)
    assert list(renders[0]) == ["Robotics", "Computer Vision"]
    assert "Robotics" in message["embeds"][0]["description"]

    # Asked again for the same latest day: the cached chart, not a new render or query.
    handle, response = await world.command("stats", "tags", period="26w", tags="Computer Vision,ROBOTICS")
    message = await chart_message(world, handle, response)
    assert len(renders) == 2, "a different order is a different chart"
    handle, response = await world.command("stats", "tags", period="26w", tags="robotics,computer vision")
    again = await chart_message(world, handle, response)
    assert len(renders) == 2, "same arguments and latest day: served from the cache"
    assert response["type"] == 4
    assert png_size(chart_bytes(world, again)) == (1000, 500)


async def test_a_new_day_renders_again(world: World, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = []
    real = charts.render_tag_trends
    monkeypatch.setattr(charts, "render_tag_trends",
                        lambda weeks, series, *, title: renders.append(1) or real(weeks, series, title=title))
    handle, response = await world.command("stats", "tags", tags="Robotics")
    await chart_message(world, handle, response)
    digest = tmp_path / "2030-01-07.md"
    digest.write_text(
        "## Papers for 2030-01-07\n\n| Title | Authors | Summary | Link | Tags |\n|---|---|---|---|---|\n"
        "| A robot | Ann | Hi | [Read more](https://arxiv.org/abs/2901.00002) | Robotics |\n"
    )
    from digests.ingest import ingest_targets

    await ingest_targets(world.bot.db, [str(digest)])
    assert await library.latest_day(world.bot.db) == dt.date(2030, 1, 7)
    handle, response = await world.command("stats", "tags", tags="Robotics")
    message = await chart_message(world, handle, response)
    assert len(renders) == 2
    assert "2030-01-07" in message["embeds"][0]["description"]


async def test_stats_tags_errors(world: World) -> None:
    _, response = await world.command("stats", "tags", tags="Robotcs")
    assert_private_error(response, "Robotcs", "did you mean", "Robotics")
    _, response = await world.command("stats", "tags", tags=",".join(f"t{n}" for n in range(9)))
    assert_private_error(response, "at most 8 tags")


async def test_stats_tags_with_no_papers_in_the_period(world: World, tmp_path) -> None:
    digest = tmp_path / "2030-01-07.md"
    digest.write_text(
        "## Papers for 2030-01-07\n\n| Title | Authors | Summary | Link | Tags |\n|---|---|---|---|---|\n"
        "| A robot | Ann | Hi | [Read more](https://arxiv.org/abs/2901.00002) | Robotics |\n"
    )
    from digests.ingest import ingest_targets

    await ingest_targets(world.bot.db, [str(digest)])
    _, response = await world.command("stats", "tags", period="4w", tags="Computer Vision")
    assert_private_error(response, "no papers with", "Computer Vision", "last 4 weeks")


async def test_stats_tag_autocomplete_completes_the_last_tag(world: World) -> None:
    choices = await world.autocomplete("stats", "tags", "Robotics, vis", subcommand="tags")
    assert choices and all(c["value"].startswith("Robotics, ") for c in choices)
    assert any("Computer Vision" in c["value"] for c in choices)


# ----- /stats day ------------------------------------------------------------------------------


async def test_stats_day_summarises_the_latest_day(world: World) -> None:
    latest = await library.latest_day(world.bot.db)
    found = await library.papers_on_day(world.bot.db, latest)
    _, response = await world.command("stats", "day")
    assert response["type"] == 4 and not response["data"].get("flags", 0) & EPHEMERAL
    assert response["data"]["allowed_mentions"] == {"parse": []}
    embed = first_embed(response)
    assert latest.isoformat() in embed["title"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Papers"] == str(len(found))
    assert fields["With code"].startswith(str(sum(1 for p in found if p.github_urls)))
    assert "timlrx" in fields["Sources"]
    summary = await stats.day_summary(world.bot.db, latest)
    assert summary.top_tags[0].name in fields["Top tags"]


async def test_stats_day_of_a_given_day_and_errors(world: World) -> None:
    _, response = await world.command("stats", "day", day="2025-02-20")
    assert "2025-02-20" in text_of(first_embed(response))
    _, response = await world.command("stats", "day", day="2024-09-01")
    assert_private_error(response, "no digest for 2024-09-01")
    _, response = await world.command("stats", "day", day="yesterday")
    assert_private_error(response, "day", "2025-02-20")


async def test_stats_day_autocomplete(world: World) -> None:
    choices = await world.autocomplete("stats", "day", "2025-03", subcommand="day")
    assert choices and all(c["value"].startswith("2025-03") for c in choices)
    assert choices[0]["value"] == (await library.latest_day(world.bot.db)).isoformat()
