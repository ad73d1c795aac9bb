"""What must hold after the chaos, read from what reached the fake Discord and from the library.

Each invariant is one row with a figure; a row that does not hold lists what broke it in
`failures` (capped), naming the channel, user, day or interaction so the seed can be replayed and
the case found in the bot's log.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from storage import channels, db, fetches, outbox
from storage import subscriptions as subs
from storage.papers import papers_on_day
from testing import FakeDiscord

if TYPE_CHECKING:
    from tests.chaos.run import Chaos

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # /digest roundup's
INTERNAL_ERROR = "something went wrong on my side"
NOT_ADMIN = "Manage Server"
ROLE_MENTION = re.compile(r"<@&(\d+)>")
USER_MENTION = re.compile(r"<@!?(\d+)>")
MESSAGE_ROUTES = {
    ("POST", "/channels/{channel_id}/messages"), ("POST", "/webhooks/{webhook_id}/{token}"),
    ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"), ("POST", "/channels/{channel_id}/threads"),
}
CALLBACK = ("POST", "/interactions/{interaction_id}/{token}/callback")
MAX_LISTED = 40


@dataclass
class Row:
    name: str
    figure: str
    ok: bool


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    injected: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def row(self, name: str) -> Row:
        return next(row for row in self.rows if row.name == name)

    def add(self, name: str, figure: str, problems: list[str]) -> None:
        self.rows.append(Row(name, figure, not problems))
        self.failures += [f"{name}: {problem}" for problem in problems[:MAX_LISTED]]


def _text(body: dict[str, Any]) -> str:
    parts = [body.get("content") or ""]
    for embed in body.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
    return "\n".join(parts)


def _reply_text(handle) -> str:
    """Everything the member saw: the callback's message, edits and follow-ups."""
    bodies = [(handle.callback or {}).get("data") or {}] + list(handle.edits) + list(handle.followups)
    return "\n".join(_text(body) for body in bodies)


def is_digest_message(message: dict[str, Any], bot_id: int) -> bool:
    """Posted by the bot through the channel API (not an interaction reply)."""
    return int(message["author"]["id"]) == bot_id and "webhook_id" not in message


async def check(chaos: Chaos, fake: FakeDiscord) -> Report:
    report = Report(injected=Counter(chaos.faults.counts))
    conn = await db.connect(chaos.db_path)
    try:
        in_library = {day: bool(await papers_on_day(conn, day)) for day in chaos.days}
        fetch_ended = {day: any(r.status != "waiting" for r in await fetches.fetches_for_day(conn, day))
                       for day in chaos.days}  # the fetch came to an end: ingested, missing or failed
        await _source_days(chaos, conn, in_library, report)
        await _channel_days(chaos, fake, conn, in_library, fetch_ended, report)
        await _roundup_weeks(chaos, conn, report)
        await _dm_days(chaos, fake, conn, in_library, report)
        _interactions(chaos, report)
        await _admin_state(chaos, conn, report)
        await _subscriptions_kept(chaos, conn, report)
        _mentions(chaos, fake, report)
        problems = await db.integrity_check(conn)
    finally:
        await conn.close()
    backups_bad = [f"{path}: {issues}" for path, issues in chaos.faults.backups if issues]
    report.add("PRAGMA integrity_check (library and backups taken while running)",
               f"library {'ok' if not problems else 'BROKEN'}; {len(chaos.faults.backups) - len(backups_bad)}"
               f"/{len(chaos.faults.backups)} backups ok", problems + backups_bad)
    report.add("every request body is one Discord's API schema accepts",
               f"{len(fake.requests)} requests, {len(fake.spec_violations)} rejected",
               [str(v) for v in fake.spec_violations])
    report.add("clean stop on SIGTERM", f"exit code {chaos.exit_code}",
               [] if chaos.exit_code == 0 else [f"exit code {chaos.exit_code}"])
    return report


async def _source_days(chaos: Chaos, conn, in_library: dict[date, bool], report: Report) -> None:
    lost, unexplained = [], []
    for plan in chaos.plans:
        log = await fetches.fetches_for_day(conn, plan.day)
        statuses = ", ".join(f"{r.status} ({r.detail})" for r in log) or "no fetch recorded"
        if plan.published and plan.has_papers and not in_library[plan.day]:
            lost.append(f"{plan.day} ({plan.kind}, good file at {plan.hour}h UTC) is not in the library; "
                        f"fetch log: {statuses}")
        if plan.published and not plan.has_papers and not any(r.status == "ingested" for r in log):
            lost.append(f"{plan.day} ({plan.kind}, an empty digest) is not recorded as ingested: {statuses}")
        if not plan.published and in_library[plan.day]:
            unexplained.append(f"{plan.day} ({plan.kind}) was stored although its file was never whole")
        if not plan.published and not any(r.status in ("missing", "failed") for r in log):
            unexplained.append(f"{plan.day} ({plan.kind}) has no final 'missing'/'failed' record: {statuses}")
    published = [p for p in chaos.plans if p.published]
    report.add("every published digest reaches the library",
               f"{len(published) - len(lost)}/{len(published)} days", lost)
    others = len(chaos.plans) - len(published)
    report.add("every unpublished or broken day is recorded with its reason",
               f"{others} days (missing, truncated, garbage, all rows malformed)", unexplained)


async def _channel_days(chaos: Chaos, fake: FakeDiscord, conn, in_library: dict[date, bool],
                        fetch_ended: dict[date, bool], report: Report) -> None:
    tally, problems, duplicates = Counter(), [], []
    ledger_days = chaos.days + [chaos.days[-1] + timedelta(days=1)]
    bot_id = fake.bot_user.id
    messages = [m for m in fake.state.messages.values() if is_digest_message(m, bot_id)]
    for setup in chaos.town.digests:
        row = await channels.get_channel(conn, setup.channel.id)
        name = f"#{setup.channel.name}"
        if row is None:
            problems.append(f"{name} no longer gets the digest, though no admin removed it")
            continue
        ledger_ids, where = set(), {setup.channel.id}
        # The channel's own ledger may also hold a day just before the run: a channel set up early
        # on the first simulated day is, in a zone behind UTC, set up on the day before.
        recorded = await outbox.periods(conn, "digest", setup.channel.id, date.min, ("planned", "done", "skipped"))
        for day in sorted(set(ledger_days) | recorded):
            delivery = await outbox.get(conn, "digest", setup.channel.id, day)
            if delivery is not None:
                ledger_ids |= {m.message_id for m in delivery.messages if m.message_id is not None}
                where |= {delivery.thread_id} if delivery.thread_id else set()
            if day not in in_library:
                continue
            if delivery is None:
                if row.broken_reason:
                    tally["not posted: channel broken"] += 1
                elif in_library[day]:
                    problems.append(f"{name} {day}: digest in the library, nothing posted or recorded")
                elif fetch_ended[day]:
                    tally["no digest that day (fetch log says why)"] += 1
                else:
                    problems.append(f"{name} {day}: nothing posted, and the day's fetch never came to an end")
            elif delivery.status == "planned" and row.broken_reason:
                tally["not posted: channel broken"] += 1  # kept pending: resumes once an admin fixes the channel
            elif delivery.status == "planned":
                note = "" if in_library[day] else " (an empty-day note)"
                problems.append(f"{name} {day}: still pending at the end{note} "
                                f"({sum(m.message_id is None for m in delivery.messages)} messages unsent)")
            elif delivery.status == "skipped" and not delivery.reason:
                problems.append(f"{name} {day}: skipped without a reason")
            else:
                tally["delivered" if delivery.status == "done" else delivery.status] += 1
        # The weekly roundups are in the same ledger. Channels are set up with the wall clock's time,
        # years before the simulated days, so the week before the first simulated day is owed too;
        # and in zones ahead of UTC the day after the last one has begun.
        for day in [chaos.days[0] - timedelta(days=n) for n in range(7, 0, -1)] + ledger_days:
            roundup = await outbox.get(conn, "roundup", setup.channel.id, day)
            if roundup is not None and roundup.messages[0].message_id is not None:
                ledger_ids.add(roundup.messages[0].message_id)
        posted = {int(m["id"]) for m in messages if int(m["channel_id"]) in where}
        duplicates += [f"{name}: message {i} is not in the ledger (a double post?)"
                       for i in sorted(posted - ledger_ids)]
        duplicates += [f"{name}: ledger message {i} never reached Discord" for i in sorted(ledger_ids - posted)]
    total = len(chaos.town.digests) * len(chaos.days)
    report.add("every (channel, day) delivered once or skipped with a reason",
               f"{total} channel-days: " + ", ".join(f"{n} {what}" for what, n in sorted(tally.items())), problems)
    report.add("no channel message posted twice or outside the ledger",
               f"{sum(1 for m in messages if m.get('guild_id'))} channel messages checked", duplicates)


async def _roundup_weeks(chaos: Chaos, conn, report: Report) -> None:
    """Each roundup time that passed (with an hour to spare) has its week posted, or skipped with a reason."""
    tally, problems = Counter(), []
    for setup in chaos.town.digests:
        if setup.roundup is None:
            continue
        weekday, at = setup.roundup
        for day in chaos.days:
            moment = datetime.combine(day, time.fromisoformat(at), ZoneInfo(setup.zone))
            if day.weekday() != WEEKDAYS.index(weekday) or moment > chaos.now - timedelta(hours=1):
                continue
            roundup = await outbox.get(conn, "roundup", setup.channel.id, day)
            if roundup is not None and roundup.messages[0].message_id is not None:
                tally["posted"] += 1
            elif roundup is not None and roundup.status == "skipped" and roundup.reason:
                tally["skipped"] += 1
            elif setup.channel.id in chaos.faults.broken_channels:
                tally["not posted: channel broken"] += 1
            else:
                problems.append(f"#{setup.channel.name} week ending {day}: no roundup posted "
                                f"({'planned, not sent' if roundup else 'never planned'})")
    report.add("every (channel, week) roundup posted once or skipped with a reason",
               f"{sum(tally.values()) + len(problems)} channel-weeks: "
               + ", ".join(f"{n} {what}" for what, n in sorted(tally.items())), problems)


async def _dm_days(chaos: Chaos, fake: FakeDiscord, conn, in_library: dict[date, bool], report: Report) -> None:
    tally, problems, duplicates = Counter(), [], []
    bot_id = fake.bot_user.id
    ledger_days = chaos.days + [chaos.days[-1] + timedelta(days=1)]
    notices_allowed = Counter()
    for setup in chaos.town.digests:
        if setup.channel.id in chaos.faults.broken_channels:
            notices_allowed[chaos.town.owners[setup.guild.id].id] += 1
    everyone = {u.id for u in chaos.town.subscribers} | {u.id for u in chaos.town.mallory.values()}
    for user_id in sorted(everyone | set(notices_allowed)):
        subscriber = await subs.get_subscriber(conn, user_id)
        ledger_ids = set()
        for day in ledger_days:
            delivery = await outbox.get(conn, "dm", user_id, day)
            if delivery is not None:
                ledger_ids |= {m.message_id for m in delivery.messages if m.message_id is not None}
            if day not in in_library or not in_library[day] or user_id not in {u.id for u in chaos.town.subscribers}:
                continue
            if delivery is None:
                if subscriber is None:
                    tally["no subscription left"] += 1
                elif subscriber.dm_closed:
                    tally["DMs closed"] += 1
                elif subscriber.left_servers:
                    tally["paused: left every server"] += 1
                elif subscriber.paused:
                    tally["paused"] += 1
                else:
                    problems.append(f"user {user_id} {day}: digest in the library, no DM sent or recorded")
            elif delivery.status == "planned":
                problems.append(f"user {user_id} {day}: DM still pending at the end")
            elif delivery.status == "skipped" and not delivery.reason:
                problems.append(f"user {user_id} {day}: skipped without a reason")
            else:
                tally["delivered" if delivery.status == "done" else f"skipped ({delivery.reason})"] += 1
        dm = fake.state.dm_channels.get(user_id)
        posted = {int(m["id"]) for m in fake.state.messages.values()
                  if dm is not None and int(m["channel_id"]) == dm and is_digest_message(m, bot_id)}
        extra = posted - ledger_ids
        if len(extra) > notices_allowed[user_id]:
            duplicates.append(f"user {user_id}: {len(extra)} DMs outside the ledger "
                              f"(allowed: {notices_allowed[user_id]} broken-channel notices)")
        duplicates += [f"user {user_id}: ledger DM {i} never reached Discord" for i in sorted(ledger_ids - posted)]
    published_days = sum(1 for day in in_library if in_library[day])
    report.add("every (user, day) DM sent once or skipped with a reason",
               f"{len(chaos.town.subscribers) * published_days} user-days: "
               + ", ".join(f"{n} {what}" for what, n in sorted(tally.items())), problems)
    report.add("no DM sent twice or outside the ledger; each broken channel told once at most",
               f"{len(everyone | set(notices_allowed))} users checked", duplicates)


def _interactions(chaos: Chaos, report: Report) -> None:
    kinds = Counter(sent.kind for sent in chaos.sent)
    unanswered = [f"{s.label} {_short(s.options)}" for s in chaos.sent if s.handle.callback is None]
    report.add("every interaction answered",
               f"{len(chaos.sent) - len(unanswered)}/{len(chaos.sent)} ("
               + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + ")", unanswered)
    crashed = [f"{s.label} {_short(s.options)}" for s in chaos.sent if INTERNAL_ERROR in _reply_text(s.handle)]
    report.add("no hostile input ends in an internal error", f"{len(crashed)} internal-error replies", crashed)
    failed_setup = [f"{s.label}: {_reply_text(s.handle)[:120]!r}" for s in chaos.sent
                    if s.kind == "setup" and s.expect.lower() not in _reply_text(s.handle).lower()]
    report.add("admin set-up and subscriptions by slash command succeed",
               f"{kinds['setup'] - len(failed_setup)}/{kinds['setup']}", failed_setup)


async def _admin_state(chaos: Chaos, conn, report: Report) -> None:
    """Non-admins were refused, and the digest settings are exactly what the admins chose."""
    problems = []
    attempts = [s for s in chaos.sent if s.kind == "admin"]
    for sent in attempts:
        text = _reply_text(sent.handle)
        if sent.handle.callback is not None and NOT_ADMIN not in text:
            problems.append(f"{sent.label} by a non-admin was not refused: {text[:120]!r}")
    wanted = {s.channel.id: s for s in chaos.town.digests}
    for row in await channels.list_channels(conn):
        setup = wanted.get(row.channel_id)
        if setup is None:
            problems.append(f"channel {row.channel_id} gets the digest, but no admin set it up")
            continue
        roundup = (WEEKDAYS[row.roundup_weekday], f"{row.roundup_time:%H:%M}") if row.roundup_time else None
        actual = (f"{row.post_time:%H:%M}", row.timezone, row.style, sorted(row.tags), row.empty_day_note, roundup)
        expected = (setup.post_time, setup.zone, setup.style, sorted(setup.tags), setup.empty_day_note, setup.roundup)
        if actual != expected or row.set_up_by != chaos.town.owners[setup.guild.id].id:
            problems.append(f"#{setup.channel.name} settings {actual} by {row.set_up_by}, admin chose {expected}")
    for guild in chaos.town.guilds:
        mapped = {name: role for name, role in (await channels.tag_roles(conn, guild.id)).values()}
        expected = {chaos.town.role_tags[guild.id]: chaos.town.fans[guild.id].id}
        if mapped != expected:
            problems.append(f"server {guild.name}: tag roles {mapped}, admin chose {expected}")
    report.add("no admin change made by a non-admin", f"{len(attempts)} admin commands tried by non-admins", problems)


async def _subscriptions_kept(chaos: Chaos, conn, report: Report) -> None:
    """Every subscriber still follows exactly what they subscribed to, through every kill and restart."""
    made: dict[int, set[tuple[str, str]]] = {user.id: set() for user in chaos.town.subscribers}
    for sent in chaos.sent:
        if sent.kind == "setup" and sent.label.startswith("/subscribe "):
            kind = sent.label.split()[-1]
            made[sent.handle.user.id].add((kind, sent.options[kind]))
    problems = []
    for user_id, wanted in made.items():
        kept = {(s.kind, s.value) for s in await subs.list_subscriptions(conn, user_id)}
        if kept != wanted:
            problems.append(f"user {user_id} follows {sorted(kept)}, subscribed to {sorted(wanted)}")
    report.add("no subscription lost or changed", f"{sum(map(len, made.values()))} subscriptions of "
               f"{len(made)} members", problems)


def _mentions(chaos: Chaos, fake: FakeDiscord, report: Report) -> None:
    """No message can ping @everyone/@here, any user, or a role other than a tag's mapped role in a digest."""
    mapped_roles = {str(role.id) for role in chaos.town.fans.values()}
    implicit, pings, checked = [], [], 0
    for req in fake.requests:
        key = (req.method, req.route)
        if key == CALLBACK:
            body = (req.json or {}).get("data") if (req.json or {}).get("type") in (4, 7) else None
        elif key in MESSAGE_ROUTES:
            body = req.json if isinstance(req.json, dict) else None
            if key[1] == "/channels/{channel_id}/threads" and body:
                body = body.get("message") or body
        else:
            continue
        if not body or not (body.get("content") or body.get("embeds")):
            continue
        checked += 1
        allowed = body.get("allowed_mentions")
        if allowed is None:
            implicit.append(f"{req.method} {req.path}")
            allowed = {"parse": ["everyone", "roles", "users"]}  # Discord's default
        parse = set(allowed.get("parse") or [])
        content = body.get("content") or ""
        if ("@everyone" in content or "@here" in content) and "everyone" in parse:
            pings.append(f"{req.method} {req.path} may ping @everyone: {content[:80]!r}")
        in_digest = key == ("POST", "/channels/{channel_id}/messages")
        for role in ROLE_MENTION.findall(content):
            may_ping = "roles" in parse or role in set(allowed.get("roles") or [])
            if may_ping and not (in_digest and role in mapped_roles):
                pings.append(f"{req.method} {req.path} may ping role {role}: {content[:80]!r}")
        for user in USER_MENTION.findall(content):
            if "users" in parse or user in set(allowed.get("users") or []):
                pings.append(f"{req.method} {req.path} may ping user {user}: {content[:80]!r}")
    report.add("no message pings @everyone, a role or a user it should not", f"{checked} messages checked", pings)
    report.add("every message sets allowed mentions explicitly", f"{checked - len(implicit)}/{checked}", implicit)


def _short(options: dict[str, Any]) -> str:
    shown = {k: (v if not isinstance(v, str) else (v[:40] + "…" if len(v) > 40 else v)) for k, v in options.items()}
    return repr({k: getattr(v, "name", v) for k, v in shown.items()})
