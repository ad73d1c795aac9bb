"""The bot under chaos: the real Paperbot in a process of its own (so it can be SIGKILLed), on a simulated clock.

Run as `python -m tests.chaos.botproc --config FILE --start ISO` with DISCORD_TOKEN set. It is
`bot.client.Paperbot` unchanged except for *when*: APScheduler only knows the wall clock, so its
scheduler is paused once started, and this process fires the very same jobs (the fetch job, one
job per digest channel) itself whenever the orchestrator moves the simulated clock, in time order,
exactly as APScheduler would have: a job still running when it is due again is skipped, and a job
whose time passed while the process was dead is not run on start (APScheduler forgets it too).

Protocol, one line each way. stdin: `advance ISO` (move the clock, firing the jobs due on the
way). stdout: `ready` (connected, resumed and caught up), `at ISO` (the advance is done; every job
it fired has finished, except the fetch job, which may wait for a late digest), `done JOB` (a
fetch job finished: the daily one is `done fetch`). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.triggers.date import DateTrigger

from bot.client import Paperbot, point_at
from settings import discord_token, load_settings
from bot.scheduler import FETCH_JOB

log = logging.getLogger("chaos.botproc")
TICK = timedelta(microseconds=1)


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class SimClock:
    """What "now" is for the bot; only the orchestrator moves it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current


class ChaosBot(Paperbot):
    def __init__(self, settings, clock: SimClock) -> None:
        super().__init__(settings, guild_ready_timeout=0.01)
        self.clock = clock
        self.caught_up = asyncio.Event()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause before a re-IDENTIFY: the fake gateway has no identify rate limit."""

    async def setup_hook(self) -> None:
        await super().setup_hook()
        self.daily.clock = self.clock.now

    async def on_ready(self) -> None:
        await super().on_ready()  # the real start: resume unfinished posts, catch up on missed days
        if self.daily is not None and self.daily.scheduler.running:
            self.daily.scheduler.pause()  # the jobs stay; this process fires them on the simulated clock
        if not self.caught_up.is_set():
            self.caught_up.set()
            emit("ready")


class JobRunner:
    """Fires the paused scheduler's jobs for a stretch of simulated time."""

    def __init__(self, bot: ChaosBot) -> None:
        self.bot = bot
        self.running: dict[str, asyncio.Task] = {}

    def due(self, start: datetime, end: datetime) -> list[tuple[datetime, object]]:
        """(fire time, job) for every firing in (start, end], oldest first."""
        fired = []
        for job in self.bot.daily.scheduler.get_jobs():
            moment = job.trigger.get_next_fire_time(None, start + TICK)
            if isinstance(job.trigger, DateTrigger):  # one-off: due now if its (wall-clock) time is past
                moment = job.trigger.run_date
            while moment is not None and moment <= end:
                fired.append((moment, job))
                moment = job.trigger.get_next_fire_time(moment, moment + TICK)
        return sorted(fired, key=lambda item: (item[0], item[1].id))

    async def advance(self, end: datetime) -> None:
        clock = self.bot.clock
        for moment, job in self.due(clock.current, end):
            clock.current = max(clock.current, moment)  # a one-off job added "now" (wall clock) runs now
            if job.trigger.get_next_fire_time(moment, moment + TICK) is None:
                job.remove()  # a one-off job runs once, as APScheduler removes it after its run
            previous = self.running.get(job.id)
            if previous is not None and not previous.done():
                log.warning("job %s still running at %s: skipped (max_instances)", job.id, moment)
                continue
            log.info("simulated %s: running job %s", moment.isoformat(), job.id)
            task = asyncio.create_task(self._run(job), name=job.id)
            self.running[job.id] = task
            if not job.id.startswith(FETCH_JOB):
                await task  # a channel's post; a fetch job may wait hours (simulated) for a late digest
        clock.current = max(clock.current, end)

    async def _run(self, job) -> None:
        try:
            await job.func(*job.args, **job.kwargs)
        except Exception:  # APScheduler logs a failed job and carries on; so do we
            log.exception("job %s failed", job.id)
        if job.id.startswith(FETCH_JOB):
            emit(f"done {job.id}")


async def drive(bot: ChaosBot) -> None:
    await bot.caught_up.wait()
    runner = JobRunner(bot)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "advance":
            await runner.advance(datetime.fromisoformat(argument))
            emit(f"at {bot.clock.current.isoformat()}")


async def main(config: Path, start: datetime) -> None:
    settings = load_settings(config)
    point_at(settings.discord)
    bot = ChaosBot(settings, SimClock(start))
    token = discord_token()
    assert token is not None, "DISCORD_TOKEN must be set"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runner = asyncio.create_task(bot.start(token.get_secret_value()))
    driver = asyncio.create_task(drive(bot))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({runner, driver, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await bot.close()
    for task in done:
        task.result()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--start", type=datetime.fromisoformat, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(args.config, args.start))
