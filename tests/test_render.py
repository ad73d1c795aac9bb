"""Tests for bot/render.py: Discord limits are never exceeded, mentions never ping, payloads replay."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import discord
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import (
    BRAND_COLOUR,
    ELLIPSIS,
    MAX_MESSAGE_EMBED_CHARS,
    NO_MENTIONS,
    MessagePayload,
    VoteButton,
    digest_header,
    digest_messages,
    embed_size,
    escape_text,
    paper_embed,
    payload_from_dict,
    related_embed,
    payload_to_dict,
    roundup_message,
    search_results_embed,
    subscription_digest_messages,
    tag_list_embeds,
    top_papers_embed,
    truncate,
)
from tests.limits import check_message_limits
from storage.models import ARXIV_ID, SearchHit, SearchPage, StoredPaper, TagCount, arxiv_id_from
from storage.votes import RankedPaper

CORPUS = Path(__file__).parent / "data" / "corpus"
JSON_DAYS = sorted((CORPUS / "timlrx" / "daily_results").glob("**/*.json"))
ROLE = 123456789012345678

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def paper_from_json(entry: dict, day: dt.date, source: str = "timlrx") -> StoredPaper:
    """A producer's JSON entry (title, authors "a, b", link, summary, classification, links)."""
    link = entry.get("link") or ""
    return StoredPaper(
        arxiv_id=arxiv_id_from(link) or link,
        title=entry.get("title") or "",
        url=link,
        authors=[a.strip() for a in (entry.get("authors") or "").split(",") if a.strip()],
        summary=entry.get("summary") or "",
        tags=list(entry.get("classification") or []),
        github_urls=list(entry.get("github_urls") or []),
        huggingface_urls=list(entry.get("huggingface_urls") or []),
        days=[day],
        sources=[source],
    )


def load_json_day(path: Path) -> tuple[dt.date, list[StoredPaper]]:
    year, month, day = path.parts[-3], path.parts[-2], path.stem
    date = dt.date(int(year), int(month), int(day))
    return date, [paper_from_json(entry, date) for entry in json.loads(path.read_text("utf-8"))]


def merged_library(days: list[tuple[dt.date, list[StoredPaper]]]) -> list[StoredPaper]:
    """Papers merged over the days they appeared on, as the library holds them."""
    by_id: dict[str, StoredPaper] = {}
    seen_days: dict[str, set[dt.date]] = defaultdict(set)
    for date, papers in days:
        for paper in papers:
            by_id.setdefault(paper.arxiv_id, paper)
            seen_days[paper.arxiv_id].add(date)
    return [p.model_copy(update={"days": sorted(seen_days[i])}) for i, p in by_id.items()]


def as_payload(embed: discord.Embed) -> MessagePayload:
    return MessagePayload(content=None, embeds=[embed], allowed_mentions=NO_MENTIONS)


def assert_within_limits(payloads: list[MessagePayload]) -> None:
    for index, payload in enumerate(payloads):
        problems = check_message_limits(payload)
        assert problems == [], f"payload {index}: {problems}"


def assert_round_trips(payload: MessagePayload) -> None:
    stored = json.loads(json.dumps(payload_to_dict(payload)))
    replayed = payload_from_dict(stored)
    assert replayed == payload
    assert payload_to_dict(replayed) == payload_to_dict(payload)
    assert replayed.allowed_mentions.to_dict() == payload.allowed_mentions.to_dict()


def compact_entries(payloads: list[MessagePayload]) -> list[list[str]]:
    """The entries of each compact message (entries are separated by a blank line)."""
    return [
        [entry for embed in p.embeds for entry in (embed.description or "").split("\n\n")]
        for p in payloads
    ]


def entry_numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^\*\*(\d+)\. ", text, re.MULTILINE)]


def unescaped_link_closers(text: str) -> int:
    """How many `](` in `text` are real markdown (their `]` not backslash-escaped)."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\]\(", text))


def search_page_for(papers: list[StoredPaper], total: int | None = None) -> SearchPage:
    hits = []
    for paper in papers:
        words = paper.summary.split()[:30]
        if len(words) > 3:
            words[2] = f"**{words[2]}**"
        hits.append(SearchHit(paper=paper, snippet=" ".join(words)))
    return SearchPage(hits=hits, total=len(hits) if total is None else total)


# --------------------------------------------------------------------------------------------
# truncate
# --------------------------------------------------------------------------------------------


def test_truncate_leaves_text_that_fits():
    assert truncate("hello world", 11) == "hello world"  # exactly the limit
    assert truncate("hello world", 50) == "hello world"
    assert truncate("", 5) == ""


def test_truncate_cuts_at_a_word_boundary_with_an_ellipsis():
    assert truncate("hello world foo", 12) == "hello world…"
    assert truncate("hello world foo", 13) == "hello world…"
    assert truncate("hello world foo", 14) == "hello world…"
    assert truncate("hello world foo", 11) == "hello…"
    assert len(truncate("hello world foo", 12)) == 12


def test_truncate_drops_dangling_punctuation_at_the_cut():
    assert truncate("alpha, beta", 9) == "alpha…"
    assert truncate("alpha - beta gamma", 10) == "alpha…"


def test_truncate_hard_cuts_a_single_over_long_word():
    assert truncate("x" * 50, 10) == "x" * 9 + ELLIPSIS
    assert truncate("supercalifragilistic", 10) == "supercali…"
    # A word boundary that would waste most of the room is not used either.
    assert truncate("a " + "b" * 50, 10) == "a bbbbbbb…"


def test_truncate_tiny_limits():
    assert truncate("hello", 0) == ""
    assert truncate("hello", -3) == ""
    assert truncate("hello", 1) == ELLIPSIS
    assert truncate("hello", 2) == "h…"
    assert truncate("h", 1) == "h"


def test_truncate_unicode():
    # Counted in code points; CJK has no spaces and is hard-cut.
    cjk = "中文字符" * 100
    assert truncate(cjk, 10) == cjk[:9] + ELLIPSIS
    assert truncate("Aimée Kaffee", 12) == "Aimée Kaffee"
    # Never separates a base letter from its combining accent.
    decomposed = "e\u0301" * 20
    cut = truncate(decomposed, 6)
    assert cut == "e\u0301e\u0301" + ELLIPSIS
    # Nor an emoji from its skin tone, nor a ZWJ sequence in the middle.
    assert truncate("👍🏽" * 10, 4) == "👍🏽" + ELLIPSIS
    family = "👨\u200d👩\u200d👧"
    cut = truncate(family * 5, 5)
    assert not cut[:-1].endswith("\u200d")
    assert len(cut) <= 5 and cut.endswith(ELLIPSIS)
    assert truncate(family * 5, 7) == family + ELLIPSIS


@given(st.text(), st.integers(min_value=-2, max_value=300))
def test_truncate_properties(text, limit):
    out = truncate(text, limit)
    assert len(out) <= max(0, limit)
    if len(text) <= limit:
        assert out == text
    elif limit >= 1:
        assert out.endswith(ELLIPSIS)
        assert text.startswith(out[:-1])


def test_truncate_never_separates_combining_marks_when_hard_cutting():
    text = "a" + "\u0301\u0302" * 3 + "b" * 40  # one 7-code-point grapheme, then a long word
    for limit in range(8, 20):
        kept = truncate(text, limit)[:-1]
        assert text.startswith(kept) and not unicodedata.combining(text[len(kept)])
    # A grapheme longer than all the room there is can only be cut (or dropped).
    assert len(truncate(text, 4)) == 4


# --------------------------------------------------------------------------------------------
# check_message_limits must catch what it claims to catch
# --------------------------------------------------------------------------------------------


def _embed(**kwargs) -> discord.Embed:
    return discord.Embed(colour=BRAND_COLOUR, **kwargs)


def _with_fields(n: int, name: str = "n", value: str = "v") -> discord.Embed:
    embed = _embed(title="t")
    for _ in range(n):
        embed.add_field(name=name, value=value)
    return embed


def test_limits_are_discords():
    # check_message_limits shares the renderer's constants; pin them to Discord's numbers.
    import bot.render as render

    assert (render.MAX_TITLE, render.MAX_DESCRIPTION, render.MAX_FIELD_NAME) == (256, 4096, 256)
    assert (render.MAX_FIELD_VALUE, render.MAX_FOOTER, render.MAX_AUTHOR) == (1024, 2048, 256)
    assert (render.MAX_FIELDS, render.MAX_EMBEDS, render.MAX_MESSAGE_EMBED_CHARS) == (25, 10, 6000)
    assert (render.MAX_CONTENT, render.MAX_ACTION_ROWS) == (2000, 5)


VIOLATIONS = {
    "content": MessagePayload("x" * 2001, []),
    "embeds": MessagePayload(None, [_embed(title="t") for _ in range(11)]),
    "title": MessagePayload(None, [_embed(title="x" * 257)]),
    "description": MessagePayload(None, [_embed(description="x" * 4097)]),
    "fields": MessagePayload(None, [_with_fields(26)]),
    "field name": MessagePayload(None, [_with_fields(1, name="x" * 257)]),
    "field value": MessagePayload(None, [_with_fields(1, value="x" * 1025)]),
    "empty field": MessagePayload(None, [_with_fields(1, value=" ")]),
    "footer": MessagePayload(None, [_embed(title="t").set_footer(text="x" * 2049)]),
    "author": MessagePayload(None, [_embed(title="t").set_author(name="x" * 257)]),
    "total": MessagePayload(None, [_embed(description="x" * 4000), _embed(description="x" * 2001)]),
    "empty message": MessagePayload(None, []),
    "empty embed": MessagePayload(None, [_embed()]),
    "bad url": MessagePayload(None, [_embed(title="t", url="javascript:alert(1)")]),
    "allowed_mentions missing": MessagePayload("hi", [], allowed_mentions=None),  # type: ignore[arg-type]
    "allowed_mentions everyone": MessagePayload("hi", [], discord.AllowedMentions.all()),
    "raw everyone": MessagePayload(None, [_embed(description="hi @everyone")]),
    "raw here in content": MessagePayload("@here", []),
    "raw user mention": MessagePayload(None, [_embed(title="<@123456789012345678>")]),
    "role not allowed": MessagePayload(f"<@&{ROLE}>", []),
    "too many buttons": MessagePayload("x", [], votes=tuple(VoteButton("2502.13923", n) for n in range(1, 27))),
    "shared custom_id": MessagePayload("x", [], votes=(VoteButton("2502.13923", 1), VoteButton("2502.13923", 1))),
    "custom_id too long": MessagePayload("x", [], votes=(VoteButton("1" * 100, 1),)),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_check_message_limits_catches_each_violation(case):
    assert check_message_limits(VIOLATIONS[case]) != []


def test_check_message_limits_accepts_a_payload_exactly_at_the_limits():
    big = _embed(title="x" * 256, description="x" * 4096)
    big.set_footer(text="x" * (6000 - 256 - 4096 - 1024 - 256 - 10))
    big.add_field(name="n" * 256, value="v" * 1024)
    big.set_author(name="a" * 10)
    payload = MessagePayload("c" * 2000, [big])
    assert embed_size(big) == 6000 == len(big)
    assert check_message_limits(payload) == []
    roles = MessagePayload(
        f"<@&{ROLE}>",
        [],
        discord.AllowedMentions(
            everyone=False, users=False, roles=[discord.Object(id=ROLE)], replied_user=False
        ),
    )
    assert check_message_limits(roles) == []
    # discord.AllowedMentions' own defaults allow everything: that must be caught.
    lax = MessagePayload(f"<@&{ROLE}>", [], discord.AllowedMentions(roles=[discord.Object(id=ROLE)]))
    assert check_message_limits(lax) != []
    assert check_message_limits(MessagePayload("@\u200beveryone", [])) == []


# --------------------------------------------------------------------------------------------
# The real corpus
# --------------------------------------------------------------------------------------------


def test_the_corpus_is_there():
    # The corpus tests below pass vacuously on an empty glob; make sure they cannot.
    assert len(JSON_DAYS) > 100
    assert sum(len(load_json_day(p)[1]) for p in JSON_DAYS) > 1000


@pytest.fixture(scope="module")
def json_days() -> list[tuple[dt.date, list[StoredPaper]]]:
    return [load_json_day(path) for path in JSON_DAYS]


@pytest.mark.parametrize("path", JSON_DAYS, ids=lambda p: "-".join(p.parts[-3:]))
def test_corpus_day_renders_within_limits(path):
    day, papers = load_json_day(path)

    compact = digest_messages(day, papers, style="compact")
    assert_within_limits(compact)
    assert compact[0].content.startswith(digest_header(day, len(papers)))  # some days are empty
    numbers = [n for p in compact for e in p.embeds for n in entry_numbers(e.description or "")]
    assert numbers == list(range(1, len(papers) + 1)), "every paper once, in order"
    # As few messages as possible: the first entry of each message fitted nowhere in the one before.
    entries = compact_entries(compact)
    for message, following in zip(compact, entries[1:]):
        size = sum(embed_size(e) for e in message.embeds)
        assert size + len(following[0]) > MAX_MESSAGE_EMBED_CHARS or len(message.embeds) == 10

    thread = digest_messages(day, papers, style="thread", late=True)
    assert_within_limits(thread)
    assert len(thread) == len(papers) + 1
    assert thread[0].content.endswith(" · posted late")

    for paper in papers:
        embed = paper_embed(paper)
        assert_within_limits([as_payload(embed)])
        assert embed.url and embed.url.startswith("https://")

    for start in range(0, len(papers), 5):
        page = search_page_for(papers[start : start + 5], total=len(papers))
        embed = search_results_embed(
            page,
            title="Results for “model”",
            page_number=start // 5 + 1,
            page_count=(len(papers) + 4) // 5,
            first_number=start + 1,
        )
        assert_within_limits([as_payload(embed)])
        assert entry_numbers(embed.description) == list(range(start + 1, start + 1 + len(page.hits)))

    for payload in compact + thread[:3]:
        assert_round_trips(payload)


def test_corpus_library_and_tags(json_days):
    library = merged_library(json_days)
    assert any(len(p.days) > 1 for p in library)
    for paper in library:
        assert_within_limits([as_payload(paper_embed(paper))])
    counts: dict[str, int] = defaultdict(int)
    for paper in library:
        for tag in paper.tags:
            counts[tag] += 1
    tags = [TagCount(name=n, count=c) for n, c in sorted(counts.items())]
    pages = tag_list_embeds(tags, per_page=40)
    assert sum(len(e.description.splitlines()) for e in pages) == len(tags)
    assert_within_limits([as_payload(e) for e in pages])


def test_corpus_whole_month_in_one_compact_digest(json_days):
    # Far more than one message: exercises packing into several messages of two embeds each.
    papers = [p for day, ps in json_days if (day.year, day.month) == (2024, 11) for p in ps]
    payloads = digest_messages(dt.date(2024, 11, 30), papers, style="compact", max_papers=len(papers))
    assert len(payloads) > 3
    assert_within_limits(payloads)
    numbers = [n for p in payloads for e in p.embeds for n in entry_numbers(e.description)]
    assert numbers == list(range(1, len(papers) + 1))


def _parse_module():
    from digests import parse

    return parse


MARKDOWN_DIGESTS = sorted(
    p for p in CORPUS.glob("**/*.md") if p.name not in ("README.md",) and p.parent != CORPUS
)


def test_markdown_corpus_renders_within_limits():
    """Every markdown digest, through the real parser (`parse_file(path) -> Digest`)."""
    parse = _parse_module()
    assert len(MARKDOWN_DIGESTS) > 200
    rendered = 0
    for path in MARKDOWN_DIGESTS:
        digest = parse.parse_file(path)
        producer = path.relative_to(CORPUS).parts[0]
        day = digest.date or dt.date(2000, 1, 1)
        papers = [
            StoredPaper(**paper.model_dump(), days=[day], sources=[producer])
            for paper in digest.papers
        ]
        for style in ("compact", "thread"):
            assert_within_limits(digest_messages(day, papers, style=style))
        for paper in papers:
            assert_within_limits([as_payload(paper_embed(paper))])
        if papers:
            page = search_page_for(papers[:5], total=len(papers))
            embed = search_results_embed(page, title="q", page_number=1, page_count=1)
            assert_within_limits([as_payload(embed)])
        rendered += len(papers)
    assert rendered > 1000


# --------------------------------------------------------------------------------------------
# Hostile papers
# --------------------------------------------------------------------------------------------

NASTY = [
    "@everyone", "@here", f"<@{ROLE}>", f"<@!{ROLE}>", f"<@&{ROLE}>", "@", "**", "*", "_", "__",
    "~~", "||", "`", "```", "\\", "[", "]", "(", ")", "](", "[x](https://evil.example/@everyone)",
    "# ", "> ", ">>> ", "- ", "-# ", "\n", "\n\n", " ", "  ", "\t", "…", "é", "e\u0301", "👍🏽",
    "👨\u200d👩\u200d👧", "中文", "\u200b", "https://example.com/a_b*c", "<", ">", "word",
]
piece = st.one_of(st.sampled_from(NASTY), st.text(max_size=12))
odd_text = st.lists(piece, max_size=25).map("".join)
huge_text = st.builds(lambda t, n: ((t or "x ") * n)[:12_000], odd_text, st.integers(1, 2000))
long_word = st.integers(1, 6000).map(lambda n: "W" * n)
text_field = st.one_of(st.just(""), odd_text, huge_text, long_word)

url = st.one_of(
    st.just("https://github.com/owner/repo"),
    st.just("https://huggingface.co/datasets/owner/name"),
    st.just("https://github.com/o/r (with) [brackets] @everyone/<x>\\"),
    st.just("javascript:alert(1)"),
    st.just("not a url"),
    st.just("https://"),
    st.just("http://[::1"),
    st.just("https://ex@everyone.com/x"),
    st.just("https://例え.jp/パス"),
    st.integers(1, 3000).map(lambda n: "https://github.com/" + "a" * n),
    odd_text,
)
many_links = st.builds(
    lambda base, n: [f"{base}/{i}" for i in range(n)],
    st.sampled_from(["https://github.com/owner", "https://huggingface.co/spaces/x"]),
    st.integers(0, 500),
)
link_list = st.one_of(st.lists(url, max_size=5), many_links)
name_list = st.one_of(
    st.lists(text_field, max_size=6),
    st.integers(0, 3000).map(lambda n: [f"Author Number {i}" for i in range(n)]),
)
day_list = st.one_of(
    st.lists(st.dates(), max_size=5).map(sorted),
    st.integers(0, 400).map(lambda n: [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
)
papers = st.builds(
    StoredPaper,
    arxiv_id=st.one_of(st.sampled_from(["2502.13923", "hep-th/9901001", ""]), text_field),
    title=text_field,
    url=st.one_of(st.just("https://arxiv.org/abs/2502.13923"), url),
    authors=name_list,
    summary=st.one_of(text_field, st.integers(0, 10_000).map(lambda n: ("word " * n)[:10_000])),
    tags=name_list,
    github_urls=link_list,
    huggingface_urls=link_list,
    days=day_list,
    sources=st.lists(text_field, max_size=4),
)

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@HYPOTHESIS
@given(papers)
def test_hostile_paper_embed_within_limits(paper):
    embed = paper_embed(paper, position=(3, 12))
    payload = as_payload(embed)
    assert_within_limits([payload])
    assert embed.title  # never an empty embed title
    assert_round_trips(payload)


@HYPOTHESIS
@given(st.lists(papers, max_size=8), st.dates(), st.booleans())
def test_hostile_digests_within_limits(day_papers, day, late):
    for style in ("compact", "thread"):
        payloads = digest_messages(day, day_papers, style=style, late=late)
        assert_within_limits(payloads)
        for payload in payloads:
            assert_round_trips(payload)
    compact = digest_messages(day, day_papers, style="compact")
    numbers = [n for p in compact for e in p.embeds for n in entry_numbers(e.description)]
    assert numbers == list(range(1, len(day_papers) + 1))
    for payload in compact:  # vote buttons follow the entries; every real arXiv id has its own
        shown = [n for e in payload.embeds for n in entry_numbers(e.description)]
        numbers = [b.number for b in payload.votes]
        assert set(numbers) <= set(shown) and numbers == sorted(numbers)
        assert all(b.arxiv_id == day_papers[b.number - 1].arxiv_id for b in payload.votes)
        real = [n for n in shown if ARXIV_ID.fullmatch(day_papers[n - 1].arxiv_id)]
        assert set(real) <= set(numbers)
    for payload in digest_messages(day, day_papers, style="thread")[1:]:
        assert [b.number for b in payload.votes] in ([0], [])
    for entries in compact_entries(compact):
        for entry in entries:
            heading = entry.split("\n", 1)[0]
            assert unescaped_link_closers(heading) <= 1, heading


@HYPOTHESIS
@given(
    st.lists(st.tuples(papers, st.integers(0, 10**6)), max_size=12),
    st.lists(st.tuples(text_field, st.integers(1, 999)), max_size=15),
    st.dates(),
)
def test_hostile_rankings_and_roundups_within_limits(ranked, tags, day):
    ranked_papers = [RankedPaper(paper=p, votes=v) for p, v in ranked]
    embed = top_papers_embed(ranked_papers, 10**6, title="🏆 Top papers", page_number=1, page_count=9, first_number=6)
    assert_within_limits([as_payload(embed)])
    assert entry_numbers(embed.description or "") == list(range(6, 6 + len(entry_numbers(embed.description or ""))))
    payload = roundup_message(day, day, ranked_papers, len(ranked_papers), [TagCount(name=n, count=c) for n, c in tags])
    assert_within_limits([payload])
    assert_round_trips(payload)
    shown = entry_numbers(payload.embeds[0].description or "") if payload.embeds else []
    assert all(b.number in shown and b.count == ranked[b.number - 1][1] for b in payload.votes)


def test_a_day_of_many_short_papers_keeps_to_25_vote_buttons_a_message():
    day = dt.date(2025, 2, 20)
    many = [StoredPaper(arxiv_id=f"2502.{n:05d}", title=f"P{n}", url="https://arxiv.org/abs/2502.13923")
            for n in range(60)]
    payloads = digest_messages(day, many, style="compact")
    assert_within_limits(payloads)
    assert [len(p.votes) for p in payloads] == [25, 25, 10]
    assert [b.number for p in payloads for b in p.votes] == list(range(1, 61))
    assert [row["components"][0]["label"] for row in payloads[1].components()][:2] == ["#26 ▲ 0", "#31 ▲ 0"]


@HYPOTHESIS
@given(st.lists(st.tuples(papers, odd_text), max_size=6), odd_text, text_field, st.integers(0, 10**6))
def test_hostile_search_results_within_limits(hits, title, prefix, total):
    page = SearchPage(hits=[SearchHit(paper=p, snippet=s) for p, s in hits], total=total)
    embed = search_results_embed(
        page, title=title, page_number=2, page_count=9, description_prefix=prefix, first_number=6
    )
    assert_within_limits([as_payload(embed)])
    numbers = entry_numbers(embed.description or "")
    assert numbers == list(range(6, 6 + len(numbers)))
    assert numbers or not hits or prefix.strip(), "the first hit always fits"


@HYPOTHESIS
@given(st.lists(st.builds(TagCount, name=text_field, count=st.integers(0, 10**9))), st.integers(-1, 200))
def test_hostile_tag_lists_within_limits(tags, per_page):
    pages = tag_list_embeds(tags, per_page=per_page)
    assert_within_limits([as_payload(e) for e in pages])
    lines = sum(len(e.description.split("\n")) for e in pages) if tags else 0
    assert lines == len(tags)
    assert all(len(e.description.split("\n")) <= max(1, per_page) for e in pages)


# --------------------------------------------------------------------------------------------
# Mentions and markdown
# --------------------------------------------------------------------------------------------

PINGY = StoredPaper(
    arxiv_id="2502.13923",
    title=f"@everyone free GPUs <@&{ROLE}> **now**",
    url="https://arxiv.org/abs/2502.13923",
    authors=["@here", f"<@{ROLE}>"],
    summary="Ping @everyone and @here - please",
    tags=["@everyone"],
    github_urls=["https://github.com/@everyone/repo"],
    days=[dt.date(2025, 2, 20)],
    sources=["@here"],
)


def _all_payloads_for(paper: StoredPaper) -> list[MessagePayload]:
    day = dt.date(2025, 2, 20)
    return [
        as_payload(paper_embed(paper)),
        as_payload(
            search_results_embed(
                SearchPage(hits=[SearchHit(paper=paper, snippet="**@everyone** wins")], total=1),
                title="@everyone",
                page_number=1,
                page_count=1,
            )
        ),
        *digest_messages(day, [paper], style="compact"),
        *digest_messages(day, [paper], style="thread"),
        as_payload(paper_embed(paper, related=[paper] * 5)),
        as_payload(related_embed(paper, [paper] * 5)),
    ]


def test_related_papers_fit_whatever_their_titles_and_never_format_or_link_out():
    """Five related papers with the longest, most hostile titles: whole lines or "+N more", within limits."""
    hostile = PINGY.model_copy(update={"title": "[click](https://evil.example) **" + "x" * 600 + "** `code`",
                                       "summary": "s " * 3000})
    listed = {f["name"]: f["value"] for f in paper_embed(hostile, related=[hostile] * 5).to_dict()["fields"]}["Related"]
    private = related_embed(hostile, [hostile] * 5).description
    for payload in (as_payload(paper_embed(hostile, related=[hostile] * 5)), as_payload(related_embed(hostile, [hostile] * 5))):
        assert check_message_limits(payload) == []
        assert "@everyone" not in json.dumps(payload_to_dict(payload), ensure_ascii=False)
    for text in (listed, private):
        lines = [line for line in text.splitlines() if not line.startswith("+")]
        assert lines and all(line.startswith("• [") for line in lines)
        assert unescaped_link_closers(text) == len(lines)  # only the arXiv link of each line is live
        assert text.count("](https://arxiv.org/abs/2502.13923)") == len(lines)


def test_everyone_in_a_title_never_pings():
    embed = paper_embed(PINGY)
    assert embed.title.startswith("@\u200beveryone")
    assert "\\*\\*now\\*\\*" in embed.title  # markdown escaped
    for payload in _all_payloads_for(PINGY):
        assert payload.allowed_mentions is NO_MENTIONS
        assert payload.as_kwargs()["allowed_mentions"].to_dict() == {"parse": []}
        assert check_message_limits(payload) == []
        text = json.dumps(payload_to_dict(payload), ensure_ascii=False)
        assert "@everyone" not in text and "@here" not in text
        assert f"<@{ROLE}>" not in text and f"<@&{ROLE}>" not in text


def test_digest_can_ping_chosen_roles_and_only_them():
    payloads = digest_messages(
        dt.date(2025, 2, 20), [PINGY], style="compact", mention_role_ids=[ROLE, ROLE, 42]
    )
    first = payloads[0]
    assert first.content == f"{digest_header(dt.date(2025, 2, 20), 1)}\n<@&{ROLE}> <@&42>"
    assert first.allowed_mentions.to_dict() == {"roles": [ROLE, 42], "parse": []}
    assert check_message_limits(first) == []
    assert all(p.allowed_mentions is NO_MENTIONS for p in payloads[1:])
    # The paper's own role mention is neutralised even though that role may be pinged.
    assert f"<@&{ROLE}>" not in (first.embeds[0].description or "")
    assert_round_trips(first)
    # Thousands of roles: the content still fits and lists exactly the roles it may ping.
    many = digest_messages(
        dt.date(2025, 2, 20), [], style="thread", mention_role_ids=range(10**17, 10**17 + 500)
    )[0]
    assert check_message_limits(many) == []
    assert len(many.allowed_mentions.to_dict()["roles"]) == many.content.count("<@&")


def test_titles_cannot_break_the_link_they_are_shown_in():
    paper = PINGY.model_copy(update={"title": "Evil](https://evil.example) [x"})
    entry = digest_messages(dt.date(2025, 2, 20), [paper], style="compact")[0].embeds[0].description
    heading = entry.split("\n", 1)[0]
    assert unescaped_link_closers(heading) == 1
    assert heading.endswith("(https://arxiv.org/abs/2502.13923)**")


def test_compact_entry_shows_the_first_point_of_a_flattened_summary():
    paper = PINGY.model_copy(
        update={"title": "T", "summary": "- First point, 4-15x faster. - Second point. - Third."}
    )
    entry = digest_messages(dt.date(2025, 2, 20), [paper], style="compact")[0].embeds[0].description
    assert entry.split("\n")[2] == "First point, 4-15x faster."


def test_escape_text():
    assert escape_text("a_b *c* @everyone") == "a\\_b \\*c\\* @\u200beveryone"


def test_bad_urls_are_dropped_or_replaced():
    paper = PINGY.model_copy(
        update={
            "url": "javascript:alert(1)",
            "github_urls": ["not a url", "https://github.com/a/b (c)", "https://github.com/a/b (c)"],
            "huggingface_urls": ["https://huggingface.co/" + "x" * 5000],
        }
    )
    embed = paper_embed(paper)
    assert embed.url == "https://arxiv.org/abs/2502.13923"
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Code"] == "[a/b (c)](https://github.com/a/b%20%28c%29)"  # once, encoded
    assert "Hugging Face" not in fields
    assert paper_embed(paper.model_copy(update={"arxiv_id": "nope"})).url is None


def test_many_links_are_cut_with_a_count():
    paper = PINGY.model_copy(
        update={"github_urls": [f"https://github.com/owner/repo{i}" for i in range(500)]}
    )
    code = {f.name: f.value for f in paper_embed(paper).fields}["Code"]
    assert len(code) <= 1024
    shown = code.count("](")
    assert code.endswith(f"+{500 - shown} more") and 10 < shown < 500


# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------


def test_payload_round_trip_and_determinism(json_days):
    day, day_papers = json_days[0]
    first = digest_messages(day, day_papers, style="compact", mention_role_ids=[ROLE])
    again = digest_messages(day, day_papers, style="compact", mention_role_ids=[ROLE])
    assert [payload_to_dict(p) for p in first] == [payload_to_dict(p) for p in again]
    for payload in first + digest_messages(day, day_papers, style="thread"):
        assert_round_trips(payload)
    replayed = payload_from_dict(json.loads(json.dumps(payload_to_dict(first[0]))))
    kwargs = replayed.as_kwargs()
    assert set(kwargs) == {"content", "embeds", "allowed_mentions", "view"}
    assert kwargs["embeds"][0].colour == BRAND_COLOUR
    shown = len(compact_entries(first)[0])
    labels = [button.label for button in kwargs["view"].children]
    assert labels == [f"#{n} ▲ 0" for n in range(1, shown + 1)]
    assert set(digest_messages(day, [], style="compact")[0].as_kwargs()) == {"content", "embeds", "allowed_mentions"}
    assert replayed != digest_messages(day, day_papers, style="compact")[0]  # roles differ


def test_empty_inputs():
    day = dt.date(2025, 2, 20)
    (compact,) = digest_messages(day, [], style="compact")
    assert compact.content.startswith("📄 Papers for 2025-02-20 (0 papers)")
    assert check_message_limits(compact) == []
    assert digest_messages(day, [], style="thread")[0].content == "📄 Papers for 2025-02-20 (0 papers)"
    embed = search_results_embed(SearchPage(hits=[], total=0), title="x", page_number=1, page_count=1)
    assert embed.description == "No results." and embed.footer.text == "Page 1 of 1 · 0 results"
    (tags,) = tag_list_embeds([])
    assert tags.description == "No tags yet."
    with pytest.raises(ValueError):
        digest_messages(day, [], style="fancy")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Text from digests never becomes a link or formatting (issue 12)
# --------------------------------------------------------------------------------------------

EVIL = "evil.example"
MASKED = StoredPaper(
    arxiv_id="2502.13923",
    title="A [Free GPUs](https://evil.example/t) title",
    url="https://arxiv.org/abs/2502.13923",
    authors=["[Author](https://evil.example/a)"],
    summary="- [Official download](https://evil.example/setup.exe) now.\n- Or https://evil.example/bare and "
            "<https://evil.example/angle>, **bold**, 1. listed",
    tags=["[tag](https://evil.example/tag)"],
    days=[dt.date(2025, 2, 20)],
    sources=["https://evil.example/source"],
)


def live_link_hosts(text: str) -> list[str]:
    """Hosts Discord would turn into a link: a scheme's `://` not broken by an escape."""
    return re.findall(r"(?<![\\\w])https?://([^/\s)>\]]+)", text)


def _texts(payload: MessagePayload) -> list[str]:
    texts = [payload.content or ""]
    for embed in payload.embeds:
        data = embed.to_dict()
        texts += [data.get("title") or "", data.get("description") or ""]
        texts += [f"{f['name']} {f['value']}" for f in data.get("fields", [])]
    return texts


def test_a_masked_link_in_a_summary_is_never_posted_live():
    day = dt.date(2025, 2, 20)
    payloads = [
        as_payload(paper_embed(MASKED)),  # /paper and each message of thread/forum digests
        *digest_messages(day, [MASKED], style="thread"),
        *digest_messages(day, [MASKED], style="compact"),
        *subscription_digest_messages(day, [(MASKED, ["[kw](https://evil.example/kw)"])]),
        as_payload(search_results_embed(SearchPage(hits=[SearchHit(paper=MASKED, snippet="")], total=1),
                                        title="[q](https://evil.example/q)", page_number=1, page_count=1)),
    ]
    for payload in payloads:
        assert check_message_limits(payload) == []
        for text in _texts(payload):
            hosts = live_link_hosts(text)
            assert EVIL not in " ".join(hosts), text
            assert all(h in ("arxiv.org", "github.com", "huggingface.co") for h in hosts), hosts
    # The summary still reads as written, as text.
    description = paper_embed(MASKED).description
    assert "Official download" in description and "evil.example/setup.exe" in description
    assert "\\*\\*bold\\*\\*" in description and description.startswith("\\- ")


def test_escape_text_defuses_every_kind_of_link_and_list():
    assert escape_text("[x](https://e.xx/a_b)") == "\\[x\\](https\\://e.xx/a\\_b)"
    assert escape_text("<https://e.xx>") == "<https\\://e.xx>"
    assert escape_text("- a\n1. b") == "\\- a\n1\\. b"
    assert live_link_hosts(escape_text("see http://e.xx and HTTPS://f.xx")) == []


# --------------------------------------------------------------------------------------------
# No cap on a digest (issue 12): a huge day is posted capped, ending with how to see the rest
# --------------------------------------------------------------------------------------------

HUGE_DAY = 95_000


def huge_day(n: int = HUGE_DAY) -> list[StoredPaper]:
    """`n` papers, built without validation (the point is the count, not the fields)."""
    return [
        StoredPaper.model_construct(
            arxiv_id=f"2502.{i:05d}", title=f"Paper {i}", url=f"https://arxiv.org/abs/2502.{i:05d}",
            authors=[f"Author {i}"], summary=f"Summary {i}.", tags=["Robotics"], github_urls=[],
            huggingface_urls=[], extra={}, days=[dt.date(2025, 2, 20)], sources=["timlrx"],
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def huge() -> list[StoredPaper]:
    return huge_day()


def _shown_vote_ids(payloads: list[MessagePayload]) -> list[str]:
    return [b.arxiv_id for p in payloads for b in p.votes]


def test_a_95000_paper_day_is_a_few_compact_messages_ending_with_the_way_to_the_rest(huge):
    from bot.render import DEFAULT_MAX_PAPERS_PER_POST

    day = dt.date(2025, 2, 20)
    payloads = digest_messages(day, huge, style="compact")
    # Before the cap this planned 3,800 messages.
    assert len(payloads) <= math.ceil(DEFAULT_MAX_PAPERS_PER_POST / 25) + 1
    assert len(_shown_vote_ids(payloads)) == DEFAULT_MAX_PAPERS_PER_POST
    assert payloads[0].content.startswith(digest_header(day, HUGE_DAY))  # the header counts them all
    assert "94,800 more papers" in payloads[-1].content
    assert "/papers day day:2025-02-20" in payloads[-1].content
    assert all(check_message_limits(p) == [] for p in payloads)


def test_a_95000_paper_day_in_a_thread_is_capped_too(huge):
    day = dt.date(2025, 2, 20)
    payloads = digest_messages(day, huge, style="thread", max_papers=50)
    # Before the cap this planned 95,001 messages.
    assert len(payloads) == 1 + 50
    assert payloads[1].embeds[0].footer.text.startswith(f"1/{HUGE_DAY}")
    assert "/papers day day:2025-02-20" in payloads[-1].content
    assert all(check_message_limits(p) == [] for p in payloads)


def test_a_95000_paper_dm_is_capped(huge):
    day = dt.date(2025, 2, 20)
    payloads = subscription_digest_messages(day, [(p, ["tag Robotics"]) for p in huge], max_papers=30)
    # Before the cap this planned 2,017 DMs.
    assert len(payloads) <= 3
    assert f"{HUGE_DAY} papers" in payloads[0].content
    assert "94,970 more papers" in payloads[-1].content
    assert "/subscriptions list" in payloads[-1].content
    assert all(check_message_limits(p) == [] for p in payloads)


def test_a_day_within_the_cap_has_no_note():
    day = dt.date(2025, 2, 20)
    few = huge_day(30)
    for style in ("compact", "thread"):
        payloads = digest_messages(day, few, style=style)
        assert "/papers day" not in " ".join(p.content or "" for p in payloads)
        assert len(_shown_vote_ids(payloads)) == 30
    with pytest.raises(ValueError):
        digest_messages(day, few, style="compact", max_papers=0)


def test_the_cap_setting_and_the_renderer_default_agree():
    from bot.render import DEFAULT_MAX_PAPERS_PER_POST
    from settings import DeliverySettings

    assert DeliverySettings().max_papers_per_post == DEFAULT_MAX_PAPERS_PER_POST


def test_the_rest_note_gets_its_own_message_when_the_last_one_is_full(huge):
    day = dt.date(2025, 2, 20)
    roles = range(10**17, 10**17 + 500)  # a header full of role mentions, and the only message
    payloads = digest_messages(day, huge[:3], style="compact", mention_role_ids=roles, max_papers=2)
    assert len(payloads) == 2 and payloads[-1].content.startswith("… and 1 more paper this day")
    assert payloads[-1].allowed_mentions is NO_MENTIONS and not payloads[-1].embeds
    assert all(check_message_limits(p) == [] for p in payloads)
