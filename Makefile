# The two commands the README promises: `make run` and `make test`. `make run` installs only what
# running needs (the `ml` extra); `make test` adds the test tools (`dev`) and TensorFlow (`tf`) on top.
VENV ?= .venv
PY := $(VENV)/bin/python
# `make run HOST=0.0.0.0 PORT=9000`; otherwise VAS_HOST / VAS_PORT from the environment, then the defaults.
HOST ?= $(or $(VAS_HOST),127.0.0.1)
PORT ?= $(or $(VAS_PORT),8000)
PYTEST_ARGS ?=

.PHONY: venv dev-venv run worker migrate test test-deps lint typecheck unit bench bench-gpu demo-model clean deploy-deps deploy-test

venv:
	@scripts/ensure_venv.sh $(VENV) ml

dev-venv:
	@scripts/ensure_venv.sh $(VENV) ml,dev,tf

run: venv
	$(PY) -m app serve --host $(HOST) --port $(PORT)

worker: venv
	$(PY) -m app worker

migrate: venv
	$(PY) -m app migrate

lint: dev-venv
	$(VENV)/bin/ruff check app tests bench scripts
	$(VENV)/bin/ruff format --check app tests bench scripts

typecheck: dev-venv
	$(VENV)/bin/mypy

deploy-deps:
	@deploy/install-nginx.sh

deploy-test: dev-venv deploy-deps
	$(VENV)/bin/pytest -m deploy tests/deploy $(PYTEST_ARGS)

# nginx and chromium (Debian packages) for the deployment and browser tests; best effort.
test-deps:
	@scripts/install-test-deps.sh

test: dev-venv lint typecheck test-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo-model: venv
	$(PY) scripts/train_demo_model.py

bench: venv
	$(PY) bench/pipeline.py

# The GPU worker on a CUDA machine (stops at once without one; `bench/gpu.py --dry-run` on a CPU).
bench-gpu: venv
	$(PY) bench/gpu.py

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts
