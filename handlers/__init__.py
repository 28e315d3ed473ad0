"""Platform edges: Slack, Teams and the local web chat turn events into IncomingMessages."""
