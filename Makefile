# Two commands on a fresh Debian/Ubuntu machine:
#   make run    - install, then the main job on the embedded default model
#   make test   - install, then the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system bench clean

system:
	bash scripts/install-system.sh

$(STAMP): pyproject.toml scripts/install-system.sh
	bash scripts/install-system.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/rtmirror demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/rtmirror bench frontend
	$(BIN)/rtmirror bench synth
	$(BIN)/rtmirror bench encoder
	$(BIN)/rtmirror bench live

clean:
	rm -rf $(VENV) build *.egg-info
