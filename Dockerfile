# syntax=docker/dockerfile:1
# livedash image: the browser libraries come from npm in a throwaway Node stage,
# the runtime is a slim Python image that runs a web worker as an unprivileged user.

# --- Stage 1: browser assets (uPlot) from package-lock.json, as `make static` does.
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
RUN mkdir -p static/vendor/uplot \
 && cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/uplot/

# --- Stage 2: compiled translation catalogues (.mo) from locale/*.po, as `make messages` does.
FROM python:3.11-slim AS messages
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gettext >/dev/null \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY locale/ locale/
RUN find locale -name '*.po' -exec sh -c 'msgfmt --check-format -o "${1%.po}.mo" "$1"' _ {} \;

# --- The test identity provider for the compose `oidc` profile (tests/idp/): Django
# with django-oauth-toolkit, pinned in requirements-dev.txt; not part of the runtime.
FROM python:3.11-slim AS idp
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt requirements-dev.txt ./
RUN pip install $(grep -hE '^(Django|asgiref|cryptography|django-oauth-toolkit|jwcrypto|oauthlib|requests)==' requirements.txt requirements-dev.txt)
COPY tests/__init__.py tests/
COPY tests/idp/ tests/idp/
USER nobody

# --- Stage 3: the runtime.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, so editing the code does not reinstall them. The host agent's
# package is one of them (the collector samples with its code).
COPY requirements.txt ./
COPY agent/ agent/
RUN pip install -r requirements.txt

COPY . .
COPY --from=assets /build/static/vendor/ static/vendor/
COPY --from=messages /build/locale/ locale/

# collectstatic needs settings that import, and production settings refuse to
# import without a SECRET_KEY: give it a throwaway one for this command only,
# so no key is baked into the image.
RUN SECRET_KEY=collectstatic-build-only DEBUG=0 ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput -v 0

# The code stays owned by root: the process that serves it cannot rewrite it.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin livedash \
 && mkdir -p /run/livedash && chown livedash /run/livedash
USER livedash

EXPOSE 8000
# deploy/worker.py: the server ASGI_SERVER names (uvicorn by default) with the
# production options (listen backlog, trusted proxy headers, graceful SIGTERM).
CMD ["python", "-m", "deploy.worker", "--host", "0.0.0.0", "--port", "8000"]
