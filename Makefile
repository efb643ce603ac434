# napari-pal developer tasks (GNU make).  `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

# Headless Qt/OpenGL for napari under Xvfb (Debian/Ubuntu package names).
SYSDEPS := xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 \
           libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
           libxcb-xfixes0 libxcb-shape0 libdbus-1-3 libfontconfig1

.PHONY: venv sysdeps test lint demo demo-cli clean

venv: $(STAMP)

# torch first: with an NVIDIA GPU the default (CUDA) build from PyPI, else the pinned
# version, which is a CPU wheel where one is on offer (see shared/NOTES.md).
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  python3 -m venv $(VENV) || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      rm -rf $(VENV) && apt-get update && apt-get install -y python3-venv && \
	      python3 -m venv $(VENV); \
	    else echo "python3 -m venv failed: install python3-venv" >&2; exit 1; fi; }; \
	fi
	@if nvidia-smi >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: installing torch from PyPI"; $(PIP) install torch; \
	else \
	  echo "no NVIDIA GPU: installing torch==2.13.0"; $(PIP) install torch==2.13.0; \
	fi
	$(PIP) install -e '.[gui,bench,test]'
	@touch $@

sysdeps:
	@if command -v xvfb-run >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(SYSDEPS); \
	elif [ -n "$${DISPLAY:-}" ]; then \
	  echo "note: xvfb-run not found; using the display $$DISPLAY"; \
	else \
	  echo "xvfb-run not found and no DISPLAY: the GUI tests need a display." >&2; \
	  echo "Install (as root): apt-get install -y $(SYSDEPS)" >&2; \
	  exit 1; \
	fi

# The whole suite on PyQt5 (the binding we ship), then the GUI tests again on PyQt6.
# QT_API picks napari's binding (through qtpy), PYTEST_QT_API pytest-qt's: always the same.
QT_BINDINGS := pyqt5 pyqt6
GUI_TESTS   := tests/napari
test: venv sysdeps
	$(VENV)/bin/ruff check src tests
	@x=""; if [ -z "$${DISPLAY:-}" ]; then x='xvfb-run -a -s "-screen 0 1280x1024x24"'; fi; \
	for api in $(QT_BINDINGS); do \
	  if [ "$$api" = pyqt5 ]; then what=""; else what="$(GUI_TESTS)"; fi; \
	  cmd="QT_API=$$api PYTEST_QT_API=$$api $$x $(PY) -m pytest -q $(PYTEST_ARGS) $$what"; \
	  echo "$$cmd"; eval "$$cmd" || exit $$?; \
	done

lint: venv
	$(VENV)/bin/ruff check src tests resources

# napari with the widget docked on the bundled sample: trains (50 epochs at 128 px, λ 0.5),
# scores, shows the table. Measured: see the README (minutes on a 2-core CPU, not seconds).
# Without a display it runs under Xvfb (installed by sysdeps as root), saves
# runs/demo/screenshot.png and exits. It is meant to work as the very first command.
DEMO_ARGS ?=
demo: venv sysdeps
	rm -rf runs/demo
	@if [ -z "$${DISPLAY:-}" ]; then \
	  echo "no DISPLAY: running under xvfb-run; the screenshot goes to runs/demo/screenshot.png"; \
	  xvfb-run -a -s "-screen 0 1600x1000x24" env _PAL_XVFB=1 $(PY) resources/demo.py $(DEMO_ARGS); \
	else \
	  $(PY) resources/demo.py $(DEMO_ARGS); \
	fi

# The same without a GUI (no system packages needed): score prints the worst masks as a
# table and, since the sample has corruption.csv, the detection ROC AUC.
demo-cli: venv
	rm -rf runs/demo-cli
	$(VENV)/bin/napari-pal train resources/sample --out runs/demo-cli --epochs 50 --size 128 --lam 0.5
	$(VENV)/bin/napari-pal score runs/demo-cli resources/sample --out runs/demo-cli/scores.csv

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
