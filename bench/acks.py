"""Acks under load: how long Slack waits for deskmate's "accepted" while deskmate is answering.

Slack wants a 2xx within 3 seconds and redelivers otherwise, which doubles the load exactly when
it is highest. The benchmark sends `--events` signed direct messages (each from its own person,
each a new question) from `--senders` concurrent connections to a real `deskmate serve` (the
default embedder, embedded PostgreSQL, a fake Slack Web API and a fake Claude whose answers take
`--answer-seconds`, in a process of their own), and the same requests to a bare aiohttp handler
that only reads the body and says 200, in the same run. It reports ack p50/p95/p99/max for
both, their ratio, and once every answer is in: events answered once, twice, or not at all.

`.venv/bin/python -m bench acks [--events 2000] [--senders 200] [--answer-seconds 1.0] [--cpu]`

`--cpu` (Linux) also reports answered messages per second and the CPU time, per answered
message, of the `deskmate serve` process and of its embedded PostgreSQL (postmaster and
backends), read from /proc from the first deskmate request until every answer is in.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-signing-secret"
TEAM = "T-BENCH"

BARE_SERVER = """
import sys
from aiohttp import web

async def events(request):
    await request.read()
    return web.json_response({})

app = web.Application()
app.router.add_post("/slack/events", events)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signed_dm(number: int) -> tuple[bytes, dict[str, str]]:
    """A direct message event from person `number`, signed as Slack signs it."""
    ts = f"1800000000.{number:06d}"
    event = {"type": "message", "channel_type": "im", "channel": f"D{number:05d}",
             "user": f"U{number:05d}", "text": f"question {number}: where is the travel policy?",
             "ts": ts, "team": TEAM}  # fmt: skip
    authorizations = [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}]
    body = json.dumps({"token": "x", "team_id": TEAM, "api_app_id": "A1",
                       "type": "event_callback", "event_id": f"Ev{number}",
                       "event_time": int(time.time()), "event": event,
                       "authorizations": authorizations})  # fmt: skip
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": f"v0={digest.hexdigest()}"}  # fmt: skip
    return body.encode(), headers


async def load(url: str, events: int, senders: int) -> tuple[list[float], dict[int, int]]:
    """Send every event once, `senders` at a time; each ack's seconds and the status counts."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(events):
        queue.put_nowait(number)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=senders)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def sender() -> None:
            while not queue.empty():
                body, headers = signed_dm(queue.get_nowait())
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(sender() for _ in range(senders)))
    return latencies, statuses


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(latencies: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(latencies) * 1000, "p95": percentile(latencies, 95) * 1000,
            "p99": percentile(latencies, 99) * 1000, "max": max(latencies) * 1000}  # fmt: skip


async def wait_until_listening(url: str, proc: subprocess.Popen[Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                async with session.get(url):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on {url} after {seconds:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(data_dir: str) -> list[int]:
    """The embedded PostgreSQL under `data_dir`: its postmaster, which names the directory on
    its command line, and the processes it started (backends, writers)."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        if "postgres" in command and data_dir in command:
            roots.add(int(entry.name))
    return [pid for pid, parent in parents.items() if pid in roots or parent in roots]


def cpu_snapshot(deskmate: int, data_dir: str) -> dict[str, dict[int, float]]:
    return {"deskmate": {deskmate: cpu_seconds(deskmate)},
            "postgres": {pid: cpu_seconds(pid) for pid in server_pids(data_dir)}}  # fmt: skip


def cpu_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds spent between two snapshots. A backend that started in between counts from
    zero; one that exited in between is missed (the pool keeps its connections open)."""
    return {
        group: sum(seconds - before[group].get(pid, 0.0) for pid, seconds in pids.items())
        for group, pids in after.items()
    }


async def answers(anthropic: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(f"{anthropic}/bench/answers") as r:
        return dict(await r.json())


async def run(
    events: int, senders: int, answer_seconds: float, *, wait: bool = True, cpu: bool = False
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = str(ROOT)
    fakes = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [sys.executable, "-m", "bench.fake_platforms", str(answer_seconds)], cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert fakes.stdout is not None
    slack_url, anthropic_url = (await asyncio.to_thread(fakes.stdout.readline)).split()
    bare_port, deskmate_port = free_port(), free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])  # noqa: ASYNC220
    with tempfile.TemporaryDirectory() as data, open(Path(data) / "serve.log", "w+") as log:  # noqa: ASYNC230
        deskmate = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "deskmate", "serve", "--port", str(deskmate_port)], cwd=ROOT,
            env={**env, "DESKMATE_DATA_DIR": data, "SLACK_BOT_TOKEN": "xoxb-bench",
                 "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack_url,
                 "ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": anthropic_url,
                 "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        try:
            await wait_until_listening(f"http://127.0.0.1:{bare_port}/", bare, 30)
            await wait_until_listening(f"http://127.0.0.1:{deskmate_port}/healthz", deskmate, 120)
            bare_acks, bare_statuses = await load(
                f"http://127.0.0.1:{bare_port}/slack/events", events, senders
            )
            started = time.monotonic()
            before = cpu_snapshot(deskmate.pid, data) if cpu else None
            acks, statuses = await load(
                f"http://127.0.0.1:{deskmate_port}/slack/events", events, senders
            )
            answered = await settle(anthropic_url, events, answer_seconds) if wait else {}
            drained = time.monotonic() - started
            used = cpu_used(before, cpu_snapshot(deskmate.pid, data)) if before else None
        except BaseException:
            log.seek(0)
            print("deskmate's log:\n" + log.read()[-4000:], file=sys.stderr)
            raise
        finally:
            for proc in (deskmate, bare):
                proc.terminate()
            for proc in (deskmate, bare):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            fakes.stdin.close()  # type: ignore[union-attr]
            try:
                fakes.wait(30)
            except subprocess.TimeoutExpired:  # answers still streaming: not ours to wait for
                fakes.kill()
    counts = list(answered.values())
    return {
        "events": events, "senders": senders, "answer_seconds": answer_seconds,
        "bare": summary(bare_acks), "bare_statuses": bare_statuses,
        "deskmate": summary(acks), "deskmate_statuses": statuses,
        "answered_once": sum(1 for c in counts if c == 1),
        "answered_twice_or_more": sum(1 for c in counts if c > 1),
        "unanswered": events - len(counts), "drain_seconds": drained, "cpu_seconds": used,
    }  # fmt: skip


async def settle(anthropic: str, events: int, answer_seconds: float) -> dict[str, int]:
    """Wait until every event has an answer, or until answers stop coming."""
    last, still = -1, 0.0
    while True:
        answered = await answers(anthropic)
        if len(answered) >= events:
            return answered
        if len(answered) == last:
            still += 1.0
            if still > 30 + 5 * answer_seconds:
                return answered
        else:
            last, still = len(answered), 0.0
        await asyncio.sleep(1.0)


def cpu_line(result: dict[str, Any]) -> list[str]:
    """With --cpu: answers per second and where their CPU went."""
    used = result.get("cpu_seconds")
    answered = result["answered_once"] + result["answered_twice_or_more"]
    if not used or not answered:
        return []
    per = {group: seconds / answered * 1000 for group, seconds in used.items()}
    return [
        f"answered {answered / result['drain_seconds']:.1f}/s; CPU per answered message: "
        f"deskmate serve {per['deskmate']:.1f} ms, its PostgreSQL {per['postgres']:.1f} ms "
        f"({used['deskmate']:.1f} s and {used['postgres']:.1f} s in all)"
    ]


def report(result: dict[str, Any]) -> str:
    bare, ours = result["bare"], result["deskmate"]
    rows = [
        f"{name} | {s['p50']:.0f} | {s['p95']:.0f} | {s['p99']:.0f} | {s['max']:.0f}"
        for name, s in (("bare aiohttp handler", bare), ("deskmate", ours))
    ]
    return "\n".join([
        f"{result['events']} signed DMs from {result['senders']} concurrent senders, answers of "
        f"{result['answer_seconds']:.1f} s (ms):",
        "", "| server | p50 | p95 | p99 | max |", "|---|---|---|---|---|",
        *(f"| {row} |" for row in rows), "",
        f"deskmate / bare: p50 {ours['p50'] / bare['p50']:.1f}x, "
        f"p99 {ours['p99'] / bare['p99']:.1f}x (target: p99 <= 2x)",
        f"statuses: bare {result['bare_statuses']}, deskmate {result['deskmate_statuses']}",
        f"answered once {result['answered_once']}, twice or more "
        f"{result['answered_twice_or_more']}, unanswered {result['unanswered']} "
        f"(all answered {result['drain_seconds']:.0f} s after the first event)",
        *cpu_line(result),
    ])  # fmt: skip


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench acks")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--answer-seconds", type=float, default=1.0)
    parser.add_argument(
        "--acks-only",
        action="store_true",
        help="do not wait for the answers (to look at the acks alone)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also report answers per second and CPU per answer of deskmate and its PostgreSQL",
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.events, args.senders, args.answer_seconds, wait=not args.acks_only,
            cpu=args.cpu)
    )  # fmt: skip
    print(report(result))
