"""The SSE transport: the `/events/` stream, its channels, the Pushpin edge and the history backfill."""
