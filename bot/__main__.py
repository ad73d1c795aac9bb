"""The `paperbot` command line: run the bot, and work with the paper library from a terminal."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Annotated, TypeVar

import aiosqlite
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bot import console as terminal
from bot import health, logs
from bot.permissions import invite_url, needed_permissions
from digests import exports
from settings import DEFAULT_CONFIG, ENV_PREFIX, ConfigError, Settings, discord_token, load_settings
from digests.fetcher import validate_sources
from digests.ingest import FileOutcome, IngestSummary, ingest_locations
from digests.parse import DigestFormatError, parse_file
from digests.sources import SourceError, expand
from storage import db, papers
from storage.errors import CorruptDatabase, DatabaseError, NotALibrary
from storage.search_query import QueryError

app = typer.Typer(
    help="Paperbot: daily AI-paper digests as a searchable library, on Discord and here.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def package_version() -> str:
    """The version in pyproject.toml, the one place it is written, as installed."""
    try:
        return metadata.version("paperbot")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def show_version(value: bool) -> None:
    if value:
        print(f"paperbot {package_version()}")
        raise typer.Exit()


@app.callback()
def common(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=show_version, is_eager=True)
    ] = False,
) -> None:
    """Paperbot: daily AI-paper digests as a searchable library, on Discord and here."""

out = Console(highlight=False, soft_wrap=True, markup=False)  # digest text is not rich markup
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file (default: ./config.toml when present)."),
]
T = TypeVar("T")


_json_errors = False  # log_format = "json": errors too are JSON lines, for the log collector


def fail(message: str) -> typer.Exit:
    if _json_errors:
        sys.stderr.write(logs.JsonFormatter().format(logging.makeLogRecord(
            {"name": "paperbot", "levelname": "ERROR", "levelno": logging.ERROR, "msg": message})) + "\n")
    else:
        err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(1)


def settings_from(config: Path | None) -> Settings:
    global _json_errors
    try:
        settings = load_settings(config)
    except ConfigError as error:
        raise fail(str(error)) from None
    logs.setup(settings.log_level, settings.log_format)
    _json_errors = settings.log_format == "json"
    return settings


def with_library(config: Path | None, work: Callable[[aiosqlite.Connection], Awaitable[T]],
                 settings: Settings | None = None) -> T:
    """Open (and migrate) the configured database, run `work`, close it; a library problem is one line."""
    settings = settings or settings_from(config)

    async def main() -> T:
        conn = await db.connect(settings.database.target)
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(main())
    except DatabaseError as error:
        raise fail(str(error)) from None


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2025-02-20", param_hint=option) from None


async def ingest_with_progress(conn: aiosqlite.Connection, targets: list[str], producer: str | None) -> IngestSummary:
    try:
        locations = expand(targets, producer)
    except SourceError as error:
        raise fail(str(error)) from None
    columns = (TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=len(locations))

        def report(outcome: FileOutcome) -> None:
            progress.update(task, advance=1, description=Path(outcome.location.target).name)
            if outcome.error:
                progress.console.print(f"[red]failed[/red] {escape(outcome.error)}", highlight=False)
            for problem in outcome.problems:
                progress.console.print(
                    f"[yellow]problem[/yellow] {escape(outcome.location.target)}:{problem.line}: {escape(problem.message)}",
                    highlight=False,
                )

        return await ingest_locations(conn, locations, on_file=report)


@app.command()
def ingest(
    targets: Annotated[list[str], typer.Argument(help="Digest files, folders (recursive) or http(s) URLs.")],
    producer: Annotated[str | None, typer.Option(help="Producer name (default: from the path).")] = None,
    config: ConfigOption = None,
) -> None:
    """Parse digests and store them in the library; re-ingesting is safe."""

    async def work(conn: aiosqlite.Connection) -> IngestSummary:
        return await ingest_with_progress(conn, targets, producer)

    summary = with_library(config, work)
    out.print(summary.describe())
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def parse(
    files: Annotated[list[Path], typer.Argument(help="Digest files (.md or producers' .json).")],
) -> None:
    """Print each digest as one JSON object per line: date, papers, problems."""
    unreadable = 0
    for path in files:
        try:
            digest = parse_file(path)
        except (OSError, DigestFormatError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            err.print(f"error: cannot read {path}: {reason}", markup=False, highlight=False)
            unreadable += 1
            continue
        sys.stdout.write(json.dumps(digest.to_json(), ensure_ascii=False) + "\n")
    if unreadable:
        raise typer.Exit(1)


@app.command()
def search(
    words: Annotated[list[str], typer.Argument(
        metavar="QUERY...",
        help='Words, "a phrase", prefix*, -excluded, a OR b. Put `--` before a query that starts with '
             'an exclusion: `paperbot search -- -video diffusion`.')],
    tag: Annotated[str | None, typer.Option(help="Only papers with this tag.")] = None,
    since: Annotated[str | None, typer.Option(help="Only digests on or after this day.")] = None,
    until: Annotated[str | None, typer.Option(help="Only digests on or before this day.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    config: ConfigOption = None,
) -> None:
    """Full-text search over titles, authors, summaries and tags, best matches first."""
    query = " ".join(words)
    since_day, until_day = parse_day(since, "--since"), parse_day(until, "--until")

    async def work(conn: aiosqlite.Connection) -> None:
        try:
            page = await papers.search(conn, query, tag=tag, since=since_day, until=until_day, limit=limit)
        except QueryError as error:
            raise fail(str(error)) from None
        if not page.hits:
            raise fail(f"no papers match {query!r}" + (f" with tag {tag!r}" if tag else ""))
        out.print(terminal.search_results(page))

    with_library(config, work)


@app.command()
def show(
    arxiv_id: Annotated[str, typer.Argument(help="An arXiv id, or an arXiv/HuggingFace URL.")],
    config: ConfigOption = None,
) -> None:
    """One paper in full."""
    from storage.models import arxiv_id_from

    paper_id = arxiv_id_from(arxiv_id)
    if paper_id is None:
        raise fail(f"{arxiv_id!r} is not an arXiv id (like 2502.13923) or an arXiv/HuggingFace URL")

    async def work(conn: aiosqlite.Connection) -> None:
        paper = await papers.get_paper(conn, paper_id)
        if paper is None:
            raise fail(f"paper {paper_id} is not in the library")
        out.print(terminal.paper_text(paper))

    with_library(config, work)


@app.command()
def tags(config: ConfigOption = None) -> None:
    """Every tag with its number of papers, most used first."""

    async def work(conn: aiosqlite.Connection) -> None:
        for tag in await papers.tag_counts(conn):
            out.print(f"{tag.count:6d}  {tag.name}", markup=False)

    with_library(config, work)


class FormatOption(str, Enum):
    bibtex = "bibtex"
    csv = "csv"
    json = "json"


@app.command()
def export(
    query: Annotated[str | None, typer.Option("--query", "-q", help='Papers matching a search (best first).')] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Every paper with this tag (newest first).")] = None,
    format: Annotated[FormatOption, typer.Option("--format", "-f", help="The file format.")] = FormatOption.bibtex,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    config: ConfigOption = None,
) -> None:
    """Export the papers matching --query or carrying --tag as BibTeX, CSV or JSON."""
    if (query is None) == (tag is None):
        raise fail("give exactly one of --query or --tag")

    async def work(conn: aiosqlite.Connection) -> list:
        tag_name = None
        if tag is not None:
            tag_name = await papers.resolve_tag(conn, tag)
            if tag_name is None:
                closest = await papers.closest_tags(conn, tag)
                hint = f"; did you mean {', '.join(closest)}?" if closest else "; `paperbot tags` lists them"
                raise fail(f"no paper is tagged {tag!r}{hint}")
        try:
            found = (await exports.matching_papers(conn, query=query, tag=tag_name)).papers
        except QueryError as error:
            raise fail(str(error)) from None
        if not found:
            raise fail(f"no papers match {query!r}")
        return found

    found = with_library(config, work)
    text = exports.FORMATS[format.value].render(found)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as error:
        raise fail(f"cannot write {output}: {error.strerror or error}") from None
    err.print(f"wrote {len(found)} papers to {output}", markup=False, highlight=False)


@app.command()
def run(
    config: ConfigOption = None,
    preview: Annotated[bool, typer.Option(
        "--preview", help="Print the latest digest as it would be posted, from a throw-away library.")] = False,
    shards: Annotated[str | None, typer.Option(help="Run only these shards, e.g. 0-3 (a cluster).")] = None,
    shard_count: Annotated[int | None, typer.Option(help="The bot's total number of shards.")] = None,
) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN); without one on a fresh clone, a local preview."""
    settings = settings_from(config)
    if shards is not None or shard_count is not None:
        settings = with_shards(settings, shards, shard_count)
    try:
        validate_sources(settings.sources)
    except ValueError as error:
        raise fail(f"invalid [[sources]] in the configuration: {error}") from None
    token = discord_token()
    if preview or token is None:
        why = None if preview else deployment_evidence(config)
        if why is not None:
            raise fail(terminal.TOKEN_MISSING.format(why=why))
        asyncio.run(preview_latest_digest(settings))
        return
    with_library(config, db.user_version, settings)  # a library problem: one line, before Discord is contacted
    from bot.client import run_bot

    run_bot(settings, token)


def deployment_evidence(config: Path | None) -> str | None:
    """Why this looks like a real deployment (so a missing token is a failure, not a preview), or None.

    A config file or PAPERBOT_* variables are what an admin sets up; a fresh clone has neither.
    """
    if config is not None:
        return f"--config {config}"
    if DEFAULT_CONFIG.is_file():
        return f"{DEFAULT_CONFIG} is present"
    variables = sorted(name for name in os.environ if name.upper().startswith(ENV_PREFIX))
    if variables:
        return f"{variables[0]} is set"
    return None


def with_shards(settings: Settings, shards: str | None, shard_count: int | None) -> Settings:
    """The settings with `--shards`/`--shard-count` in place of `[discord] shard_ids`/`shard_count`."""
    from pydantic import ValidationError

    from bot.shards import parse_shard_ids
    from settings import DiscordSettings

    values = settings.discord.model_dump()
    try:
        if shards is not None:
            values["shard_ids"] = parse_shard_ids(shards)
        if shard_count is not None:
            values["shard_count"] = shard_count
        discord_settings = DiscordSettings(**values)
    except ValueError as error:  # ValidationError is one
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise fail(f"invalid --shards/--shard-count: {reason}") from None
    return settings.model_copy(update={"discord": discord_settings})


async def preview_latest_digest(settings: Settings) -> None:
    """Ingest the sample and configured folders into a throw-away library, then print the latest day.

    Never the configured library: a preview must not fill a real deployment with sample papers.
    """
    folders = [str(s.folder) for s in settings.sources if s.folder]
    if settings.console.sample_folder.is_dir():
        folders.append(str(settings.console.sample_folder))
    with tempfile.TemporaryDirectory(prefix="paperbot-preview-") as scratch:
        library = Path(scratch) / "preview.db"
        err.print(terminal.NO_TOKEN_HELP.format(library=library), markup=False, highlight=False)
        conn = await db.connect(library)
        try:
            if folders:
                out.print((await ingest_with_progress(conn, folders, None)).describe())
            day = await papers.latest_day(conn)
            if day is None:
                raise fail("no digests to preview: set [console] sample_folder or a [[sources]] folder")
            out.print(terminal.digest_preview(day, await papers.papers_on_day(conn, day)))
        finally:
            await conn.close()


def application_id_from(token: str) -> int | None:
    """A bot token's first part is its user id (the application's id), base64-encoded."""
    first = token.split(".", 1)[0]
    try:
        return int(base64.b64decode(first + "=" * (-len(first) % 4), validate=True))
    except (ValueError, binascii.Error):
        return None


@app.command()
def invite(
    client_id: Annotated[int | None, typer.Option(
        "--client-id", help="The application id (default: read from DISCORD_TOKEN).")] = None,
    forum_tags: Annotated[bool, typer.Option(
        "--forum-tags", help="Also let it create forum tags (/digest setup create_forum_tags:true).")] = False,
) -> None:
    """Print the link that adds the bot to a server, with exactly the permissions its features use."""
    if client_id is None:
        token = discord_token()
        client_id = application_id_from(token.get_secret_value()) if token else None
    if client_id is None:
        raise fail("give --client-id (the Application ID on the developer portal's General Information page), "
                   "or set DISCORD_TOKEN")
    permissions = needed_permissions(forum_tags=forum_tags)
    out.print(invite_url(client_id, permissions))
    granted = ", ".join(name.replace("_", " ").title() for name, on in permissions if on)
    err.print(f"permissions {permissions.value}: {granted}; no privileged intents", markup=False, highlight=False)


@app.command()
def sync(config: ConfigOption = None) -> None:
    """Sync the slash commands to Discord now, even if they look unchanged since the last sync."""
    settings = settings_from(config)
    token = discord_token()
    if token is None:
        raise fail("DISCORD_TOKEN is not set: syncing commands needs the bot's token")
    from bot.client import force_sync

    logs.setup(settings.log_level, settings.log_format, secrets=(token.get_secret_value(),))
    try:
        count = asyncio.run(force_sync(settings, token))
    except DatabaseError as error:
        raise fail(str(error)) from None
    except Exception as error:  # LoginFailure, network: the reason in one line
        raise fail(f"sync failed: {type(error).__name__}: {error}") from None
    out.print(f"synced {count} commands")


@app.command("health")
def health_check(
    config: ConfigOption = None,
    max_age: Annotated[float, typer.Option(help="Seconds after which the heartbeat counts as stale.")]
    = health.STALE_AFTER_SECONDS,
) -> None:
    """Exit 0 if the running bot is connected and its scheduler runs (for HEALTHCHECK and monitors)."""
    settings = settings_from(config)
    problem = health.problem(health.heartbeat_path(settings.database.files), stale_after=max_age)
    if problem is not None:
        raise fail(f"unhealthy: {problem}")
    out.print("healthy: connected to Discord, scheduler running")


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None) -> None:
    """Create the database or bring it to the current schema."""
    settings = settings_from(config)
    version = with_library(config, db.user_version, settings)
    out.print(f"{settings.database.describe()}: schema version {version} (current)")


@db_app.command("check")
def db_check(config: ConfigOption = None) -> None:
    """Check the database's integrity and foreign keys; exit 1 when anything is wrong."""
    settings = settings_from(config)
    if settings.database.is_postgres:
        raise fail("db check reads a SQLite file; PostgreSQL keeps its own integrity (use amcheck or pg_dump)")

    async def main() -> list[str]:
        try:
            conn = await db.connect(settings.database.target)
        except (CorruptDatabase, NotALibrary) as error:
            return [str(error)]
        try:
            return await db.integrity_check(conn)
        finally:
            await conn.close()

    try:
        problems = asyncio.run(main())
    except DatabaseError as error:
        raise fail(str(error)) from None
    for problem in problems:
        err.print(f"damaged: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(1)
    out.print(f"{settings.database.describe()}: ok")


@db_app.command("backup")
def db_backup(
    destination: Annotated[Path, typer.Argument(help="The backup file to write.")],
    config: ConfigOption = None,
) -> None:
    """Copy the database safely, even while the bot runs."""
    if destination.exists():
        raise fail(f"{destination} already exists; choose a new file name")
    if settings_from(config).database.is_postgres:
        raise fail("db backup copies a SQLite file; back up PostgreSQL with pg_dump")

    async def work(conn: aiosqlite.Connection) -> None:
        await db.backup(conn, destination)

    with_library(config, work)
    out.print(f"backed up to {destination}")


@db_app.command("copy")
def db_copy(
    source: Annotated[str, typer.Argument(help="The library to copy: a file, sqlite:///path or postgresql://…")],
    destination: Annotated[str, typer.Argument(help="An empty library to fill, on the other backend.")],
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows read and written at a time.")] = 2000,
) -> None:
    """Copy a whole library into an empty one, e.g. from SQLite into PostgreSQL (stop the bot first).

    One transaction on the destination: a failed copy leaves it empty. Passwords belong in the
    URL given here (or PGPASSWORD), never in a file the bot reads as plain config.
    """
    from storage import copy

    def show(table: copy.TableCopy) -> None:
        err.print(f"{table.name:<16} {table.rows:>10,} rows", markup=False, highlight=False)

    try:
        report = asyncio.run(copy.copy_library(source, destination, batch_rows=batch_rows, on_table=show))
    except DatabaseError as error:
        raise fail(str(error)) from None
    out.print(f"copied {report.rows:,} rows in {len(report.tables)} tables ({report.count('papers'):,} papers, "
              f"{report.count('digest_channels'):,} digest channels, {report.count('subscribers'):,} subscribers) "
              f"from {report.source} to {report.destination}; counts checked, schema version {report.schema_version}",
              markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
