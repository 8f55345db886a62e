# Two commands do everything on a fresh machine:
#   make run    the viewer on the bundled sample (or `fpsm infer` on it where there is no display)
#   make test   import contracts + the whole test suite
# Both create .venv and install the project (editable, with dev tools) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: install run infer test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/fpsm-viewer; \
	else \
		echo "No display: running fpsm infer on the bundled sample study instead of the viewer."; \
		$(BIN)/fpsm infer resources/samples; \
	fi

infer: install
	$(BIN)/fpsm infer resources/samples

test: install
	cd $(CURDIR) && $(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/bench_inference.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
