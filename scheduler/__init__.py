"""Time-driven work: scheduled deliveries, digests and alert evaluation."""
