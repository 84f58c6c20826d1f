# Two commands for a newcomer:  `make demo`  runs the platform,  `make test`  runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_PORT ?= 8000
export DEMO_PORT

.PHONY: demo test lint ci migrate seed messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## demo: SQLite + filesystem broker, demo data, web + Celery worker + beat on http://127.0.0.1:$(DEMO_PORT),
## with the WeChat sandbox and the partner sandbox (a courier that ships paid delivery orders)
demo: export DEBUG ?= 1
demo: $(VENV)/.installed
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_demo_stock
	$(BIN)/python manage.py seed_demo_orders
	$(BIN)/python manage.py sales_rollup --rebuild
	$(BIN)/python manage.py partner_demo_setup --quiet --env-file $${DATA_DIR:-var}/partner-sandbox.env
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho --procfile Procfile.demo start

## test: the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL select PostgreSQL / Redis)
test: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: style, formatting, migrations in step with models, the dependency rule between apps
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/lint-imports

## messages: refresh and compile the Chinese translations after changing user-facing text
messages: $(VENV)/.installed
	DEBUG=1 $(BIN)/python manage.py makemessages --locale zh_Hans --no-obsolete --add-location file --ignore ".venv/*" --ignore "var/*" --ignore "tests/*"
	DEBUG=1 $(BIN)/python manage.py compilemessages --locale zh_Hans --ignore ".venv/*"

clean:
	rm -rf var .pytest_cache .ruff_cache
