# The README's two commands are `make demo` (set up, then the main job) and `make test`.
# Everything runs from the virtual environment .venv in this folder, made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CARTRIDGES ?= $(COMPANION_CARTRIDGES)
DATA ?= data
CONFIG ?= smoke
LIMIT ?= 500

.PHONY: setup demo test lint reproduce bench clean-data

# Install torch first if you want a particular build (e.g. CUDA); otherwise pip picks one.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

# The main job (for now): the preset database and a small dataset from a cartridge folder.
demo: setup
	@test -n "$(CARTRIDGES)" || { echo "make demo: set CARTRIDGES=DIR (a folder of DX7 .syx files)"; exit 1; }
	$(BIN)/companion presets build --cartridges "$(CARTRIDGES)" --db $(DATA)/presets.sqlite
	$(BIN)/companion presets info --db $(DATA)/presets.sqlite
	$(BIN)/companion dataset build --db $(DATA)/presets.sqlite --config small --limit $(LIMIT) --out $(DATA)/dataset-small-$(LIMIT)

test: setup
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/ruff format --check companion tests bench || true

# Runs the notebooks in order with papermill; executed copies go to build/notebooks.
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
reproduce: setup
	@mkdir -p build/notebooks
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb ($(CONFIG))"; \
	  $(BIN)/papermill --cwd notebooks --progress-bar -p config $(CONFIG) -p data_dir $(abspath $(DATA)) \
	    $$( [ -n "$(CARTRIDGES)" ] && echo "-p cartridges $(abspath $(CARTRIDGES))" ) \
	    $$nb build/$$nb || exit 1; \
	done

bench: setup
	@test -f $(DATA)/presets.sqlite || $(MAKE) --no-print-directory demo LIMIT=64
	$(BIN)/python bench/dataset_build.py --db $(DATA)/presets.sqlite --voices 1000 --config paper

clean-data:
	rm -rf $(DATA) build
