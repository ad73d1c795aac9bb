"""The parser against real digests: every file in tests/data/corpus, four format generations.

The corpus is MIT-licensed ("Copyright (c) 2024 gabriel chua"), see tests/data/corpus/LICENSE.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from digests.parse import date_from_name, parse_file
from storage.models import Digest, Paper

CORPUS = pathlib.Path(__file__).parent / "data" / "corpus"
TIMLRX = CORPUS / "timlrx"
SEED = CORPUS / "seed" / "2025-02-20.md"

# Files in the corpus that are not digests at all.
NOT_DIGESTS = {"README.md": "describes the corpus", "LICENSE": "the producers' licence"}
# Digest files that are themselves broken, with the reason. None are: the one damaged row in
# the corpus (gabrielchua 2024-10-11, an unescaped `|` in a summary) is mended by the parser,
# see test_unescaped_pipe_in_a_real_summary_is_mended.
BROKEN: dict[str, str] = {}


def digest_files() -> list[pathlib.Path]:
    return sorted(
        path for path in CORPUS.rglob("*") if path.is_file() and path.name not in NOT_DIGESTS
    )


def corpus_id(path: pathlib.Path) -> str:
    return path.relative_to(CORPUS).as_posix()


@pytest.fixture(scope="module")
def parsed() -> dict[pathlib.Path, Digest]:
    return {path: parse_file(path) for path in digest_files()}


def test_the_corpus_is_all_there():
    files = digest_files()
    assert len(files) >= 417  # the corpus as first bundled; it may grow
    assert {path.suffix for path in files} == {".md", ".json"}


@pytest.mark.parametrize("path", digest_files(), ids=corpus_id)
def test_every_file_reads_without_problems(path: pathlib.Path, parsed):
    digest = parsed[path]
    if corpus_id(path) in BROKEN:
        assert digest.problems, BROKEN[corpus_id(path)]
        return
    assert digest.problems == []
    assert digest.date == date_from_name(path.as_posix())


@pytest.mark.parametrize("path", digest_files(), ids=corpus_id)
def test_every_table_row_or_json_object_is_one_paper(path: pathlib.Path, parsed):
    """Nothing is dropped: each file has one table (header + separator) or one JSON list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        expected = len(json.loads(text))
    else:
        expected = sum(line.startswith("|") for line in text.split("\n")) - 2
    digest = parsed[path]
    assert len(digest.papers) + len(digest.problems) == expected


def test_corpus_totals(parsed):
    papers = sum(len(digest.papers) for digest in parsed.values())
    problems = sum(len(digest.problems) for digest in parsed.values())
    assert problems == 0
    assert papers >= 5103  # as first bundled


def test_every_paper_is_clean(parsed):
    """Whatever the generation: folded titles, ids in the urls, only real links in the lists."""
    for path, digest in parsed.items():
        for paper in digest.papers:
            where = f"{corpus_id(path)} {paper.arxiv_id}"
            assert paper.title == " ".join(paper.title.split()) != "", where
            assert paper.url.startswith("https://arxiv.org/abs/"), where
            assert paper.arxiv_id in paper.url, where
            assert paper.summary == paper.summary.strip() != "", where
            assert all(name == " ".join(name.split()) != "" for name in paper.authors), where
            for url in paper.github_urls + paper.huggingface_urls:
                assert url.startswith(("http://", "https://")) and " " not in url, where
                assert "\n" not in url, where


def test_seed_day_repairs_the_mis_decoded_name(parsed):
    paper = paper_by_id(parsed[SEED], "2502.11995")
    assert paper.authors == ["Lucie-Aimée Kaffee", "Arnav Arora", "Siddhesh Pawar", "IAugenstein"]
    assert "√" not in json.dumps([p.model_dump() for p in parsed[SEED].papers], ensure_ascii=False)


def test_seed_day_is_the_producers_day_once_repaired(parsed):
    """The seed is timlrx's 2025-02-20 with one name mis-decoded; repaired, they are the same."""
    assert parsed[SEED] == parsed[TIMLRX / "archive" / "2025" / "02" / "20.md"]


def test_correct_text_is_not_damaged(parsed):
    day = parsed[CORPUS / "gabrielchua" / "archive" / "2025" / "01" / "10.md"]
    assert any("o(√log n)" in paper.summary for paper in day.papers)
    quotes = [p for d in parsed.values() for p in d.papers if "’" in p.summary or "“" in p.summary]
    assert quotes, "curly quotes are kept as the producers wrote them"


def test_early_gabrielchua_layouts():
    first = parse_file(CORPUS / "gabrielchua" / "archive" / "2024" / "09" / "05.md")
    paper = paper_by_id(first, "2409.02889")
    assert paper.title.startswith("LongLLaVA: Scaling Multi-modal LLMs to 1000 Images")
    assert paper.url == "https://arxiv.org/abs/2409.02889"
    assert paper.huggingface_urls == []

    read_more = parse_file(CORPUS / "gabrielchua" / "archive" / "2024" / "09" / "09.md")
    paper = paper_by_id(read_more, "2409.03810")
    assert paper.title == (
        "How Do Your Code LLMs Perform? Empowering Code Instruction Tuning with High-Quality Data"
    )
    assert paper.huggingface_urls == ["https://huggingface.co/papers/2409.03810"]


def test_zrohyun_category_is_the_one_tag():
    day = parse_file(CORPUS / "zrohyun" / "archive" / "2025" / "02" / "12.md")
    paper = paper_by_id(day, "2502.06807")
    assert paper.tags == ["Reinforcement Learning"]
    assert paper.title == "Competitive Programming with Large Reasoning Models"


def test_wrapped_titles_and_urls_are_rejoined(parsed):
    day = parsed[TIMLRX / "archive" / "2025" / "03" / "11.md"]
    paper = paper_by_id(day, "2503.03601")
    assert paper.title == "Feature-Level Insights into Artificial Text Detection with Sparse Autoencoders"
    assert paper.huggingface_urls == ["https://mgtsaevis.github.io/mgt-sae-visualization/"]


def test_unescaped_pipe_in_a_real_summary_is_mended(parsed):
    """gabrielchua 2024-10-11 line 17: `Conf(Vᵢ|Xᵢ)` in a summary gives the row a fourth cell."""
    paper = paper_by_id(parsed[CORPUS / "gabrielchua" / "archive" / "2024" / "10" / "11.md"], "2410.05248")
    assert "Conf(Vᵢ|Xᵢ) values?" in paper.summary
    assert paper.authors[-1] == "YuxinXiao"


def timlrx_days_with_both() -> list[pathlib.Path]:
    return sorted(
        path
        for path in (TIMLRX / "archive").rglob("*.md")
        if json_of(path).exists()
    )


def json_of(markdown: pathlib.Path) -> pathlib.Path:
    relative = markdown.relative_to(TIMLRX / "archive").with_suffix(".json")
    return TIMLRX / "daily_results" / relative


@pytest.mark.parametrize("markdown", timlrx_days_with_both(), ids=corpus_id)
def test_timlrx_markdown_matches_its_json(markdown: pathlib.Path, parsed):
    """Each markdown paper is its JSON paper, field for field.

    The JSON lists every paper of the day, the markdown only those in the producer's
    categories of interest, so papers are matched by arxiv_id from the markdown side.

    Summaries: the producer prints the JSON summary into its table with every line break
    replaced by a space (a table row cannot hold one) and changes nothing else; both readers
    strip the ends. So the markdown summary equals the JSON summary with each "\\n" turned
    into " ", exactly; that implies equality with whitespace folded, which is checked too.
    All other fields are equal as read: title, url, authors, tags, github_urls and
    huggingface_urls. (`github_repo` is not among the markdown's GitHub URLs; the JSON reader
    keeps it in `extra` when it differs from them.)
    """
    from_markdown = parsed[markdown]
    from_json = parsed[json_of(markdown)]
    assert from_markdown.date == from_json.date
    by_id = {paper.arxiv_id: paper for paper in from_json.papers}
    assert len(by_id) == len(from_json.papers)
    for paper in from_markdown.papers:
        truth = by_id[paper.arxiv_id]
        for field in ("title", "url", "authors", "tags", "github_urls", "huggingface_urls"):
            assert getattr(paper, field) == getattr(truth, field), (paper.arxiv_id, field)
        assert paper.summary == truth.summary.replace("\n", " "), paper.arxiv_id
        assert fold(paper.summary) == fold(truth.summary), paper.arxiv_id


def test_timlrx_json_has_more_papers_than_its_markdown(parsed):
    """The markdown is a selection: a sanity check that the comparison above compares something."""
    markdown = sum(len(parsed[path].papers) for path in timlrx_days_with_both())
    everything = sum(len(parsed[json_of(path)].papers) for path in timlrx_days_with_both())
    assert 1264 <= markdown < everything


def test_an_empty_json_day_takes_its_date_from_the_path(parsed):
    day = parsed[TIMLRX / "daily_results" / "2025" / "03" / "17.json"]
    assert day.papers == [] and day.problems == []
    assert day.date.isoformat() == "2025-03-17"


def paper_by_id(digest: Digest, arxiv_id: str) -> Paper:
    [paper] = [paper for paper in digest.papers if paper.arxiv_id == arxiv_id]
    return paper


def fold(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", ["archive/2025/02/27.md", "daily_results/2025/02/27.json"])
def test_huggingface_links_relative_to_the_site_become_absolute(name):
    """timlrx writes `[Link](rohitsaxena/PosterSum)` / `"rohitsaxena/PosterSum"`: a path on huggingface.co."""
    paper = paper_by_id(parse_file(TIMLRX / name), "2502.17540")
    assert paper.huggingface_urls == ["https://huggingface.co/rohitsaxena/PosterSum"]


def test_relative_huggingface_link_in_an_older_digest():
    paper = paper_by_id(parse_file(TIMLRX / "archive" / "2024" / "10" / "10.md"), "2410.06524")
    assert "https://huggingface.co/mgor/protobowl-11-13" in paper.huggingface_urls
