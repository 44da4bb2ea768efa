# The README's two commands are `make demo` (set up, then the main job) and `make test`.
# Everything runs from the virtual environment .venv in this folder, made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CARTRIDGES ?= $(COMPANION_CARTRIDGES)
DATA ?= data
CONFIG ?= smoke
LIMIT ?= 500
FIGURES ?= $(DATA)/figures

.PHONY: setup setup-system demo test lint reproduce bench clean-data

# Install torch first if you want a particular build (e.g. CUDA); otherwise pip picks one.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Debian packages for the sounds of other instruments (companion/ood.py): FluidSynth and the
# General MIDI soundfont. Elsewhere, install FluidSynth and set COMPANION_SOUNDFONT to a .sf2.
SYSTEM_PACKAGES := fluidsynth fluid-soundfont-gm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
setup-system:
	@if ! command -v apt-get >/dev/null; then \
	  echo "setup: no apt-get here; install FluidSynth and a General MIDI soundfont yourself"; \
	elif ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi

setup: $(BIN)/.installed setup-system

# The main job: a sound in, a DX7 voice out. INPUT=your.wav programs your own sound; without
# it, two sounds that are not DX7s are made and programmed: a sampled violin (General MIDI
# soundfont, FluidSynth) and a clarinet (Faust physical model, DawDreamer).
INPUT ?=
demo: setup
	@mkdir -p $(DATA)/demo
	$(if $(INPUT),,$(BIN)/companion sounds gm-violin faust-clarinet --out-dir $(DATA)/demo)
	$(BIN)/companion program $(if $(INPUT),"$(INPUT)",$(DATA)/demo/gm-violin.wav $(DATA)/demo/faust-clarinet.wav) --out-dir $(DATA)/demo/out --wav --png

test: setup
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/ruff format --check companion tests bench || true

# Runs the notebooks in order with papermill; executed copies go to build/notebooks, tables to
# FIGURES (data/figures; FIGURES=figures for the committed ones).
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
reproduce: setup
	@mkdir -p build/notebooks
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb ($(CONFIG))"; \
	  $(BIN)/papermill --cwd notebooks --progress-bar -p config $(CONFIG) -p data_dir $(abspath $(DATA)) \
	    -p figures_dir $(abspath $(FIGURES)) \
	    $$( [ -n "$(CARTRIDGES)" ] && echo "-p cartridges $(abspath $(CARTRIDGES))" ) \
	    $$nb build/$$nb || exit 1; \
	done

bench: setup
	@test -f $(DATA)/presets.sqlite || $(BIN)/companion presets build --cartridges "$(CARTRIDGES)" --db $(DATA)/presets.sqlite
	$(BIN)/python bench/dataset_build.py --db $(DATA)/presets.sqlite --voices 1000 --config paper
	$(BIN)/python bench/train_throughput.py --configs paper small
	$(BIN)/python bench/program_time.py --db $(DATA)/presets.sqlite

clean-data:
	rm -rf $(DATA) build
