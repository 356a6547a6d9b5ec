# Two entry points that work on a fresh clone: `make app` and `make test`.
# Both create (or reuse) .venv; torch is pinned to the CPU wheel this project is tested with. `make test`
# also installs Debian's Chromium for the browser test when it is missing (scripts/ensure-chromium).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := $(shell sed -n "s/^\(torch==[0-9.]*\).*/\1/p" requirements.txt)  # the one pin: requirements.txt
PORT ?= 8501

$(BIN)/.installed-app: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[app]'
	touch $@

$(BIN)/.installed-test: pyproject.toml $(BIN)/.installed-app
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: app test lint install check-wheel
install: $(BIN)/.installed-app

app: $(BIN)/.installed-app
	$(BIN)/streamlit run app.py --server.port $(PORT)

test: $(BIN)/.installed-test
	scripts/ensure-chromium
	$(BIN)/python -m pytest -q

# The wheel in a fresh venv, used from another folder (what `pip install inkdigits` users get).
check-wheel: $(BIN)/.installed-test
	scripts/check-wheel

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
