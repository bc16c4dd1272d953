"""`make bench`: fan-out latency, connection cost, and SSE against WebSocket, side by side.

`python -m bench --help` lists the knobs. The run starts its own Redis, its own
SQLite database and its own server processes, drives them from separate
load-generator processes, and writes `bench/results/<timestamp>.json` and a PNG.
"""
