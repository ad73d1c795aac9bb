"""The markdown digest reader, one quirk of the producers' tables at a time."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digests.parse import parse_markdown
from storage.models import Digest, Paper

ARXIV = "https://arxiv.org/abs/2409.02889"
HF = "https://huggingface.co/papers/2409.02889"
THREE_COLUMN_HEADER = ["Title", "Authors", "Summary"]
LINK_COLUMN_HEADER = ["Title", "Authors", "Summary", "Link"]
TIMLRX_HEADER = ["Title", "Authors", "Summary", "Classification", "GitHub URLs", "HuggingFace URLs"]


def digest(header: list[str], *rows: str, date: str = "2024-09-05") -> str:
    """A digest as the producers write it: heading, blank line, header, separator, rows."""
    lines = [
        f"## Papers for {date}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("-" * (len(name) + 2) for name in header) + "|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


def only_paper(text: str) -> Paper:
    result = parse_markdown(text)
    assert result.problems == []
    [paper] = result.papers
    return paper


def problems_of(result: Digest) -> list[tuple[int, str]]:
    return [(problem.line, problem.message) for problem in result.problems]


# --- layouts ------------------------------------------------------------------------------


def test_title_authors_summary_link_layout():
    paper = only_paper(
        digest(
            LINK_COLUMN_HEADER,
            "| LongLLaVA: Scaling Multi-modal LLMs | Benyou Wang, songdj | It scales.   | "
            f"[Read more]({ARXIV}) |",
        )
    )
    assert paper.arxiv_id == "2409.02889"
    assert paper.title == "LongLLaVA: Scaling Multi-modal LLMs"
    assert paper.url == ARXIV
    assert paper.authors == ["Benyou Wang", "songdj"]
    assert paper.summary == "It scales."
    assert paper.tags == paper.github_urls == paper.huggingface_urls == []
    assert paper.extra == {}


def test_read_more_in_the_title_cell():
    paper = only_paper(
        digest(
            THREE_COLUMN_HEADER,
            f"| Towards a Unified View (Read more on [arXiv]({ARXIV}) or [HuggingFace]({HF}))| a, b | S |",
        )
    )
    assert paper.title == "Towards a Unified View"
    assert paper.url == ARXIV
    assert paper.huggingface_urls == [HF]


def test_early_dash_read_more_variant():
    paper = only_paper(
        digest(
            THREE_COLUMN_HEADER,
            f"| How Do Your Code LLMs Perform? - read more on [arXiv]({ARXIV}) or [HuggingFace]({HF}) | a | S |",
        )
    )
    assert paper.title == "How Do Your Code LLMs Perform?"
    assert (paper.url, paper.huggingface_urls) == (ARXIV, [HF])


def test_title_with_its_own_parentheses_keeps_them():
    paper = only_paper(
        digest(
            THREE_COLUMN_HEADER,
            f"| GIMMICK (Globally Inclusive) Benchmark (Read more on [arXiv]({ARXIV}) or [HuggingFace]({HF}))| a | S |",
        )
    )
    assert paper.title == "GIMMICK (Globally Inclusive) Benchmark"


def test_timlrx_layout_with_classification_and_link_lists():
    paper = only_paper(
        digest(
            TIMLRX_HEADER,
            f"| [Qwen2.5-VL Technical Report]({ARXIV}) | Keqin Chen, Shuai Bai | - It sees. - It reads. "
            "| ['Multimodal', 'Visual Question Answering'] "
            "| [Link](https://github.com/QwenLM/Qwen2.5-VL), [Link](https://github.com/QwenLM/x) "
            "| [Link](https://huggingface.co/Qwen) |",
        )
    )
    assert paper.title == "Qwen2.5-VL Technical Report"
    assert paper.url == ARXIV
    assert paper.summary == "- It sees. - It reads."
    assert paper.tags == ["Multimodal", "Visual Question Answering"]
    assert paper.github_urls == ["https://github.com/QwenLM/Qwen2.5-VL", "https://github.com/QwenLM/x"]
    assert paper.huggingface_urls == ["https://huggingface.co/Qwen"]


def test_links_relative_to_github_and_huggingface_become_absolute():
    """The producers write repos as paths on the site the column names; other bare text stays out."""
    paper = only_paper(
        digest(
            TIMLRX_HEADER,
            f"| [SmolVLM2]({ARXIV}) | A | s | ['Multimodal'] | [Link](huggingface/smollm), [Link](null) "
            "| [Link](spaces/smolvlm2), [Link](apple/huggingsnap), [Link](N/A), [Link](cmm-damovl.site) |",
        )
    )
    assert paper.github_urls == ["https://github.com/huggingface/smollm"]
    assert paper.huggingface_urls == ["https://huggingface.co/spaces/smolvlm2", "https://huggingface.co/apple/huggingsnap"]


def test_category_layout_gives_one_tag():
    paper = only_paper(
        digest(
            ["Category", "Title", "Authors", "Summary"],
            f"| Reinforcement Learning, Robotics | Competitive Programming (Read more on [arXiv]({ARXIV}) "
            f"or [HuggingFace]({HF}))| OpenAI | S |",
        )
    )
    assert paper.tags == ["Reinforcement Learning, Robotics"]
    assert paper.title == "Competitive Programming"


def test_headers_are_matched_loosely_and_in_any_order():
    paper = only_paper(
        digest(
            ["  summary", "TITLE  ", "Hugging Face   URLs", "github_urls", "authors"],
            f"| S | [T]({ARXIV}) | [Link](https://huggingface.co/m) | [Link](https://github.com/o/r) | A |",
        )
    )
    assert (paper.summary, paper.title, paper.authors) == ("S", "T", ["A"])
    assert paper.github_urls == ["https://github.com/o/r"]
    assert paper.huggingface_urls == ["https://huggingface.co/m"]


def test_unknown_columns_are_kept_in_extra():
    paper = only_paper(
        digest(
            ["Title", "Votes", "Authors", "Summary", "Notes"],
            f"| [T]({ARXIV}) | 42 | A | S |  see  appendix  |",
        )
    )
    assert paper.extra == {"Votes": "42", "Notes": "see  appendix"}
    assert paper.to_json()["extra"] == {"Votes": "42", "Notes": "see  appendix"}


def test_a_header_without_separator_is_still_a_header():
    text = f"## Papers for 2024-09-05\n| Title | Authors | Summary |\n| [T]({ARXIV}) | A | S |\n"
    assert only_paper(text).title == "T"


def test_a_second_table_brings_its_own_layout():
    text = digest(
        THREE_COLUMN_HEADER,
        f"| [One]({ARXIV}) | A | S |",
        "",
        "| Category | Title | Authors | Summary |",
        "|---|---|---|---|",
        "| Vision | [Two](https://arxiv.org/abs/2409.00002) | B | S2 |",
    )
    result = parse_markdown(text)
    assert result.problems == []
    assert [(p.title, p.tags) for p in result.papers] == [("One", []), ("Two", ["Vision"])]


# --- titles, authors, summaries ---------------------------------------------------------------


def test_title_whitespace_is_folded_and_summary_kept_exactly():
    paper = only_paper(
        digest(
            THREE_COLUMN_HEADER,
            f"|   [A   spaced\ttitle]({ARXIV})  |  Ann  Lee ,  Bo  |  One.  Two  spaces, kept.   |",
        )
    )
    assert paper.title == "A spaced title"
    assert paper.summary == "One.  Two  spaces, kept."
    assert paper.authors == ["Ann Lee", "Bo"]


@pytest.mark.parametrize("cell", ["", " ", ",", " , ,  "])
def test_empty_author_cell_is_an_empty_list(cell: str):
    paper = only_paper(digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) |{cell}| S |"))
    assert paper.authors == []


def test_title_link_text_may_hold_brackets():
    paper = only_paper(
        digest(THREE_COLUMN_HEADER, f"| [Tracking GPT-[n] and o-[n] Models]({ARXIV}) | A | S |")
    )
    assert paper.title == "Tracking GPT-[n] and o-[n] Models"


def test_versioned_arxiv_link_gives_unversioned_id_and_url_as_given():
    paper = only_paper(
        digest(THREE_COLUMN_HEADER, "| [T](https://arxiv.org/pdf/2409.02889v3) | A | S |")
    )
    assert paper.arxiv_id == "2409.02889"
    assert paper.url == "https://arxiv.org/pdf/2409.02889v3"


def test_huggingface_paper_link_alone_gives_the_id():
    paper = only_paper(digest(THREE_COLUMN_HEADER, f"| [T]({HF}) | A | S |"))
    assert paper.arxiv_id == "2409.02889"
    assert paper.url == "https://arxiv.org/abs/2409.02889"
    assert paper.huggingface_urls == [HF]


def test_old_style_arxiv_ids():
    paper = only_paper(
        digest(LINK_COLUMN_HEADER, "| T | A | S | [Read more](https://arxiv.org/abs/hep-th/9901001v2) |")
    )
    assert paper.arxiv_id == "hep-th/9901001"


# --- wrapped cells and pipes ----------------------------------------------------------------------


def test_wrapped_title_is_rejoined_and_folded():
    text = digest(
        TIMLRX_HEADER,
        "| [AdaptiVocab: Enhancing LLM Efficiency in Focused Domains through",
        f"  Lightweight Vocabulary Adaptation]({ARXIV}) | Roi Reichart | S | ['NLP'] | N/A | N/A |",
        "| [Next](https://arxiv.org/abs/2409.00002) | A | S | [] | N/A | N/A |",
        "| no link | A | S | [] | N/A | N/A |",
    )
    result = parse_markdown(text)
    assert [p.title for p in result.papers] == [
        "AdaptiVocab: Enhancing LLM Efficiency in Focused Domains through Lightweight Vocabulary Adaptation",
        "Next",
    ]
    assert problems_of(result) == [(8, "no arXiv id in the title or link cells")]


def test_any_cell_may_wrap_even_a_url():
    text = digest(
        TIMLRX_HEADER,
        f"| [T]({ARXIV}) | Ann,",
        "  Bo | First line",
        "  second line | ['NLP',",
        " 'Vision'] | N/A | [Link](https://mgtsaevis.github.io/",
        "mgt-sae-visualization/) |",
    )
    paper = only_paper(text)
    assert paper.authors == ["Ann", "Bo"]
    assert paper.summary == "First line\n  second line"
    assert paper.tags == ["NLP", "Vision"]
    assert paper.huggingface_urls == ["https://mgtsaevis.github.io/mgt-sae-visualization/"]


def test_a_wrap_right_after_a_pipe_is_rejoined():
    text = digest(
        THREE_COLUMN_HEADER,
        f"| [T]({ARXIV}) | A |",
        "  the summary went on the next line |",
        "| [U](https://arxiv.org/abs/2409.00002) | B | S |",
    )
    result = parse_markdown(text)
    assert result.problems == []
    assert [p.summary for p in result.papers] == ["the summary went on the next line", "S"]


def test_a_row_wrapped_after_every_pipe_is_rejoined():
    text = digest(
        THREE_COLUMN_HEADER,
        "|",
        f"[T]({ARXIV}) |",
        "  Ann, Bo |",
        "",
        "  P(x|y) is small |",
        "| [U](https://arxiv.org/abs/2409.00002) | B | S |",
    )
    result = parse_markdown(text)
    assert result.problems == []
    assert [(p.title, p.authors, p.summary) for p in result.papers] == [
        ("T", ["Ann", "Bo"], "P(x|y) is small"),
        ("U", ["B"], "S"),
    ]


def test_prose_after_the_table_is_not_part_of_the_last_row():
    text = digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A | S |") + "Generated daily.\n"
    assert only_paper(text).summary == "S"


def test_blank_line_inside_a_wrapped_cell():
    text = digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A | First.", "", "Second. |")
    assert only_paper(text).summary == "First.\n\nSecond."


def test_last_row_without_closing_pipe():
    text = digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A | S")
    assert only_paper(text).summary == "S"


def test_escaped_pipes_are_cell_text():
    paper = only_paper(
        digest(THREE_COLUMN_HEADER, f"| [A \\| B]({ARXIV}) | A | P(x \\| y) is \\|V\\| |")
    )
    assert paper.title == "A | B"
    assert paper.summary == "P(x | y) is |V|"


def test_pipes_inside_links_do_not_split_cells():
    paper = only_paper(
        digest(
            TIMLRX_HEADER,
            "| [Less | More: a title](https://arxiv.org/abs/2409.02889) | A | S | ['NLP'] "
            "| [Link](https://github.com/o/r?q=a|b) | N/A |",
        )
    )
    assert paper.title == "Less | More: a title"
    assert paper.github_urls == ["https://github.com/o/r?q=a|b"]


@pytest.mark.parametrize(
    "header, row, summary",
    [
        (THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A | with Conf(V|X) values |", "with Conf(V|X) values"),
        (
            TIMLRX_HEADER,
            f"| [T]({ARXIV}) | A | sizes |V| and |E| | ['NLP'] | N/A | [Link](https://hf.co/m) |",
            "sizes |V| and |E|",
        ),
    ],
)
def test_unescaped_pipes_in_a_summary_are_mended(header, row, summary):
    """The producers never escape pipes; the surplus cells can only be summary text."""
    assert only_paper(digest(header, row)).summary == summary


def test_an_unescaped_pipe_in_a_plain_title_is_mended():
    row = f"| Less | More (Read more on [arXiv]({ARXIV}) or [HuggingFace]({HF}))| A | S |"
    paper = only_paper(digest(["Category", "Title", "Authors", "Summary"], "| Vision " + row))
    assert (paper.title, paper.authors, paper.summary) == ("Less | More", ["A"], "S")


def test_surplus_cells_that_do_not_fit_are_a_problem():
    row = f"| [T]({ARXIV}) | A | S | ['NLP'] | N/A | N/A | stray words |"
    result = parse_markdown(digest(TIMLRX_HEADER, row))
    assert problems_of(result) == [(5, "row has 7 cells but the header has 6 columns")]


# --- classification and link lists -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, tags",
    [
        ("['Multimodal', 'Text Generation']", ["Multimodal", "Text Generation"]),
        ('["Alzheimer\'s Disease", \'NLP\']', ["Alzheimer's Disease", "NLP"]),
        ("['Alzheimer's Disease', 'NLP']", ["Alzheimer's Disease", "NLP"]),
        ('["Say "hi"", "NLP"]', ['Say "hi"', "NLP"]),
        ("['Text, Image', 'NLP']", ["Text, Image", "NLP"]),
        ("['NLP', 'NLP', ' Vision ']", ["NLP", "Vision"]),
        ("[Multimodal, Text Generation]", ["Multimodal", "Text Generation"]),
        ("['Unclosed', 'list'", ["Unclosed", "list"]),
        ("Multimodal, Vision", ["Multimodal", "Vision"]),
        ("[]", []),
        ("", []),
        ("N/A", []),
    ],
)
def test_classification_cells(cell: str, tags: list[str]):
    paper = only_paper(digest(TIMLRX_HEADER, f"| [T]({ARXIV}) | A | S | {cell} | N/A | N/A |"))
    assert paper.tags == tags


@pytest.mark.parametrize(
    "cell, urls",
    [
        ("N/A", []),
        ("", []),
        ("[Link](null)", []),
        ("[Link](None), [Link](string), [Link](N/A)", []),
        ("[Link](mgor/protobowl-11-13)", ["https://github.com/mgor/protobowl-11-13"]),
        ("[Link](https://a.io/x), [Link](https://b.io/y)", ["https://a.io/x", "https://b.io/y"]),
        ("[Link](https://a.io/x) [Link](https://b.io/y) [Link](https://a.io/x)", ["https://a.io/x", "https://b.io/y"]),
        ("[Link](https://huggingface.co/state-spaces/mamba-{130m,1.4b})", ["https://huggingface.co/state-spaces/mamba-{130m,1.4b}"]),
        ("[Link](github.com/yale-nlp/MMVU)", ["https://github.com/yale-nlp/MMVU"]),
        ("[Link](//huggingface.co/OpenGVLab/InternVL2_5-78B)", ["https://huggingface.co/OpenGVLab/InternVL2_5-78B"]),
        ("https://bare.example.org/p", ["https://bare.example.org/p"]),
    ],
)
def test_link_list_cells_hold_real_urls_only(cell: str, urls: list[str]):
    paper = only_paper(digest(TIMLRX_HEADER, f"| [T]({ARXIV}) | A | S | [] | {cell} | N/A |"))
    assert paper.github_urls == urls


# --- empty days, problems and the row invariant ---------------------------------------------------


def test_empty_table_is_a_valid_empty_digest():
    result = parse_markdown(digest(TIMLRX_HEADER))
    assert result == Digest(date=dt.date(2024, 9, 5), papers=[], problems=[])


def test_heading_without_a_table_is_a_valid_empty_digest():
    result = parse_markdown("\n\n## Papers for 2025-01-21\n\n")
    assert result == Digest(date=dt.date(2025, 1, 21), papers=[], problems=[])


def test_no_heading_is_a_problem_but_the_table_is_still_read():
    text = "| Title | Authors | Summary |\n|---|---|---|\n" + f"| [T]({ARXIV}) | A | S |\n"
    result = parse_markdown(text)
    assert result.date is None
    assert [p.title for p in result.papers] == ["T"]
    assert [problem.line for problem in result.problems] == [1]
    assert "heading" in result.problems[0].message


def test_heading_with_a_bad_date_is_a_problem():
    result = parse_markdown("## Papers for 2024-13-45\n")
    assert result.date is None
    assert problems_of(result) == [(1, "the digest heading has no valid date: '2024-13-45'")]


def test_date_hint_fills_in_only_a_missing_date():
    assert parse_markdown("## Papers for 2024-09-05\n", dt.date(2000, 1, 1)).date == dt.date(2024, 9, 5)
    assert parse_markdown("no heading\n", dt.date(2000, 1, 1)).date == dt.date(2000, 1, 1)


def test_bad_rows_are_problems_at_their_first_line_and_the_rest_is_read():
    text = digest(
        TIMLRX_HEADER,
        f"| [One]({ARXIV}) | A | S | [] | N/A | N/A |",
        "| [Two](https://arxiv.org/abs/2409.00002) | A | S |",
        "| [Three, no id](https://example.org/paper) | A | S | [] | N/A | N/A |",
        "| [Four](https://arxiv.org/abs/2409.00004) | A",
        "  wrapped | S | [] | N/A | N/A |",
        "| [Five](https://arxiv.org/abs/2409.00005) | A | S | [] | N/A |",
        "| [Six](https://arxiv.org/abs/2409.00006) | A | S | [] | N/A | N/A |",
    )
    result = parse_markdown(text)
    assert [p.title for p in result.papers] == ["One", "Four", "Six"]
    assert problems_of(result) == [
        (6, "row has 3 cells but the header has 6 columns"),
        (7, "no arXiv id in the title or link cells"),
        (10, "row has 5 cells but the header has 6 columns"),
    ]


def test_an_empty_title_is_a_problem():
    result = parse_markdown(digest(LINK_COLUMN_HEADER, f"|  | A | S | [Read more]({ARXIV}) |"))
    assert problems_of(result) == [(5, "the title cell is empty")]


def test_a_table_without_a_title_column_is_a_problem_per_row():
    result = parse_markdown(digest(["Name", "Authors"], "| x | y |", "| z | w |"))
    assert problems_of(result) == [(5, "the table has no Title column"), (6, "the table has no Title column")]
    assert result.papers == []


def test_rows_before_any_header_are_problems():
    result = parse_markdown(f"## Papers for 2024-09-05\n| [T]({ARXIV}) | A | S |\n")
    assert problems_of(result) == [(2, "table row before any header row")]


def test_windows_line_ends_and_bom():
    text = "\ufeff" + digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A |", "  S |").replace("\n", "\r\n")
    result = parse_markdown(text)
    assert result.problems == []
    assert result.papers[0].summary == "S"


# --- mojibake ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authors, repaired",
    [
        ("Lucie-Aim√©e Kaffee, IAugenstein", ["Lucie-Aimée Kaffee", "IAugenstein"]),  # MacRoman
        ("JosÃ© Ã\xa0 la Carte", ["José à la Carte"]),  # Latin-1 / Windows-1252
        ("Ð˜Ð²Ð°Ð½", ["Иван"]),
    ],
)
def test_mis_decoded_text_is_repaired(authors: str, repaired: list[str]):
    paper = only_paper(digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | {authors} | S |"))
    assert paper.authors == repaired


def test_mis_decoded_words_are_repaired_next_to_correct_ones():
    paper = only_paper(
        digest(THREE_COLUMN_HEADER, f"| [Aim√©e → Zoë]({ARXIV}) | A | It‚Äôs √n → ∞ |")
    )
    assert paper.title == "Aimée → Zoë"
    assert paper.summary == "It’s √n → ∞"


@pytest.mark.parametrize(
    "summary",
    [
        "R = o(√log n), the bound",
        "“Curly” quotes and it’s",
        "Full-width ＡＢＣ and ligature ﬁne",
        "Decomposed " + unicodedata.normalize("NFD", "é") + " stays decomposed",
        "HTML &amp; entities &lt;kept&gt;",
        "Greek αβγ, math ≤ ≥ ± × ², arrows →, bullets •, Ł ř ğ",
        "NBSP\xa0kept",
    ],
)
def test_correct_text_is_left_alone(summary: str):
    paper = only_paper(digest(THREE_COLUMN_HEADER, f"| [T]({ARXIV}) | A | {summary} |"))
    assert paper.summary == summary


# --- properties -----------------------------------------------------------------------------------

HEADERS = st.sampled_from(
    ["Title", "Authors", "Summary", "Link", "Classification", "GitHub URLs", "HuggingFace URLs", "Category", "Votes"]
)
CELL_PIECES = st.sampled_from(
    [
        "x", "Paper", " ", "  ", ",", "\\|", "|", "[", "]", "(", ")", "\\", "N/A", "-", "---", ":",
        f"[T]({ARXIV})", f"[Read more]({ARXIV})", f"(Read more on [arXiv]({ARXIV}) or [HuggingFace]({HF}))",
        "[Link](null)", "[Link](https://github.com/o/r)", "['NLP', 'Vision']", "['bad', ", "√©", "é",
        "\n  ", "\nwrapped", "\n", "\n\n", "#", "## Papers for", "`", "*", "’",
    ]
)


@st.composite
def table_text(draw) -> tuple[str, int]:
    """A digest with random header and rows, and its number of data rows counted simply.

    Rows may have any number of cells, wrapped lines, stray pipes and brackets; what they never
    do is start a line with `|` inside a cell (that is a new row by definition) or look like a
    `|---|` separator (a row whose every cell is dashes).
    """
    header = draw(st.lists(HEADERS, min_size=1, max_size=7))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        cells = draw(st.lists(st.lists(CELL_PIECES, max_size=6).map("".join), max_size=8))
        cells = [cell.replace("\n|", "\n ") for cell in cells]
        rows.append("| x" + " | ".join(["", *cells]) + " |")
    tail = draw(st.sampled_from(["", "\n", "\nSome prose after the table.\n", "\n\n| orphan"]))
    text = digest(header, *rows) + tail
    expected = sum(line.startswith("|") for line in text.split("\n")) - 2
    return text, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str):
    result = parse_markdown(text)
    lines = text.count("\n") + 1
    assert all(1 <= problem.line <= lines for problem in result.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(st.sampled_from("|\\[]()-:# \n\tx,'\"é√"), max_size=200))
def test_never_raises_on_table_punctuation(text: str):
    parse_markdown("## Papers for 2024-09-05\n" + text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_text())
def test_every_row_is_a_paper_or_a_problem(case: tuple[str, int]):
    text, rows = case
    result = parse_markdown(text)
    assert len(result.papers) + len(result.problems) == rows
    lines = text.count("\n") + 1
    assert all(1 <= problem.line <= lines for problem in result.problems)


# Words as titles, names and summaries hold them: no table syntax, and at most one non-ASCII
# character each. Two could spell mojibake (`”ß` is `ӧ` read as MacRoman) and be repaired.
ASCII_WORD = st.text(st.sampled_from([chr(c) for c in range(33, 127) if chr(c) not in "|[]()\\"]), max_size=6)
WORDS = st.tuples(ASCII_WORD, st.sampled_from(["", *"éüßøłαβ→≤√’“”•×"]), ASCII_WORD).map("".join).filter(bool)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.lists(WORDS, min_size=1, max_size=8),
    authors=st.lists(WORDS.filter(lambda word: "," not in word), max_size=5),
    summary=st.lists(WORDS, min_size=1, max_size=20),
    wrap_at=st.integers(0, 8),
)
def test_a_rendered_paper_reads_back(title, authors, summary, wrap_at):
    """Render a paper the way timlrx does (long titles wrapped), parse, get it back."""
    wrap = "\n  " if 0 < wrap_at < len(title) else " "
    title_text = " ".join(title[:wrap_at]) + wrap + " ".join(title[wrap_at:])
    row = (
        f"| [{title_text.strip()}]({ARXIV}) | {', '.join(authors)} | {' '.join(summary)} "
        "| ['NLP'] | [Link](https://github.com/o/r) | N/A |"
    )
    paper = only_paper(digest(TIMLRX_HEADER, row))
    assert paper.title == fold(" ".join(title))
    assert paper.authors == [fold(name) for name in authors if name.strip()]
    assert paper.summary == fold(" ".join(summary))


def fold(text: str) -> str:
    return " ".join(text.split())
