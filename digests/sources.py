"""Where digests come from: files, folders and http(s) URLs, as bytes.

Kept apart from parsing so the parser stays a pure function of text, and apart
from storage so fetching can be retried without touching the library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import aiohttp

from digests.parse import date_from_name

DIGEST_SUFFIXES = (".md", ".json")
MAX_DIGEST_BYTES = 20 * 1024 * 1024  # a day's digest is ~100 KB; anything this big is not one
CHUNK_BYTES = 64 * 1024
PRODUCER_FOLDERS = ("archive", "daily_results")  # producers publish <repo>/archive/YYYY/MM/DD.md


class SourceError(Exception):
    """A digest location that cannot be read; the message names it.

    `transient` when asking again later may help (the fetch job retries those).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class NotPublished(SourceError):
    """The URL answered 404: the day's digest is not (yet) published."""


@dataclass(frozen=True)
class Location:
    """One digest to read: a local file or a URL, and the producer it belongs to."""

    target: str
    producer: str

    @property
    def is_url(self) -> bool:
        return is_url(self.target)


def is_url(target: str) -> bool:
    return urlsplit(target).scheme in ("http", "https")


def producer_of(target: str) -> str:
    """The producer a file or URL belongs to: the folder above `archive/` or `daily_results/`.

    Producers publish `<name>/archive/YYYY/MM/DD.md` (and, for some, a JSON twin under
    `daily_results/`), so the same paper from two producers is told apart; anything
    else is "local".
    """
    parts = PurePosixPath(urlsplit(target).path if is_url(target) else Path(target).as_posix()).parts
    for index, part in enumerate(parts[1:], start=1):
        if part in PRODUCER_FOLDERS:
            return re.sub(r"[^\w.-]", "", parts[index - 1]) or "local"
    return "local"


def expand(targets: Iterable[str], producer: str | None = None) -> list[Location]:
    """Each file, each digest file under a folder (recursively, in name order), each URL.

    Inside folders only files whose names carry a date (`2024/09/05.md`,
    `2025-02-20.json`) are digests; a README beside them is not. A file named
    explicitly is always read. A missing path raises SourceError before anything
    is ingested, so a typo does not half-run a batch.
    """
    resolved: list[Location] = []
    for target in targets:
        if is_url(target):
            resolved.append(Location(target, producer or producer_of(target)))
            continue
        path = Path(target)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in DIGEST_SUFFIXES and p.is_file() and date_from_name(p.as_posix())
            )
            resolved.extend(Location(str(p), producer or producer_of(str(p))) for p in files)
        elif path.is_file():
            resolved.append(Location(target, producer or producer_of(target)))
        else:
            raise SourceError(f"{target}: no such file, folder or http(s) URL")
    return resolved


def read_file(path: str) -> bytes:
    try:
        size = Path(path).stat().st_size
        if size > MAX_DIGEST_BYTES:
            raise SourceError(f"{path}: {size} bytes is too large for a digest")
        return Path(path).read_bytes()
    except OSError as error:
        raise SourceError(f"{path}: {error.strerror or error}") from None


async def fetch(session: aiohttp.ClientSession, url: str, *, timeout: float = 30.0) -> bytes:
    """The whole body of `url`: NotPublished for a 404, SourceError for anything else.

    Reads to the end, so a body cut short by the server raises instead of coming back
    partial, and stops at MAX_DIGEST_BYTES. `SourceError.transient` says whether asking
    again later may help (timeouts, dropped connections, 5xx, 408, 429).
    """
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status == 404:
                raise NotPublished(f"{url}: not published yet (HTTP 404)")
            if response.status != 200:
                reason = f"HTTP {response.status} {response.reason or ''}".rstrip()
                raise SourceError(f"{url}: {reason}", transient=response.status >= 500 or response.status in (408, 429))
            body = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                body += chunk
                if len(body) > MAX_DIGEST_BYTES:
                    raise SourceError(f"{url}: larger than {MAX_DIGEST_BYTES} bytes, not a digest")
    except TimeoutError:
        raise SourceError(f"{url}: no complete answer within {timeout:g} s", transient=True) from None
    except aiohttp.ClientPayloadError as error:
        raise SourceError(f"{url}: the answer was cut short ({error})", transient=True) from None
    except (aiohttp.ClientError, OSError) as error:
        raise SourceError(f"{url}: {error or type(error).__name__}", transient=True) from None
    return bytes(body)
