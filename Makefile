# Two entry points that work on a fresh clone: `make app` and `make test`.
# Both create (or reuse) .venv; torch is pinned to the CPU wheel this project is tested with.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
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

.PHONY: app test lint install
install: $(BIN)/.installed-app

app: $(BIN)/.installed-app
	$(BIN)/streamlit run app.py --server.port $(PORT)

test: $(BIN)/.installed-test
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
