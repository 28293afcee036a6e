.PHONY: run test lint format bench worker beat migrate lock clean

# Install and start Custody on the embedded default (SQLite, local artifacts, in-process tasks),
# listening on 127.0.0.1 (HOST=0.0.0.0 make run for every interface).
run:
	scripts/run.sh

# Install everything the tests need and run them (SQLite unless DATABASE_URL says otherwise).
test:
	scripts/test.sh $(ARGS)

# Style, the app layering (import contracts in pyproject.toml), types (mypy on core, services
# and selectors) and models that agree with their migrations.
lint:
	scripts/bootstrap.sh requirements-test.lock
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache
	DATABASE_URL= .venv/bin/mypy
	DATABASE_URL= DJANGO_SETTINGS_MODULE=config.settings.test .venv/bin/python manage.py makemigrations --check --dry-run

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench:
	scripts/bootstrap.sh requirements-test.lock
	.venv/bin/python bench/run.py $(ARGS)

worker:
	.venv/bin/celery -A config worker -l INFO

beat:
	.venv/bin/celery -A config beat -l INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler

migrate:
	.venv/bin/python manage.py migrate

lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements-run.lock
	uv pip compile pyproject.toml --python-version 3.11 --extra test --generate-hashes -o requirements-test.lock

clean:
	rm -rf .venv data .pytest_cache .ruff_cache
