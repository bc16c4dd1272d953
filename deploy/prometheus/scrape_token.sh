#!/bin/sh
# The `scrape-token` service of the monitoring profile: create, once, the API token
# (scrape scope only) that Prometheus reads /metrics with, into the volume both share.
# To replace it: `revoke_token` it, delete the volume's file, `docker compose up` again.
set -eu
TOKEN_FILE=/run/livedash/scrape_token
if [ -s "$TOKEN_FILE" ]; then
    exit 0
fi
# The token is printed alone on the last line of create_token's output.
python manage.py create_token "prometheus-$(date +%Y%m%d%H%M%S)" --scrape | tail -n 1 > "$TOKEN_FILE.new"
mv "$TOKEN_FILE.new" "$TOKEN_FILE"
echo "created the scrape token Prometheus uses"
