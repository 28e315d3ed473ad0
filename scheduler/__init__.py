"""Time-driven work: scheduled deliveries, digests, nightly episodes and alert evaluation, run
by an APScheduler loop inside every `deskmate serve` process (see docs/scheduler.md).

`loop.Scheduler` is the loop; `worker` the delivery worker; `content` what a run posts. The cron
and backoff arithmetic is `bot.cron`, below both the loop and the core that validates schedules.
It posts through the senders the platforms registered (bot/outbound.py), never importing them.
"""
