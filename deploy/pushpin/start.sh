#!/bin/sh
# The compose pushpin service's start: Pushpin's config has no environment
# substitution, so the signing key (GRIP_KEY, the same as the ?key= in the
# workers' GRIP_URL) is written into sig_key here. No key, no start: an unsigned
# Pushpin would leave the workers unable to tell it from anyone else.
set -eu
if [ -z "${GRIP_KEY:-}" ]; then
    echo "GRIP_KEY is not set: Pushpin needs the signing key the workers' GRIP_URL carries" >&2
    exit 1
fi
case "$GRIP_KEY" in
    *[!A-Za-z0-9_-]*)
        echo "GRIP_KEY must be URL-safe (letters, digits, - and _): it also goes into GRIP_URL" >&2
        exit 1
        ;;
esac
sed -i "s/^sig_key=.*/sig_key=$GRIP_KEY/" /etc/pushpin/pushpin.conf
exec pushpin --config /etc/pushpin/pushpin.conf --merge-output
