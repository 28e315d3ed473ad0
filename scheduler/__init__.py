"""Time-driven work: scheduled deliveries, digests, nightly episodes and (issue 7) alert
evaluation, run by an APScheduler loop inside every deskmate process (see docs/scheduler.md).

`service.Scheduler` is the loop; `slots` the pure cron and backoff arithmetic; `worker` the
delivery worker; `content` what a run posts.
"""
