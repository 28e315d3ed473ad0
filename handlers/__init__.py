"""Platform edges: Slack, Teams and the local web chat turn events into IncomingMessages and
send replies. Each wing (`handlers.slack`, `handlers.teams`, `handlers.webchat`) exports
`install(app, runtime)`, which adds its routes, senders and start/stop hooks to the aiohttp
application of `handlers.http`. No wing imports another.
"""
