# Two commands on a fresh Debian/Ubuntu machine:
#   make run    - install the live app (no torch), then the main job on the embedded default model
#   make test   - install everything the tests need (training stack, JACK, Xvfb, ...), then the tests
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
COMMA := ,

.PHONY: run test install install-test system bench clean lint

system:
	bash tools/install-system.sh test

# $(call install,SYSTEM-SET,EXTRAS): system packages, the venv, the package, the compiled frontend
define install
	bash tools/install-system.sh $(1)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(2)]'
	$(BIN)/rtmirror warmup
endef

$(RUN_STAMP): pyproject.toml tools/install-system.sh
	$(call install,run,gui)
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml tools/install-system.sh
	$(call install,test,gui$(COMMA)train$(COMMA)dev)
	touch $(RUN_STAMP) $(TEST_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(BIN)/rtmirror demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -ra

lint: $(TEST_STAMP)
	$(BIN)/ruff check rtmirror models export gui tests tools

bench: $(RUN_STAMP)
	$(BIN)/rtmirror bench frontend
	$(BIN)/rtmirror bench synth
	$(BIN)/rtmirror bench encoder
	$(BIN)/rtmirror bench live

clean:
	rm -rf $(VENV) build *.egg-info
