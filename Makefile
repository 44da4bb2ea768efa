# The README's two commands are `make demo` (set up, then the main job) and `make test`.
# Everything runs from the virtual environment .venv in this folder, made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CARTRIDGES ?= $(COMPANION_CARTRIDGES)
DATA ?= data
CONFIG ?= smoke
FIGURES ?= $(DATA)/figures
SITE ?= $(DATA)/site
NOTEBOOKS_OUT ?= build/notebooks

.PHONY: setup setup-system setup-test-system check-cartridges site site-check demo app readme test lint reproduce bench clean-data

# Install torch first if you want a particular build (e.g. CUDA); otherwise pip picks one.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Debian packages for the sounds of other instruments (companion/data/instruments.py): FluidSynth and the
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

# Debian packages the tests need besides: Jekyll (the site) and Chromium + ChromeDriver (the
# browser check of the site).
TEST_PACKAGES := jekyll chromium chromium-driver
setup-test-system:
	@if command -v apt-get >/dev/null && ! dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(TEST_PACKAGES); \
	fi

# The main job: a sound in, a DX7 voice out. INPUT=your.wav programs your own sound; without
# it, two sounds that are not DX7s are made and programmed: a sampled violin (General MIDI
# soundfont, FluidSynth) and a clarinet (Faust physical model, DawDreamer). With a cartridge
# library (CARTRIDGES or COMPANION_CARTRIDGES), its preset database is built once and used as
# program's --library (its retrieval index is built on first use, about 3.5 min for 27k voices
# on 2 cores, with a progress bar); without one, `companion library get` fetches the public
# collection once (15 MB, then the same build) and program uses it. QUALITY=fast|good|best|max (default best: about 5 s a sound; max: a minute).
# NOTE=N: the key you played it at, where the voice will play it (default auto: the note of
# its pitch, the key a musician presses for it); VARIANTS=N: also a bank of the N best
# distinct answers (NAME-variants.syx).
INPUT ?=
QUALITY ?= best
NOTE ?= auto
VARIANTS ?= 0
LIBRARY_DB := $(if $(CARTRIDGES),$(DATA)/presets.sqlite)
# the preset database of CARTRIDGES, built once; without CARTRIDGES the public DX7 collection,
# downloaded and built once by `companion library get` (offline: its one line, then program
# goes on with the library the model generates)
GET_LIBRARY = $(if $(LIBRARY_DB),@test -f $(LIBRARY_DB) || $(BIN)/companion presets build \
  --cartridges "$(CARTRIDGES)" --db $(LIBRARY_DB),@$(BIN)/companion library get || true)
demo: setup
	@mkdir -p $(DATA)/demo
	$(GET_LIBRARY)
	$(if $(INPUT),,$(BIN)/companion sounds gm-violin faust-clarinet --out-dir $(DATA)/demo)
	$(BIN)/companion program $(if $(INPUT),"$(INPUT)",$(DATA)/demo/gm-violin.wav $(DATA)/demo/faust-clarinet.wav) --out-dir $(DATA)/demo/out --wav --png --quality $(QUALITY) --note $(NOTE) --variants $(VARIANTS) --overwrite $(if $(LIBRARY_DB),--library $(LIBRARY_DB))

# The tests, then every notebook as it is (nbval; only cells marked NBVAL_CHECK_OUTPUT must
# give their stored output).
test: setup setup-test-system
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/python -m pytest -q --durations=20 --nbval-lax tests notebooks

lint: setup
	$(BIN)/ruff check companion tests bench notebooks/*.py
	$(BIN)/ruff format --check companion tests bench || true

# Runs the notebooks in order with papermill; executed copies go to build/notebooks, tables to
# FIGURES (data/figures; FIGURES=figures for the committed ones).
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Scale of each config: voices in the datasets (0: all), epochs (0: the config's), test voices
# in the table, interpolation pairs, new voices measured, voices and recordings on the site.
SCALE_smoke := -p limit 64 -p epochs 2 -p n_recordings 2
SCALE_small := -p limit 0 -p epochs 0 -p test_voices 200 -p pairs 100 -p voices 256 -p n_voices 8 -p n_recordings 4
SCALE_paper := $(SCALE_small)
reproduce: check-cartridges setup
	@mkdir -p $(NOTEBOOKS_OUT)
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb ($(CONFIG))"; \
	  $(BIN)/papermill --cwd notebooks --progress-bar -p config $(CONFIG) -p data_dir $(abspath $(DATA)) \
	    $(SCALE_$(CONFIG)) -p figures_dir $(abspath $(FIGURES)) -p site_dir $(abspath $(SITE)) \
	    -p programming_dir $(abspath $(DATA))/04_programming -p out_dir $(abspath $(DATA))/$$(basename $$nb .ipynb) \
	    -p interpolation_dir $(abspath $(DATA))/05_interpolation -p ood_dir $(abspath $(DATA))/06_out_of_domain \
	    $$( [ -n "$(CARTRIDGES)" ] && echo "-p cartridges $(abspath $(CARTRIDGES))" ) \
	    $$nb $(NOTEBOOKS_OUT)/$$(basename $$nb) || exit 1; \
	done
	$(BIN)/python -m companion.publishing.notebook_pages $(NOTEBOOKS_OUT) $(SITE) $(DATA) $(FIGURES)

# Notebook 01 reads the cartridges: say so in one line before anything runs.
check-cartridges:
	$(if $(and $(CARTRIDGES),$(wildcard $(CARTRIDGES)/.)),@:,$(error reproduce: CARTRIDGES='$(CARTRIDGES)' \
	  is not a folder; set CARTRIDGES=DIR or COMPANION_CARTRIDGES to the DX7 .syx library))

# The web app: notebook 08 served by Voila on http://127.0.0.1:$(PORT) (upload a sound, hear and
# download its DX7 voice; code hidden; settings in notebooks/voila.json). With a cartridge library (CARTRIDGES), its preset
# database is built once and matched against; without, the library of `companion library get`,
# as in `make demo`.
PORT ?= 8866
app: setup
	$(GET_LIBRARY)
	cd notebooks && $(if $(LIBRARY_DB),COMPANION_LIBRARY="$(abspath $(LIBRARY_DB))") ../$(BIN)/voila 08_explorer.ipynb --port=$(PORT)

# The README's results, written from figures/*.csv (tests/test_readme.py checks they agree).
readme: setup
	$(BIN)/python -m companion.publishing.readme README.md figures

# The demo site: build site/ (or SITE=...) with Jekyll, then open every page in Chromium.
site: setup-test-system
	jekyll build -s $(or $(SITE_SRC),site) -d $(or $(SITE_SRC),site)/_site

site-check: setup site
	$(BIN)/python -c "import json, sys; from companion.publishing.site_check import check_site; \
	r = check_site('$(or $(SITE_SRC),site)/_site', 'build/site-screenshot.png'); print(json.dumps(r, indent=1)); \
	sys.exit(any(v[k] for v in r.values() for k in ('console_errors', 'bad_urls', 'bad_audio', 'bad_images')))"

bench: setup
	@test -f $(DATA)/presets.sqlite || $(BIN)/companion presets build --cartridges "$(CARTRIDGES)" --db $(DATA)/presets.sqlite
	$(BIN)/python bench/dataset_build.py --db $(DATA)/presets.sqlite --voices 1000 --config paper
	$(BIN)/python bench/train_throughput.py --configs paper small
	$(BIN)/python bench/index_build.py --db $(DATA)/presets.sqlite
	$(BIN)/python bench/program_quality.py --db $(DATA)/presets.sqlite --out $(FIGURES)
	$(BIN)/python bench/far_sounds.py --db $(DATA)/presets.sqlite --out $(FIGURES)
	$(BIN)/python bench/recordings.py --db $(DATA)/presets.sqlite --out $(FIGURES)
	$(BIN)/python bench/recordings.py --db $(DATA)/presets.sqlite --quality best --retrieval 0 --out $(FIGURES)
	$(BIN)/python bench/program_memory.py --db $(DATA)/presets.sqlite

clean-data:
	rm -rf $(DATA) build

# The GPU job (scripts/device/README.md): what it carries to the device machine, made here
# (wheels the device lacks, the library as one tarball, in build/device/), and the whole job at
# smoke scale on the CPU (DEVICE_JOB=paper or table), unpacked into build/device/smoke-model.
.PHONY: device-wheels device-smoke
DEVICE_JOB ?= paper
device-wheels: setup
	COMPANION_CARTRIDGES="$(CARTRIDGES)" scripts/device/wheels.sh

device-smoke: setup
	rm -rf build/device/smoke-out build/device/smoke-model
	$(BIN)/python scripts/device/job.py --job $(DEVICE_JOB) --smoke --limit 300 \
	  --cartridges "$(or $(CARTRIDGES),../shared/data/dx7-patch-library)" \
	  --work build/device/smoke-work --out build/device/smoke-out
	$(BIN)/python scripts/device/unpack.py build/device/smoke-out --out build/device/smoke-model
