"""`deskmate serve` replicas as real processes, each on its own port, killed with SIGKILL and
started again on the same port as an orchestrator would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import DESKMATE

START_TIMEOUT_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Kill:
    """One `kill -9`: whom, when (seconds into the run), what it held."""

    replica: int
    at: float
    holding: int
    what: str
    back_after: float = 0.0


class Replicas:
    """`count` replicas sharing `env`; their logs in `logs` (one file per start)."""

    def __init__(self, env: dict[str, str], logs: Path, count: int) -> None:
        self.env, self.logs = env, logs
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[str] | None] = [None] * count
        self.kills: list[Kill] = []
        self._starts = 0

    def urls(self) -> list[str]:
        """Where Slack sends requests: every replica's address, live or not (as a load
        balancer does until its health check notices)."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def number_of(self, url: str) -> int:
        return self.urls().index(url)

    def name(self, number: int) -> str:
        """As the scheduler names its claims (scheduler/loop.py replica_name)."""
        proc = self.procs[number]
        return f"{socket.gethostname()}:{proc.pid}" if proc else ""

    async def start_all(self) -> None:
        await asyncio.gather(*(self.start(n) for n in range(len(self.ports))))

    async def start(self, number: int) -> None:
        self._starts += 1
        log = (self.logs / f"replica-{number}-start-{self._starts}.log").open("w")
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; readiness is awaited below
            [*DESKMATE, "serve", "--port", str(self.ports[number])], env=self.env,
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        self.procs[number] = proc
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline),
                                      START_TIMEOUT_SECONDS)  # fmt: skip
        assert line.startswith("deskmate is listening"), f"replica {number}: {self.log_tail()}"

    async def kill(self, number: int, *, holding: int, what: str, started: float,
                   back_after: float) -> Kill:  # fmt: skip
        """SIGKILL the replica, and start it again `back_after` seconds later."""
        proc = self.procs[number]
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        kill = Kill(number, round(time.monotonic() - started, 1), holding, what, back_after)
        self.kills.append(kill)
        await asyncio.sleep(back_after)
        await self.start(number)
        return kill

    async def stop(self) -> list[int]:
        """SIGTERM every replica; their exit codes."""
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        return [await asyncio.to_thread(proc.wait, 60) for proc in live]

    def force_stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}"
                         for p in sorted(self.logs.glob("*.log")))  # fmt: skip
