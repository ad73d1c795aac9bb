"""The bot's process as the orchestrator sees it: start, move its clock, SIGKILL, restart, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).parent.parent.parent
READY_TIMEOUT = 90.0
STEP_TIMEOUT = 120.0


class BotProcess:
    """One `tests.chaos.botproc` child at a time; its stderr goes to `log_path` (appended across restarts)."""

    def __init__(self, config: Path, token: str, log_path: Path) -> None:
        self.config = config
        self.env = {**os.environ, "DISCORD_TOKEN": token}
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.fetches_done = 0
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self._fetch_done = asyncio.Event()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self, now: datetime) -> None:
        """Start a process with its clock at `now`; returns before it is ready."""
        self.starts += 1
        self._ready = asyncio.Event()
        self._lines = asyncio.Queue()
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} at simulated {now.isoformat()} =====\n".encode())
        log.flush()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.chaos.botproc", "--config", str(self.config), "--start", now.isoformat(),
            cwd=REPO, env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
        )
        log.close()
        self._reader = asyncio.create_task(self._read(self.process))

    async def start(self, now: datetime) -> None:
        await self.spawn(now)
        await self.wait_ready()

    async def wait_ready(self) -> None:
        ready = asyncio.create_task(self._ready.wait())
        died = asyncio.create_task(self.process.wait())
        done, pending = await asyncio.wait({ready, died}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if ready not in done:
            raise RuntimeError(
                f"the bot did not become ready (exit code {self.process.returncode}); see {self.log_path}")

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        while line := (await process.stdout.readline()).decode().strip():
            if line == "ready":
                self._ready.set()
            elif line.startswith("done "):
                if line == "done fetch":  # the daily fetch job, not a one-off fetch after a restart
                    self.fetches_done += 1
                    self._fetch_done.set()
            else:
                await self._lines.put(line)

    def send_advance(self, moment: datetime) -> None:
        self.process.stdin.write(f"advance {moment.isoformat()}\n".encode())

    async def advance(self, moment: datetime) -> None:
        """Move the clock to `moment` and wait until the jobs it fired are done (the fetch job aside)."""
        self.send_advance(moment)
        await self.process.stdin.drain()
        await self.wait_advanced()

    async def wait_advanced(self) -> None:
        line = await self._next_line(STEP_TIMEOUT)
        if not line.startswith("at "):
            raise RuntimeError(f"unexpected line from the bot: {line!r}")

    async def _next_line(self, timeout: float) -> str:
        getter = asyncio.create_task(self._lines.get())
        died = asyncio.create_task(self.process.wait())
        done, pending = await asyncio.wait({getter, died}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if getter in done:
            return getter.result()
        raise RuntimeError(f"the bot stopped answering (exit code {self.process.returncode}); see {self.log_path}")

    async def wait_fetch_done(self, count: int, timeout: float = STEP_TIMEOUT) -> bool:
        """Until `count` fetch jobs have finished (False if the process died or time ran out first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.fetches_done < count and self.alive and loop.time() < deadline:
            self._fetch_done.clear()
            try:
                await asyncio.wait_for(self._fetch_done.wait(), min(0.2, deadline - loop.time()))
            except asyncio.TimeoutError:
                pass
        return self.fetches_done >= count

    async def kill(self) -> None:
        """SIGKILL: no cleanup at all, as after a power cut or the OOM killer."""
        if self.alive:
            os.kill(self.process.pid, signal.SIGKILL)
        await self._reap()

    async def stop(self) -> int | None:
        """SIGTERM, the clean stop; SIGKILL if it takes longer than 20 s. Returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except asyncio.TimeoutError:
                os.kill(self.process.pid, signal.SIGKILL)
        await self._reap()
        return self.process.returncode if self.process else None

    async def _reap(self) -> None:
        if self.process is not None:
            await self.process.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
