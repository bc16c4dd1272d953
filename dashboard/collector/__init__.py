"""The collector: one process sampling metrics and publishing a frame per tick, and its sampling state."""
