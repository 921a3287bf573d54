# `make demo` and `make test` each set up everything they need on a fresh machine.
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export MUJOCO_GL ?= egl

.PHONY: demo test lint bench sysdeps clean-venv

# Offscreen rendering needs EGL and Mesa's software renderer (Debian: libegl1, libgl1-mesa-dri).
sysdeps:
	@if ! ldconfig -p | grep -q 'libEGL.so.1'; then \
		echo "installing EGL/Mesa for offscreen rendering"; \
		apt-get update -qq && apt-get install -y -qq libegl1 libgl1-mesa-dri >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(shell command -v $(PY) || echo python3) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: sysdeps $(STAMP)
	$(BIN)/robosmith train so101_reach --minutes 5 --eval-episodes 100

test: sysdeps $(STAMP)
	$(BIN)/ruff check robosmith tests
	$(BIN)/python -m pytest

bench: sysdeps $(STAMP)
	$(BIN)/robosmith bench --json

clean-venv:
	rm -rf $(VENV)
