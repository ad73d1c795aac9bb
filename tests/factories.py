"""Library objects for storage tests: distinct, dull, and overridable field by field."""

from __future__ import annotations

from storage.models import Paper


def paper(n: int, **fields) -> Paper:
    """A paper with arXiv id 2502.0000n and dull but distinct text; override any field."""
    values = {
        "arxiv_id": f"2502.{n:05d}",
        "title": f"Untitled study {n}",
        "url": f"https://arxiv.org/abs/2502.{n:05d}",
        "authors": [f"Author {n}"],
        "summary": f"Plain summary number {n}.",
    }
    return Paper(**(values | fields))
