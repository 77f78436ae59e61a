# hivemem: `make demo` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/hivemem-*))
SERVER_BINS := redis-server redis-cli memcached

.PHONY: demo test bench install install-test servers lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e . $(foreach p,$(PLUGINS),-e $(p))

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]' $(foreach p,$(PLUGINS),-e '$(p)[test]')

# redis-server and memcached come from Debian packages; installed when missing and we are root.
servers:
	@missing=""; for b in $(SERVER_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server redis-tools memcached (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools memcached >/dev/null; \
	  else \
	    echo "missing:$$missing -- install them with: sudo apt-get install redis-server redis-tools memcached"; exit 1; \
	  fi; \
	fi

demo: install
	$(BIN)/hivemem demo

lint: install-test
	$(BIN)/ruff check core tests plugins benchmarks

test: install-test servers lint
	$(BIN)/pytest tests $(foreach p,$(PLUGINS),$(p)/tests) -q

bench: install
	$(BIN)/pip install -q -e '.[bench]' $(foreach p,$(PLUGINS),-e $(p))
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
