# Everything runs from .venv, built from the pinned requirements files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

export LITELLM_LOCAL_MODEL_COST_MAP ?= True

.PHONY: install run test lint demo bench clean

install: $(STAMP)

# Idempotent: re-runs only when a requirements file changed (the stamp carries their checksum).
$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

# The proxy on http://127.0.0.1:4000 with config.yaml; set SUPABASE_* to meter for real.
run: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HOST=$${HOST:-127.0.0.1} \
	LITELLM_MASTER_KEY=$${LITELLM_MASTER_KEY:-sk-local-dev-master-key} \
	USAGE_SPOOL_PATH=$${USAGE_SPOOL_PATH:-$(CURDIR)/data/usage-spool.db} \
	./entrypoint.sh

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/shellcheck entrypoint.sh .ci/run

# What metering costs the proxy (four variants, alternating rounds), then the logger's own costs.
bench: install
	$(PY) bench/run.py
	$(PY) bench/callback_cost.py
	$(PY) bench/client_cost.py

# The whole loop with no accounts: mock model, local edge function, one request, the event printed.
demo: install
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
