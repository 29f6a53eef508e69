# lyftr: `make run` serves on http://127.0.0.1:8000 (the console: /ui), `make test` runs the linters and every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What is installed: serving needs requirements.txt only; the tests and linters need the dev set.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run run-demo test lint test-unit test-e2e bench up down logs evaluate clean

$(BIN)/python:
	@echo "lyftr: creating the virtualenv $(VENV) with $(PYTHON)" >&2
	@$(PYTHON) -m venv $(VENV)

# pip's output goes to stderr, so the server's stdout stays JSON lines from the first line.
$(RUN_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	@echo "lyftr: installing the server's dependencies (first run: about 40 s)..." >&2
	@$(BIN)/pip install --disable-pip-version-check -r requirements.txt 1>&2
	@$(BIN)/pip install --disable-pip-version-check --no-deps -e . 1>&2
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	@echo "lyftr: installing the server and test dependencies (first run only)..." >&2
	@$(BIN)/pip install --disable-pip-version-check -r requirements-dev.txt 1>&2
	@$(BIN)/pip install --disable-pip-version-check --no-deps -e . 1>&2
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	@./scripts/run.sh

# As `run`, with every provider on: development secrets from scripts/demo.env (loopback only).
run-demo: $(RUN_STAMP)
	@./scripts/run.sh --demo

lint: $(DEV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# The pytest header says whether the PostgreSQL tier is on; the last line says why tests skipped.
test: lint
	$(BIN)/python -m pytest
	@echo "make test: a skipped test says why above (pytest -rs lists them): the PostgreSQL tier" \
	  "needs LYFTR_TEST_POSTGRES_URL (scripts/ensure-postgres.sh), the browser and alert tests" \
	  "need chromium and promtool (scripts/ensure-test-tools.sh)"

test-unit: $(DEV_STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/e2e

test-e2e: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/e2e

# The real server under wrk, then reads at 1,000,000 messages: about 6 minutes, about 0.5 GB of
# temporary space (the database, in $TMPDIR), and `wrk` (apt-get install wrk). Options:
#   make bench BENCH_ARGS=--ingest-only                      # ingest and /health/live phases only
#   make bench BENCH_ARGS="--messages 200000 --duration 5"
#   make bench BACKEND=postgresql                            # on BENCH_POSTGRES_URL, own schema
#   make bench BENCH_ARGS="--database-url postgresql+psycopg://..."  # the same, any database
# Results: bench/results/latest.json and a timestamped copy (ignored by git). docs/performance.md.
BACKEND ?= sqlite
BENCH_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
bench: $(RUN_STAMP)
	$(BIN)/python bench/run.py $(if $(filter postgresql,$(BACKEND)),--database-url $(BENCH_POSTGRES_URL)) $(BENCH_ARGS)

up:
	docker compose up -d --build

down:
	docker compose down -v

# Plain JSON lines, one per log line (Compose prefixes each line with the service name otherwise).
logs:
	@docker compose logs -f --no-log-prefix --no-color api

# The contract's checks against a server of its own on a temporary database (its messages do not
# land in ./data/app.db); BASE_URL=http://host:8000 evaluates that server instead.
evaluate: $(RUN_STAMP)
	@BASE_URL=$(BASE_URL) ./scripts/evaluate-own-server.sh

clean:
	rm -rf $(VENV) .pytest_cache
