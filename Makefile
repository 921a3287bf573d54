# `make demo` and `make test` each set up everything they need on a fresh machine.
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# mjlab pins its own MuJoCo and rsl-rl, so it lives in a venv of its own; candidates train there as subprocesses.
MJLAB_VENV := .venv-mjlab
MJLAB_STAMP := $(MJLAB_VENV)/.installed
MJLAB_PIN := mjlab==1.6.0
export HF_HUB_OFFLINE := 1
export MUJOCO_GL ?= egl
# robosmith finds mjlab's interpreter through this variable (or --mjlab-python), never through the checkout.
export ROBOSMITH_MJLAB_PYTHON ?= $(CURDIR)/$(MJLAB_VENV)/bin/python

.PHONY: demo test test-fast lint bench sysdeps mjlab clean-venv

# Offscreen rendering needs EGL and Mesa's software renderer (Debian: libegl1, libgl1-mesa-dri); LeRobot's
# video decoder (torchcodec) needs FFmpeg's shared libraries; the report test needs Debian's chromium.
# Installed when missing (as root); otherwise install them yourself.
APT_NEEDED := $(shell ldconfig -p | grep -q 'libEGL.so.1' || echo "libegl1 libgl1-mesa-dri") \
              $(shell ldconfig -p | grep -q 'libavdevice.so' || echo "libavdevice59 libavfilter8") \
              $(shell command -v chromium >/dev/null || echo chromium)
sysdeps:
	@if [ -n "$(strip $(APT_NEEDED))" ]; then \
		echo "installing Debian packages: $(strip $(APT_NEEDED))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_NEEDED) >/dev/null; \
	fi

$(STAMP): pyproject.toml plugins/lerobot_robot_robosmith/pyproject.toml
	@test -x $(BIN)/python || $(shell command -v $(PY) || echo python3) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bc,ray]' -e plugins/lerobot_robot_robosmith
	@touch $(STAMP)

# mjlab gets the main venv's torch: its CUDA build (6.7 GB) is linked from there, not installed twice.
$(MJLAB_STAMP): Makefile $(STAMP)
	@test -x $(MJLAB_VENV)/bin/python || $(shell command -v $(PY) || echo python3) -m venv $(MJLAB_VENV)
	$(MJLAB_VENV)/bin/pip install -q --upgrade pip
	$(BIN)/python scripts/share_torch.py $(MJLAB_VENV)
	$(MJLAB_VENV)/bin/pip install -q $(MJLAB_PIN) \
		"torch==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))')"
	@touch $(MJLAB_STAMP)

mjlab: $(MJLAB_STAMP)

# The reward-design loop on a sentence, offline proposer (no LLM needed): about 10-20 minutes on 2 cores.
demo: sysdeps $(STAMP)
	$(BIN)/robosmith run "reach the target point with the gripper" --candidates 2 --iterations 2 --train-minutes 7

test: sysdeps $(STAMP) $(MJLAB_STAMP)
	$(BIN)/ruff check robosmith tests scripts plugins
	$(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (training, LeRobot, engines, the wheel); under 3 minutes.
test-fast: sysdeps $(STAMP)
	$(BIN)/ruff check robosmith tests scripts plugins
	$(BIN)/python -m pytest -m "not slow"

bench: sysdeps $(STAMP)
	$(BIN)/robosmith bench --randomize --json

clean-venv:
	rm -rf $(VENV) $(MJLAB_VENV)
