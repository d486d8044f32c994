# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench soak chaos lock clean setup

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	@touch $(STAMP)

run: $(STAMP)
	bin/arbd start $(ARGS)

# Two lanes (pytest-xdist, a test file per lane at a time) for everything but
# the chaos suite, which measures recovery times and runs alone afterwards.
# Both phases run; the exit status is the first failing phase's.
test: $(STAMP)
	@rc=0; \
	$(PY) -m pytest -q -n 2 --dist loadfile --ignore=tests/chaos $(PYTEST_ARGS) || rc=$$?; \
	$(PY) -m pytest -q tests/chaos $(PYTEST_ARGS) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m bench.bus
	$(PY) -m bench.feed
	$(PY) -m bench.e2e
	$(PY) -m bench.orders

soak: $(STAMP)
	$(PY) -m pytest -q -m soak -s tests

chaos: $(STAMP)
	$(PY) -m pytest -q -m chaos_long -s tests/chaos

# Re-pin after changing pyproject.toml dependencies.
lock:
	rm -rf /tmp/arbd-lock-venv && $(PYTHON) -m venv /tmp/arbd-lock-venv
	/tmp/arbd-lock-venv/bin/pip install -q -e '.[dev]'
	{ echo "# Exact pins of every runtime and test dependency (pip freeze of a fresh install)."; \
	  echo "# Regenerate with: make lock"; \
	  /tmp/arbd-lock-venv/bin/pip freeze --exclude-editable | grep -v '^pip=='; } > requirements.lock

clean:
	rm -rf $(VENV) run build *.egg-info
