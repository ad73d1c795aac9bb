"""The producers' JSON digests, and the front door that picks a format for a file."""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digests.parse import (
    DigestFormatError,
    date_from_name,
    parse_bytes,
    parse_file,
    parse_producer_json,
)
from storage.models import Paper

ARXIV = "https://arxiv.org/abs/2409.17481"


def paper_object(**fields) -> dict:
    """A paper as timlrx's daily_results hold it; `fields` override or (None) remove keys."""
    paper = {
        "title": "MaskLLM: Learnable Semi-Structured Sparsity for Large Language Models",
        "authors": "wxcTest, gheinrich, srvm",
        "link": ARXIV,
        "github_repo": "https://github.com/NVlabs/MaskLLM",
        "summary": " - MaskLLM prunes.\n- It learns the mask.",
        "classification": ["Natural Language Processing", "Text Generation"],
        "github_urls": ["https://github.com/NVlabs/MaskLLM"],
        "huggingface_urls": [],
        "date": "2024-09-27",
    }
    paper.update(fields)
    return {key: value for key, value in paper.items() if value is not None}


def dumps(*papers) -> str:
    return json.dumps(list(papers), indent=4, ensure_ascii=False)


def read_one(**fields) -> Paper:
    """The one paper a day holding `paper_object(**fields)` reads into."""
    result = parse_producer_json(dumps(paper_object(**fields)))
    assert result.problems == []
    [paper] = result.papers
    return paper


def test_a_paper_object_reads_into_the_model():
    result = parse_producer_json(dumps(paper_object()))
    assert result.date == dt.date(2024, 9, 27)
    assert result.problems == []
    [paper] = result.papers
    assert paper.arxiv_id == "2409.17481"
    assert paper.title == "MaskLLM: Learnable Semi-Structured Sparsity for Large Language Models"
    assert paper.url == ARXIV
    assert paper.authors == ["wxcTest", "gheinrich", "srvm"]
    assert paper.summary == "- MaskLLM prunes.\n- It learns the mask."
    assert paper.tags == ["Natural Language Processing", "Text Generation"]
    assert paper.github_urls == ["https://github.com/NVlabs/MaskLLM"]
    assert paper.huggingface_urls == []
    assert paper.extra == {}


def test_wrapped_title_is_folded():
    paper = read_one(title="Feature-Level Insights with Sparse\n  Autoencoders")
    assert paper.title == "Feature-Level Insights with Sparse Autoencoders"


def test_link_lists_hold_real_urls_only():
    paper = read_one(
        github_urls=["null", "None", "github.com/yale-nlp/MMVU", "https://github.com/a/b"] * 2,
        huggingface_urls=["string", "mgor/protobowl-11-13", "https://mgtsaevis.github.io/\nmgt-sae-visualization/"],
    )
    assert paper.github_urls == ["https://github.com/yale-nlp/MMVU", "https://github.com/a/b"]
    assert paper.huggingface_urls == [
        "https://huggingface.co/mgor/protobowl-11-13",
        "https://mgtsaevis.github.io/mgt-sae-visualization/",
    ]


def test_github_repo_is_kept_in_extra_when_not_among_the_github_urls():
    """timlrx's markdown lists only `github_urls`; `github_repo` must not change that list."""
    [same, different, missing] = parse_producer_json(
        dumps(
            paper_object(),
            paper_object(
                link="https://arxiv.org/abs/2409.00002",
                github_repo="https://github.com/Tencent/Hunyuan-Large",
                github_urls=["https://github.com/Tencent/Tencent-Hunyuan-Large"],
            ),
            paper_object(link="https://arxiv.org/abs/2409.00003", github_repo=None, github_urls=[]),
        )
    ).papers
    assert same.extra == {}
    assert different.github_urls == ["https://github.com/Tencent/Tencent-Hunyuan-Large"]
    assert different.extra == {"github_repo": "https://github.com/Tencent/Hunyuan-Large"}
    assert missing.github_urls == [] and missing.extra == {}


def test_missing_optional_fields_read_as_empty():
    [paper] = parse_producer_json(
        dumps({"title": "T", "link": ARXIV, "authors": "", "github_repo": None, "classification": []})
    ).papers
    assert paper.authors == paper.tags == paper.github_urls == paper.huggingface_urls == []
    assert paper.summary == ""


def test_unknown_keys_are_kept_as_text():
    paper = read_one(upvotes=12, note="hot", ids=[1, 2])
    assert paper.extra == {"upvotes": "12", "note": "hot", "ids": "[1, 2]"}


def test_classification_as_list_text_and_huggingface_paper_link():
    paper = read_one(
        classification="['Multimodal', 'Any-to-Any']", link="https://huggingface.co/papers/2409.17481"
    )
    assert paper.tags == ["Multimodal", "Any-to-Any"]
    assert paper.arxiv_id == "2409.17481"
    assert paper.url == "https://arxiv.org/abs/2409.17481"
    assert paper.huggingface_urls == ["https://huggingface.co/papers/2409.17481"]


def test_mojibake_is_repaired_and_correct_text_kept():
    paper = read_one(authors="Lucie-Aim√©e Kaffee, IAugenstein", summary="o(√log n) and “quotes”")
    assert paper.authors == ["Lucie-Aimée Kaffee", "IAugenstein"]
    assert paper.summary == "o(√log n) and “quotes”"


def test_malformed_elements_are_problems_at_their_first_line_and_the_rest_is_read():
    text = dumps(
        paper_object(),
        42,
        paper_object(link="https://example.org/no-id"),
        paper_object(title=["not", "text"]),
        paper_object(title="   "),
        paper_object(github_urls={"a": 1}),
        paper_object(link="https://arxiv.org/abs/2409.00002"),
    )
    result = parse_producer_json(text)
    lines = enumerate(text.split("\n"), 1)
    starts = [number for number, line in lines if line.startswith("    {") or line == "    42,"]
    assert [paper.arxiv_id for paper in result.papers] == ["2409.17481", "2409.00002"]
    assert [(problem.line, problem.message) for problem in result.problems] == [
        (starts[1], "list element is a number, not a paper object"),
        (starts[2], "no arXiv id in the paper's link"),
        (starts[3], "the paper's 'title' is a list, not a string"),
        (starts[4], "the paper has no title"),
        (starts[5], "the paper's 'github_urls' is an object, not a list"),
    ]


def test_one_line_json_puts_every_problem_on_line_one():
    result = parse_producer_json('[1, "x", {"title": "T", "link": "' + ARXIV + '"}]')
    assert [problem.line for problem in result.problems] == [1, 1]
    assert len(result.papers) == 1


def test_empty_list_is_a_valid_digest_dated_by_the_hint():
    assert parse_producer_json("[]").date is None
    assert parse_producer_json("[\n]\n", dt.date(2025, 3, 17)).date == dt.date(2025, 3, 17)


def test_the_objects_date_wins_over_the_hint():
    assert parse_producer_json(dumps(paper_object()), dt.date(2000, 1, 1)).date == dt.date(2024, 9, 27)


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "empty"),
        ("{}", "the JSON is an object, not a list of papers"),
        ('"papers"', "the JSON is a string, not a list of papers"),
        ("nonsense", "not JSON"),
        ("[1, 2", "the list is not closed (line 1"),
        ('[{"a": 1}\n {"b": 2}]', "expected ',' or ']' after a list element (line 2, column 2)"),
        ("[1] [2]", "text after the end of the list"),
        ('[{"title": "T", }]', "line 1"),
        ("[" + "1" * 5000 + "]", "not valid JSON"),
    ],
)
def test_unreadable_input_is_a_format_error(text: str, says: str):
    with pytest.raises(DigestFormatError) as error:
        parse_producer_json(text)
    assert says in str(error.value)


def test_trailing_comma_and_bom_are_tolerated():
    result = parse_producer_json("\ufeff[" + json.dumps(paper_object()) + ",]")
    assert len(result.papers) == 1 and result.problems == []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
PAPERISH = st.fixed_dictionaries(
    {},
    optional={
        "title": st.text(max_size=30) | JSON_VALUES,
        "authors": st.text(max_size=30) | JSON_VALUES,
        "link": st.sampled_from([ARXIV, "https://hf.co/papers/2409.00001", "null"]) | JSON_VALUES,
        "summary": st.text(max_size=30) | JSON_VALUES,
        "classification": st.lists(st.text(max_size=10)) | JSON_VALUES,
        "github_urls": st.lists(st.text(max_size=20)) | JSON_VALUES,
        "huggingface_urls": st.lists(st.text(max_size=20)) | JSON_VALUES,
        "github_repo": st.text(max_size=20) | JSON_VALUES,
        "date": st.text(max_size=12) | JSON_VALUES,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAPERISH | JSON_VALUES, max_size=6), st.sampled_from([None, 0, 2]))
def test_every_element_is_a_paper_or_a_problem(elements: list, indent):
    result = parse_producer_json(json.dumps(elements, indent=indent))
    assert len(result.papers) + len(result.problems) == len(elements)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_is_a_digest_or_a_format_error(text: str):
    try:
        parse_producer_json(text)
    except DigestFormatError:
        pass


# --- the front door ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, date",
    [
        ("archive/2024/09/05.md", dt.date(2024, 9, 5)),
        ("/x/timlrx/daily_results/2025/03/17.json", dt.date(2025, 3, 17)),
        ("2025-02-20.md", dt.date(2025, 2, 20)),
        ("seed/2025-02-20", dt.date(2025, 2, 20)),
        ("C:\\digests\\2024\\09\\05.md", dt.date(2024, 9, 5)),
        ("https://raw.example.org/x/archive/2024/09/05.md?raw=1#top", dt.date(2024, 9, 5)),
        ("2024/13/05.md", None),
        ("notes.md", None),
        ("2024/09/05/notes.md", None),
    ],
)
def test_date_from_name(name: str, date):
    assert date_from_name(name) == date


def test_parse_bytes_picks_json_by_name_and_dates_it_by_name():
    result = parse_bytes(b"[]", "timlrx/daily_results/2025/03/17.json")
    assert result.date == dt.date(2025, 3, 17) and result.papers == []


def test_parse_bytes_picks_json_by_content_when_the_name_says_nothing():
    assert parse_bytes(b"  \n[" + json.dumps(paper_object()).encode() + b"]", "upload").papers
    assert parse_bytes("\ufeff[]".encode(), "upload").problems == []
    with pytest.raises(DigestFormatError, match="the JSON is an object"):
        parse_bytes(b"{}", "upload")


def test_parse_bytes_reads_markdown_and_dates_a_headingless_file_by_name():
    heading = parse_bytes("## Papers for 2024-09-05\n".encode(), "x/2000/01/01.md")
    assert heading.date == dt.date(2024, 9, 5)
    no_heading = parse_bytes(b"| Title |\n|---|\n", "x/2000/01/01.md")
    assert no_heading.date == dt.date(2000, 1, 1) and len(no_heading.problems) == 1


def test_parse_bytes_accepts_a_utf8_bom():
    text = "\ufeff## Papers for 2024-09-05\n| Title | Authors | Summary |\n|---|---|---|\n"
    text += f"| [Aimée]({ARXIV}) | A | S |\n"
    [paper] = parse_bytes(text.encode("utf-8"), "day.md").papers
    assert paper.title == "Aimée"


def test_parse_bytes_refuses_bytes_that_are_not_utf8():
    with pytest.raises(DigestFormatError, match=r"^not UTF-8 text \(byte 0xe9 on line 2"):
        parse_bytes("## Papers for 2024-09-05\nAimée\n".encode("latin-1"), "day.md")


def test_parse_file_reads_from_disk_and_lets_os_errors_through(tmp_path: pathlib.Path):
    day = tmp_path / "2024" / "09" / "27.json"
    day.parent.mkdir(parents=True)
    day.write_text(dumps(paper_object()), encoding="utf-8")
    assert [paper.arxiv_id for paper in parse_file(day).papers] == ["2409.17481"]
    with pytest.raises(FileNotFoundError):
        parse_file(tmp_path / "missing.md")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.sampled_from(["day.md", "day.json", "2024/09/05.md", "upload"]))
def test_any_bytes_are_a_digest_or_a_format_error(data: bytes, name: str):
    try:
        parse_bytes(data, name)
    except DigestFormatError as error:
        assert str(error)  # says what is wrong
