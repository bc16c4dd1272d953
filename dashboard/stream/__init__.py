"""The SSE transport: the `/events/` stream, its channels, the Pushpin (GRIP) edge and the history backfill."""
