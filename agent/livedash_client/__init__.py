"""livedash_client: request, query and task metrics from inside an application, pushed to livedash.

`livedash_client.django.LivedashMiddleware` and `livedash_client.celery.connect()`
record into a `Recorder`, which aggregates in memory and pushes a batch of line
protocol every few seconds from one background thread (see recorder.py).
"""
