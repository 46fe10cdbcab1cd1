# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLIENTS := tests/clients
CLIENTS_STAMP := $(CLIENTS)/node_modules/.installed
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_WORKERS ?= 2

.PHONY: run test lint unit schema bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# What the end-to-end tests drive the API with besides Python: Node client libraries (the
# ones apps use) and Debian's Chromium.
$(CLIENTS_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	npm ci --prefix $(CLIENTS) --no-audit --no-fund --silent
	./scripts/ensure-chromium
	touch $(CLIENTS_STAMP)

install: $(STAMP) $(CLIENTS_STAMP)

# The demo devices run in the simulator beside the server (its log: data/simulator.log).
run: $(STAMP)
	$(BIN)/devicecloud migrate
	$(BIN)/devicecloud seed
	@$(BIN)/devicecloud simulate --devices data/demo-devices.csv --location-rate 0.2 >data/simulator.log 2>&1 & \
	sim=$$!; trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	$(BIN)/devicecloud serve

# The layering and error-catalog rules are tests; they run here too, on SQLite.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	TEST_DATABASE=sqlite $(BIN)/pytest -q tests/test_layering.py tests/test_error_catalog.py

# The whole suite, once against SQLite and once against PostgreSQL, each spread over
# TEST_WORKERS processes (pytest-xdist; each has its own database).
test: lint $(CLIENTS_STAMP)
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) ./scripts/ensure-postgres
	TEST_DATABASE=sqlite $(BIN)/pytest -n $(TEST_WORKERS)
	TEST_DATABASE=postgres TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -n $(TEST_WORKERS)

schema: $(STAMP)
	$(BIN)/devicecloud export-schema

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache $(CLIENTS)/node_modules
