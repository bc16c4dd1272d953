#!/bin/sh
# The release step of `docker compose up`, run once by the `migrate` service
# before any web worker or the collector starts: they depend on it finishing.
set -eu

# Print what `check --deploy` thinks of these settings into the release log;
# docs/operations.md ("`check --deploy` and the plain-HTTP demo") explains the relaxations the plain-HTTP compose demo needs.
python manage.py check --deploy
python manage.py migrate --noinput
# Creates the superuser from DJANGO_SUPERUSER_USERNAME / _PASSWORD when no user
# exists yet; otherwise it does nothing.
python manage.py ensure_superuser
