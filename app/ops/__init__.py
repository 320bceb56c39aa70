"""Operability: metrics, structured logs with request ids, tracing."""
