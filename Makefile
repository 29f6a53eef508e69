# lyftr: `make run` serves on http://localhost:8000, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-e2e bench up down logs evaluate clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	@./scripts/run.sh

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/e2e

test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

# The real server under wrk, then reads at 1,000,000 messages (about 6 minutes; needs `wrk`).
# Options: make bench BENCH_ARGS="--messages 200000 --duration 5"; results in bench/results/.
# PostgreSQL: BENCH_ARGS="--database-url postgresql+psycopg://..." (its own schema, dropped after).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

up:
	docker compose up -d --build

down:
	docker compose down -v

logs:
	docker compose logs -f api

evaluate:
	./scripts/evaluate.sh $(or $(BASE_URL),http://localhost:8000)

clean:
	rm -rf $(VENV) .pytest_cache
