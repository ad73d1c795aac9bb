"""Synthetic digests shaped like the real ones, for benchmarks at 10k … 1M papers.

Everything is learned from the real corpus in `tests/data/corpus/` (parsed with
`digests.parse.parse_file`):

* titles and summaries are walks of a word-bigram chain built from the real
  titles / summaries (whitespace tokens, so punctuation, bullets and casing come
  along), so every word — "model", "diffusion", a rare "Droplet" — appears about
  as often per paper as it does in real digests, and phrases ("large language
  models") occur as they do in real text;
* their lengths (in words) are drawn from the real length distributions;
* the number of tags per paper and the tags themselves follow the real
  frequencies (tags drawn without replacement, weighted by real counts);
* authors are real names drawn with their real frequencies, with the real
  authors-per-paper distribution;
* the share of papers with GitHub / HuggingFace links is the real one;
* arXiv ids are unique fakes, `YYMM.NNNNN` from the paper's day.

Deterministic from a seed: `days(seed=1)` yields the same digests every time,
on any machine (it uses only `random.Random`). Days hold `per_day` papers
(default a uniform 20–50, like the real producers).

    from benchmarks.synth import Synth
    synth = Synth.from_corpus()
    for digest in synth.days(10_000, seed=1):      # storage.models.Digest, one per day
        ...
    synth.write_markdown(Path("benchmarks/data/md-10k"), 10_000)   # archive/YYYY/MM/DD.md files
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import pathlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from storage.models import Digest, Paper

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
START_DAY = dt.date(2000, 1, 3)


def corpus_files(corpus: pathlib.Path = CORPUS) -> list[pathlib.Path]:
    """Every digest file of the real corpus (markdown and JSON), sorted."""
    return sorted(p for p in corpus.rglob("*") if p.suffix in (".md", ".json") and p.name != "README.md")


class _Weighted:
    """Draws from a Counter with its frequencies (cumulative weights + bisect)."""

    def __init__(self, counts: Counter) -> None:
        self.items = sorted(counts, key=lambda item: (-counts[item], str(item)))
        self.cumulative = list(itertools.accumulate(counts[item] for item in self.items))

    def draw(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


class _Chain:
    """A word-bigram chain: successor lists hold repeats, so a uniform choice is frequency-weighted."""

    def __init__(self, texts: list[str]) -> None:
        self.next: dict[str, list[str]] = defaultdict(list)
        self.starts: list[str] = []
        self.lengths: list[int] = []
        for text in texts:
            words = text.replace("|", "/").split()
            if not words:
                continue
            self.starts.append(words[0])
            self.lengths.append(len(words))
            for a, b in zip(words, words[1:]):
                self.next[a].append(b)
        self.next = dict(self.next)

    def walk(self, rng: random.Random) -> str:
        length = rng.choice(self.lengths)
        word = rng.choice(self.starts)
        out = [word]
        choice, nxt, starts = rng.choice, self.next, self.starts
        for _ in range(length - 1):
            followers = nxt.get(word)
            word = choice(followers) if followers else choice(starts)
            out.append(word)
        return " ".join(out)


@dataclass
class Synth:
    """The statistics of the real corpus, and generators that reproduce them."""

    titles: _Chain
    summaries: _Chain
    tags: _Weighted
    tags_per_paper: list[int]
    authors: _Weighted
    authors_per_paper: list[int]
    github_share: float
    huggingface_share: float
    word_doc_freq: Counter = field(default_factory=Counter)  # real papers containing each lowercase word
    real_papers: int = 0

    @classmethod
    def from_corpus(cls, corpus: pathlib.Path = CORPUS) -> Synth:
        from digests.parse import parse_file

        papers = [paper for path in corpus_files(corpus) for paper in parse_file(path).papers]
        doc_freq: Counter = Counter()
        for paper in papers:
            doc_freq.update({w.strip(".,;:()[]\"'").lower() for w in (paper.title + " " + paper.summary).split()})
        return cls(
            titles=_Chain([p.title for p in papers]),
            summaries=_Chain([p.summary for p in papers]),
            tags=_Weighted(Counter(tag for p in papers for tag in p.tags)),
            tags_per_paper=[len(set(p.tags)) for p in papers],
            authors=_Weighted(Counter(name.replace("|", "/") for p in papers for name in p.authors if name.strip())),
            authors_per_paper=[len(p.authors) for p in papers],
            github_share=sum(bool(p.github_urls) for p in papers) / len(papers),
            huggingface_share=sum(bool(p.huggingface_urls) for p in papers) / len(papers),
            word_doc_freq=doc_freq,
            real_papers=len(papers),
        )

    # --- papers and days ------------------------------------------------------------------------

    def paper(self, rng: random.Random, arxiv_id: str) -> Paper:
        tags: list[str] = []
        wanted = min(rng.choice(self.tags_per_paper), len(self.tags.items))
        while len(tags) < wanted:
            tag = self.tags.draw(rng)
            if tag not in tags:
                tags.append(tag)
        authors = [self.authors.draw(rng) for _ in range(rng.choice(self.authors_per_paper))]
        title = self.titles.walk(rng)
        github = (
            [f"https://github.com/{rng.choice(('lab', 'org', 'team'))}{rng.randrange(10_000)}/{arxiv_id}"]
            if rng.random() < self.github_share
            else []
        )
        huggingface = [f"https://huggingface.co/papers/{arxiv_id}"] if rng.random() < self.huggingface_share else []
        return Paper(
            arxiv_id=arxiv_id,
            title=title,
            url=f"https://arxiv.org/abs/{arxiv_id}",
            authors=authors,
            summary=self.summaries.walk(rng),
            tags=tags,
            github_urls=github,
            huggingface_urls=huggingface,
        )

    def days(
        self, total: int, *, seed: int = 1, per_day: tuple[int, int] = (20, 50), start: dt.date = START_DAY
    ) -> Iterator[Digest]:
        """Digests of consecutive days from `start` holding `total` papers in all, per_day=(min, max) each."""
        rng = random.Random(seed)
        month_counter: Counter = Counter()
        day, made = start, 0
        while made < total:
            count = min(rng.randint(*per_day), total - made)
            papers = []
            for _ in range(count):
                month = f"{day:%y%m}"
                month_counter[month] += 1
                # Five-digit serials; a month past 99999 papers borrows a sixth digit (still unique).
                papers.append(self.paper(rng, f"{month}.{month_counter[month]:05d}"))
            made += count
            yield Digest(date=day, papers=papers)
            day += dt.timedelta(days=1)

    def day_list(self, total: int, **kwargs) -> list[Digest]:
        return list(self.days(total, **kwargs))

    # --- query terms drawn from the same statistics ---------------------------------------------

    def word_with_doc_freq(self, wanted: float) -> str:
        """A plain alphabetic word (≥ 6 letters) in about `wanted` of real papers (a share, 0–1), deterministic."""
        target = wanted * self.real_papers
        candidates = sorted(
            (abs(freq - target), word)
            for word, freq in self.word_doc_freq.items()
            if word.isascii() and word.isalpha() and len(word) >= 6
        )
        return candidates[0][1]

    # --- markdown -------------------------------------------------------------------------------

    @staticmethod
    def markdown(digest: Digest) -> str:
        """A digest in the timlrx producer's layout (see tests/data/corpus/README.md)."""
        lines = [
            f"## Papers for {digest.date.isoformat()}",
            "",
            "| Title | Authors | Summary | Classification | GitHub URLs | HuggingFace URLs |",
            "|-------|---------|---------|----------------|-------------|-----------------|",
        ]
        for p in digest.papers:
            links = lambda urls: ", ".join(f"[Link]({u})" for u in urls) or "N/A"  # noqa: E731
            lines.append(
                f"| [{p.title}]({p.url}) | {', '.join(p.authors)} | {p.summary} | {p.tags!r} "
                f"| {links(p.github_urls)} | {links(p.huggingface_urls)} |"
            )
        return "\n".join(lines) + "\n"

    def write_markdown(self, folder: pathlib.Path, total: int, *, seed: int = 1, **kwargs) -> list[pathlib.Path]:
        """`archive/YYYY/MM/DD.md` files under `folder` holding `total` papers; returns their paths."""
        written = []
        for digest in self.days(total, seed=seed, **kwargs):
            path = folder / "archive" / f"{digest.date:%Y/%m/%d}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.markdown(digest), encoding="utf-8")
            written.append(path)
        return written


if __name__ == "__main__":  # python -m benchmarks.synth N FOLDER: write N papers as markdown files
    import sys

    count, folder = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    files = Synth.from_corpus().write_markdown(folder, count)
    print(f"{len(files)} digest files, {count} papers, under {folder}")
