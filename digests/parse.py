"""The front door to digest parsing: bytes or text in, a `Digest` out, whatever the format.

Markdown tables live in `markdown.py`, the producers' JSON in `producer_json.py`; this module
only decodes, picks the format and takes the date from the file name when the content lacks it.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re

from digests.markdown import read_markdown
from digests.producer_json import DigestFormatError, read_producer_json
from storage.models import Digest

__all__ = [
    "DigestFormatError",
    "date_from_name",
    "parse_bytes",
    "parse_file",
    "parse_markdown",
    "parse_producer_json",
]

# `.../2024/09/05.md`, `2025-02-20.md`, `daily_results/2024/09/27.json`
_DATE_IN_NAME = re.compile(
    r"(?<!\d)(?P<y>\d{4})[-/\\_](?P<m>\d{1,2})[-/\\_](?P<d>\d{1,2})(?:\.[A-Za-z0-9]+)*$"
)
_JSON_START = re.compile(r"\ufeff?\s*[\[{]")


def parse_markdown(text: str, date_hint: dt.date | None = None) -> Digest:
    """A markdown digest; `date_hint` is used only if its heading gives no date."""
    return read_markdown(text, date_hint)


def parse_producer_json(text: str, date_hint: dt.date | None = None) -> Digest:
    """A producer's `daily_results` JSON; `date_hint` is used only if no object has a date."""
    return read_producer_json(text, date_hint)


def parse_bytes(data: bytes, name: str) -> Digest:
    """A digest file's bytes: UTF-8 (a BOM is allowed), JSON or markdown by name, else by content.

    The name also gives the date when the content doesn't (an empty JSON day, a lost heading).
    DigestFormatError messages say what is wrong, not which file: callers name the file.
    """
    text = decode(data)
    date_hint = date_from_name(name)
    if is_json(text, name):
        return parse_producer_json(text, date_hint)
    return parse_markdown(text, date_hint)


def parse_file(path: pathlib.Path) -> Digest:
    """A digest file on disk; OSError propagates for the caller to report."""
    return parse_bytes(pathlib.Path(path).read_bytes(), str(path))


def date_from_name(name: str) -> dt.date | None:
    """The date a digest's file name or URL gives: `.../2024/09/05.md` or `2025-02-20.md`."""
    match = _DATE_IN_NAME.search(without_query(name))
    if not match:
        return None
    try:
        return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None


def decode(data: bytes) -> str:
    """UTF-8 text, or DigestFormatError saying where the bytes stop being UTF-8.

    A BOM decodes to U+FEFF, which both readers skip.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise DigestFormatError(
            f"not UTF-8 text (byte 0x{byte:02x} on line {line} cannot be decoded)"
        ) from None


def is_json(text: str, name: str) -> bool:
    """JSON by the name's extension; for other names, by the first non-space character."""
    suffix = pathlib.PurePath(without_query(name)).suffix.lower()
    if suffix == ".json":
        return True
    if suffix in {".md", ".markdown", ".txt"}:
        return False
    return _JSON_START.match(text) is not None


def without_query(name: str) -> str:
    """A URL's path without `?query` or `#fragment`; a file name as it is."""
    return name.split("?", 1)[0].split("#", 1)[0] if "://" in name else name
