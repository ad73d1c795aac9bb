"""The library's slash commands, end to end: the real Paperbot client on a fake Discord.

Every assertion reads what discord.py actually sent over the wire.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from storage import papers as library
from tests.world import EPHEMERAL, World, assert_private_error, buttons, first_embed, text_of

# ----- command sync ------------------------------------------------------------------------


async def test_commands_are_synced_globally(world: World) -> None:
    synced = world.fake.commands[None]
    assert {"papers", "paper", "tags"} <= set(synced)
    subcommands = {option["name"] for option in synced["papers"]["options"]}
    assert subcommands == {"search", "tag", "day", "top", "export"}


# ----- /papers search ----------------------------------------------------------------------


async def test_search_finds_a_title_first_and_shows_matched_words(world: World) -> None:
    _, response = await world.command("papers", "search", query="SongGen")
    embed = first_embed(response)
    assert response["type"] == 4 and not response["data"].get("flags", 0) & EPHEMERAL
    first_entry = embed["description"].split("\n\n")[0] if embed.get("description") else text_of(embed)
    assert "SongGen" in first_entry
    assert "**SongGen**" in text_of(embed) or "**songgen**" in text_of(embed).lower()
    assert response["data"]["allowed_mentions"] == {"parse": []}


async def test_a_search_with_a_typo_suggests_the_library_spelling(world: World) -> None:
    _, response = await world.command("papers", "search", query="reinforcment lerning")
    assert_private_error(response, "no papers match", "did you mean “reinforcement learning”?")


async def test_a_search_with_no_close_words_suggests_nothing(world: World) -> None:
    _, response = await world.command("papers", "search", query="zyzzyva quux")
    assert "did you mean" not in assert_private_error(response, "no papers match").lower()


async def test_search_pages_forward_for_the_owner_only(world: World) -> None:
    handle, response = await world.command("papers", "search", query="language model")
    footer = first_embed(response)["footer"]["text"]
    pages = int(re.search(r"Page 1 of (\d+)", footer).group(1))
    assert pages > 1
    controls = buttons(handle.original)
    assert controls["◀ Previous"]["disabled"] and not controls["Next ▶"].get("disabled", False)

    click = await world.fake.click_button(handle.original, controls["Next ▶"]["custom_id"], world.alice)
    turned = await click.response()
    assert turned["type"] == 7
    assert f"Page 2 of {pages}" in first_embed(turned)["footer"]["text"]
    assert first_embed(turned)["description"] != first_embed(response)["description"]

    stranger = await world.fake.click_button(handle.original, controls["Next ▶"]["custom_id"], world.bob)
    refused = await stranger.response()
    assert refused["type"] == 4 and refused["data"]["flags"] & EPHEMERAL
    assert "run it yourself" in refused["data"]["content"]


async def test_search_filters_by_tag_and_dates(world: World) -> None:
    _, response = await world.command(
        "papers", "search", query="video", tag="computer vision", since="2025-03-01", until="2025-03-31"
    )
    footer = first_embed(response)["footer"]["text"]
    shown_total = int(re.search(r"(\d+) results", footer).group(1))
    march = date(2025, 3, 1), date(2025, 3, 31)
    filtered = await library.search(world.bot.db, "video", tag="Computer Vision", since=march[0], until=march[1],
                                    limit=100)
    unfiltered = await library.search(world.bot.db, "video", limit=1)
    assert shown_total == filtered.total and 0 < filtered.total < unfiltered.total
    for hit in filtered.hits:
        assert "Computer Vision" in hit.paper.tags
        assert any(march[0] <= day <= march[1] for day in hit.paper.days)
    assert filtered.hits[0].paper.title[:40] in first_embed(response)["description"]


async def test_search_with_no_match_says_what_was_searched(world: World) -> None:
    _, response = await world.command("papers", "search", query="zyzzyva quux", since="2024-10-01")
    assert_private_error(response, "no papers match", "zyzzyva quux", "since 2024-10-01")


@pytest.mark.parametrize("query", ['"unclosed phrase', "NEAR(", "title:llm", "(*)", "-", "a AND OR b", "^x"])
async def test_search_syntax_never_crashes(world: World, query: str) -> None:
    _, response = await world.command("papers", "search", query=query)
    text = text_of(first_embed(response))
    assert "something went wrong" not in text.lower(), f"{query!r} caused an unexpected error: {text}"


async def test_search_with_only_punctuation_is_explained(world: World) -> None:
    _, response = await world.command("papers", "search", query="***")
    assert_private_error(response, "no words")


@pytest.mark.parametrize(("command", "options"), [
    ("search", {"query": "model"}),
    ("export", {"query": "model"}),
    ("tag", {"tag": "Robotics"}),
])
async def test_a_lookup_over_its_budget_answers_too_broad_instead_of_stalling(
    world: World, monkeypatch: pytest.MonkeyPatch, command: str, options: dict
) -> None:
    from storage import db

    monkeypatch.setattr(db, "QUERY_BUDGET_SECONDS", 0)  # as if the lookup had used up its database time
    _, response = await world.command("papers", command, **options)
    assert_private_error(response, "too broad", "add a word")


@pytest.mark.parametrize("query", ["a* b* c* d* e* f*", '"' + "a " * 40 + '"'])
async def test_the_stalling_searches_of_issue_12_are_refused_with_the_reason(world: World, query: str) -> None:
    _, response = await world.command("papers", "search", query=query)
    assert_private_error(response, "too short a prefix" if "*" in query else "too many words")


async def test_malformed_date_is_a_clear_error(world: World) -> None:
    _, response = await world.command("papers", "search", query="model", since="last week")
    assert_private_error(response, "since", "2025-02-20")


@pytest.mark.commands(search_rate=1, search_per_seconds=60)
async def test_searching_too_fast_hits_a_cooldown_with_the_time_left(world: World) -> None:
    await world.command("papers", "search", query="model")
    _, response = await world.command("papers", "search", query="model")
    text = assert_private_error(response, "slow down")
    assert re.search(r"<t:\d+:R>", text) and re.search(r"in \d+ s", text)
    _, other_user = await world.command("papers", "search", query="model", user=world.bob)
    assert not other_user["data"].get("flags", 0) & EPHEMERAL, "the cooldown is per user"


@pytest.mark.commands(view_timeout_seconds=0.2)
async def test_buttons_are_disabled_when_the_view_times_out(world: World) -> None:
    handle, _ = await world.command("papers", "search", query="model")
    edit = await handle.edit(timeout=3)
    assert all(button.get("disabled") for row in edit["components"] for button in row["components"])


# ----- /papers tag and autocomplete --------------------------------------------------------


async def test_tag_autocomplete_is_substring_case_insensitive_most_used_first(world: World) -> None:
    choices = await world.autocomplete("papers", "tag", "VISION", subcommand="tag")
    names = [c["value"] for c in choices]
    assert names and all("vision" in n.lower() for n in names)
    assert len(choices) <= 25
    counts = [int(re.search(r"\((\d+)\)$", c["name"]).group(1)) for c in choices]
    assert counts == sorted(counts, reverse=True)


async def test_tag_autocomplete_caps_at_25(world: World) -> None:
    choices = await world.autocomplete("papers", "tag", "", subcommand="tag")
    assert len(choices) == 25


async def test_papers_with_a_tag_newest_first(world: World) -> None:
    _, response = await world.command("papers", "tag", tag="robotics")
    embed = first_embed(response)
    assert embed["title"].endswith("Robotics")
    assert "Robotics" in embed["description"]


async def test_unknown_tag_suggests_the_closest(world: World) -> None:
    _, response = await world.command("papers", "tag", tag="Robotcs")
    assert_private_error(response, "Robotcs", "did you mean", "Robotics")


# ----- /papers day, /paper, /tags ----------------------------------------------------------


async def test_day_defaults_to_the_latest_digest(world: World) -> None:
    latest = await library.latest_day(world.bot.db)
    _, response = await world.command("papers", "day")
    assert latest.isoformat() in first_embed(response)["title"]


async def test_day_without_a_digest_is_explained(world: World) -> None:
    _, response = await world.command("papers", "day", day="2024-09-01")
    assert_private_error(response, "no digest for 2024-09-01")


@pytest.mark.parametrize(
    "given", ["2502.13923", "https://arxiv.org/abs/2502.13923v2", "https://huggingface.co/papers/2502.13923"]
)
async def test_paper_from_an_id_or_a_link(world: World, given: str) -> None:
    _, response = await world.command("paper", id=given)
    embed = first_embed(response)
    assert "Qwen2.5-VL Technical Report" in embed["title"]
    assert embed["url"].startswith("https://arxiv.org/abs/2502.13923")
    assert "2025-02-20" in text_of(embed)


async def test_paper_lists_related_papers_linked_to_arxiv(world: World) -> None:
    _, response = await world.command("paper", id="2502.13923")
    fields = {f["name"]: f["value"] for f in first_embed(response).get("fields", [])}
    lines = fields["Related"].splitlines()
    assert 1 <= len(lines) <= 5
    assert all(line.startswith("• [") and "](https://arxiv.org/abs/" in line for line in lines)
    assert "2502.13923" not in fields["Related"]


async def test_paper_with_a_malformed_id(world: World) -> None:
    _, response = await world.command("paper", id="not-a-paper")
    assert_private_error(response, "not an arxiv id")


async def test_paper_not_in_the_library(world: World) -> None:
    _, response = await world.command("paper", id="1234.56789")
    assert_private_error(response, "1234.56789", "not in the library")


async def test_tags_lists_counts(world: World) -> None:
    _, response = await world.command("tags")
    counts = await library.tag_counts(world.bot.db)
    assert f"{counts[0].name}" in first_embed(response)["description"]
    assert str(counts[0].count) in first_embed(response)["description"]


# ----- safety ----------------------------------------------------------------------------


async def test_a_paper_titled_everyone_pings_no_one(world: World, tmp_path: Path) -> None:
    digest = tmp_path / "2030-01-01.md"
    digest.write_text(
        "## Papers for 2030-01-01\n\n| Title | Authors | Summary | Link |\n|---|---|---|---|\n"
        "| @everyone <@&123> read this | @here | hello <@456> | [Read more](https://arxiv.org/abs/2901.00001) |\n"
    )
    from digests.ingest import ingest_targets

    await ingest_targets(world.bot.db, [str(digest)])
    _, response = await world.command("paper", id="2901.00001")
    assert response["data"]["allowed_mentions"] == {"parse": []}
    assert "@everyone" not in first_embed(response)["title"]
    _, listing = await world.command("papers", "day", day="2030-01-01")
    assert listing["data"]["allowed_mentions"] == {"parse": []}


async def test_unexpected_error_gives_a_reference_that_is_logged(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(library, "tag_counts", broken)
    with caplog.at_level(logging.ERROR):
        _, response = await world.command("tags")
    text = assert_private_error(response, "reference")
    reference = re.search(r"`([0-9A-F]{8})`", text).group(1)
    assert any(reference in record.getMessage() and record.exc_info for record in caplog.records)
    await asyncio.sleep(0)


async def test_did_you_mean_shows_tag_names_as_text_only(world: World, tmp_path: Path) -> None:
    """Tag names come from digests: a hostile one is suggested, but never as a link, formatting or ping."""
    digest = tmp_path / "2030-01-02.md"
    digest.write_text(
        "## Papers for 2030-01-02\n\n| Title | Summary | Link | Tags |\n|---|---|---|---|\n"
        "| Zebras | z | [Read more](https://arxiv.org/abs/2901.00002) "
        "| ['[Zebra crossings](https://evil.example/x) @everyone __u__'] |\n"
    )
    from digests.ingest import ingest_targets

    await ingest_targets(world.bot.db, [str(digest)])
    typo = "[Zebra crossing](https://evil.example/x) @everyone __u__"
    assert await library.closest_tags(world.bot.db, typo), "the hostile tag was stored"
    _, response = await world.command("papers", "tag", tag=typo)
    text = assert_private_error(response, "did you mean", "Zebra crossings")
    assert not re.search(r"(?<![\\\w])https?://", text), text
    assert "\\[Zebra crossings\\]" in text and "@everyone" not in text and "\\_\\_u\\_\\_" in text


# ----- answering in time ---------------------------------------------------------------------

LOOKUP_MODULES = ("storage.papers", "storage.votes", "storage.stats", "digests.exports")


@pytest.mark.parametrize(
    ("name", "subcommand", "options"),
    [
        ("papers", "search", {"query": "robot", "tag": "Robotics"}),
        ("papers", "tag", {"tag": "Robotics"}),
        ("papers", "day", {}),
        ("papers", "top", {}),
        ("papers", "export", {"tag": "Robotics"}),
        ("stats", "tags", {"tags": "Robotics"}),
        ("stats", "day", {}),
        ("paper", None, {"id": "2502.13923"}),
    ],
)
async def test_commands_that_may_take_long_acknowledge_before_their_first_lookup(
    world: World, monkeypatch: pytest.MonkeyPatch, name: str, subcommand: str | None, options: dict
) -> None:
    """A lookup can wait behind other members' queries; Discord drops an interaction not answered
    within 3 s. So every such command defers ("thinking…", type 5) before it touches the library."""
    import importlib
    import inspect

    seen: list[tuple[str, bool]] = []

    def recorded(label: str, lookup):
        async def wrapper(*args: Any, **kwargs: Any):
            # Only the command's own lookups: the bot's jobs (catch-up, DMs) may read meanwhile.
            task = asyncio.current_task()
            if task is not None and task.get_name() == "CommandTree-invoker":
                current = [i for i in world.fake.interactions.values() if i.type == 2][-1]
                seen.append((label, current.callback is not None))
            return await lookup(*args, **kwargs)
        return wrapper

    for module_name in LOOKUP_MODULES:
        module = importlib.import_module(module_name)
        for attr, value in list(vars(module).items()):
            if not attr.startswith("_") and inspect.iscoroutinefunction(value):
                monkeypatch.setattr(module, attr, recorded(f"{module_name}.{attr}", value))
    handle, _ = await world.command(name, subcommand, **options)
    assert (await handle.response())["type"] == 5
    assert seen, "the command looked nothing up"
    assert [label for label, acknowledged in seen if not acknowledged] == []


async def test_an_error_after_acknowledging_is_still_private_and_thinking_is_gone(world: World) -> None:
    handle, response = await world.command("paper", id="1234.56789")
    assert (await handle.response())["type"] == 5  # public "thinking…"
    assert_private_error(response, "not in the library")
    assert not [m for m in world.fake.messages_in(world.channel) if m["author"]["id"] == str(world.bot.user.id)]


@pytest.mark.commands(stats_rate=1, stats_per_seconds=60)
async def test_stats_have_a_cooldown(world: World) -> None:
    await world.command("stats", "day")
    _, response = await world.command("stats", "day")
    assert_private_error(response, "slow down")


async def test_many_long_hostile_tags_stay_within_discords_limits(world: World) -> None:
    """Hundreds of 100-character tags on a day: /tags, /stats day and /paper all fit (the fake rejects
    anything over a limit) and show the tags as text."""
    import datetime as dt

    from storage.ingest import ingest_digest
    from storage.models import Digest
    from tests.factories import paper

    day = dt.date(2031, 1, 6)
    tags = [f"[t{n:03d}](https://evil.example/{n}) **@everyone** " + "x" * 60 for n in range(300)]
    items = [paper(90000 + n, tags=tags[n * 30:(n + 1) * 30], summary="y " * 2000) for n in range(10)]
    await ingest_digest(world.bot.db, Digest(date=day, papers=items), source="s", origin="o.md", sha256="h")

    _, listing = await world.command("tags")
    footer = listing["data"]["embeds"][0]["footer"]["text"]
    assert footer.startswith("Page 1 of ") and "Page 1 of 1 " not in footer
    _, summary = await world.command("stats", "day", day=day.isoformat())
    _, shown = await world.command("paper", id="2502.90000")
    for response in (listing, summary, shown):
        text = " ".join(text_of(e) for e in response["data"]["embeds"])
        assert not re.search(r"(?<![\\\w])https?://evil", text) and "@everyone" not in text
