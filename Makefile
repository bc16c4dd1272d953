# livedash: `make run` to start it, `make test` to test it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export DEBUG ?= 1

.PHONY: run test test-daphne test-fast lint static messages stack bench soak clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# The page's browser libraries come from npm, copied into a git-ignored folder.
static/vendor/.copied: node_modules/.package-lock.json
	mkdir -p static/vendor/uplot static/vendor/gridstack
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/uplot/
	cp node_modules/gridstack/dist/gridstack-all.js node_modules/gridstack/dist/gridstack-all.js.map node_modules/gridstack/dist/gridstack.min.css static/vendor/gridstack/
	touch static/vendor/.copied

# Compiled catalogues (.mo) are built from locale/*/LC_MESSAGES/*.po with Debian's
# gettext (msgfmt), never committed; only the project's own locale/ folder is compiled.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

%.mo: %.po
	msgfmt --check-format -o $@ $<

messages: $(MO_FILES)

static: $(STAMP) static/vendor/.copied messages
	$(PY) manage.py collectstatic --noinput -v 0

run: static
	$(PY) -m deploy.run_local

# The whole suite on the default server (uvicorn), then the tests marked `servers`
# (WebSocket close codes, SSE access and resume, faults, restarts, the browser) on daphne.
test: static
	$(PY) -m pytest
	$(MAKE) test-daphne

test-daphne: static
	ASGI_SERVER=daphne $(PY) -m pytest -m servers

test-fast: static
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

stack: static
	$(PY) -m deploy.stack

bench: static
	$(PY) -m bench
	$(PY) -m bench.history
	$(PY) -m bench.series
	$(PY) -m bench.ingest
	$(PY) -m bench.selected
	$(PY) -m bench.shares
	$(PY) -m bench.alert_latency --series 2000 --clients 200
	$(PY) -m bench.boards
	$(PY) -m bench.fleet

# The long run: 30 minutes by default; SOAK_MINUTES=2 make soak for a short one.
soak: static
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) node_modules staticfiles static/vendor $(MO_FILES)
