"""`/events/` through Django's handler (served workers take its GETs through
dashboard.stream.app.DirectStreams).

Why our own view rather than django-eventstream's `events`: measured, the stock
view pins a database connection per stream (PostgreSQL's 100-connection limit
means the 100th viewer takes the site down), holds an OS thread per stream for
its `sync_to_async(get_events)`, answers errors with HTTP 200 + `stream-error`
(browsers retry forever), silently drops events past 10 pending per client and,
after that overflow, re-reads storage and sends duplicate ids. The request, the
hub and the stream are in the modules beside this one.
"""

from django.views.decorators.http import require_GET

from dashboard.stream.request import open_stream, stream_response


@require_GET
async def events(request):
    """`/events/` through Django's handler: test clients, and anything but a GET (405).
    Served workers take GETs through `DirectStreams`, with the same checks."""
    refusal, stream = await open_stream(request)
    return refusal or stream_response(request, stream)
