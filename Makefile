# The two commands of the README: `make demo` (set up + main job on the demo data) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= runs/demo

.PHONY: demo test setup browser bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"

# Reinstall only when the dependency pins change.
# pyradiomics 3.0.1 is an sdist whose setup.py imports numpy (no build requirements declared): build it
# against the pinned numpy without build isolation, before the rest (pip would otherwise fail on it).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$$(grep -o 'numpy==[0-9.]*' pyproject.toml)" "$$(grep -o 'setuptools==[0-9.]*' pyproject.toml)"
	$(BIN)/pip install -q --no-build-isolation "$$(grep -o 'pyradiomics==[0-9.]*' pyproject.toml)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/ctnodule run --out $(DEMO) --force

# Headless Chromium for tests/test_demo_pages.py (Debian's packages; no browser download). Installed when
# missing and we are root with apt-get; otherwise that test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "note: chromium/chromedriver missing and not root: the page test in headless Chromium will skip"; fi

test: setup browser
	$(BIN)/python -m pytest -q

# Speed/accuracy benchmarks: each prints its numbers (real data from $(SHARED) where present).
SHARED ?= ../shared/data
bench: setup
	$(BIN)/python bench/bench_import.py $(SHARED)
	$(BIN)/python bench/bench_preprocess.py
	$(BIN)/python bench/bench_evaluate.py $(SHARED)/lidc-voi
	$(BIN)/python bench/bench_malloc.py
	$(BIN)/python bench/bench_startup.py
	$(BIN)/ctnodule import voi $(SHARED)/lidc-voi runs/bench/voi --force
	$(BIN)/python bench/bench_train.py --data runs/bench/voi --out runs/bench/train
	$(BIN)/python bench/bench_readers.py runs/bench/voi runs/bench/train/default-binary runs/bench/train/default-multiclass
	$(BIN)/python bench/bench_radiomics.py $(SHARED)/lidc-voi runs/bench/voi runs/bench/train/default-binary runs/bench/train/default-multiclass
	$(BIN)/python bench/bench_segment.py $(SHARED)
	$(BIN)/python bench/bench_auto_masks.py runs/bench/train/default-binary runs/bench/train/default-multiclass --voi $(SHARED)/lidc-voi
	$(BIN)/python bench/bench_predict_ct.py runs/bench/train/default-binary
	$(BIN)/python bench/bench_serve.py runs/bench/train/default-binary
	$(BIN)/python bench/bench_cgan.py $(SHARED)/lidc-voi
	$(BIN)/python bench/bench_gpu.py runs/bench/voi
	$(BIN)/ctnodule train runs/bench/voi --out runs/bench/infer-default --force
	$(BIN)/ctnodule train runs/bench/voi --preset fast --out runs/bench/infer-fast --force
	$(BIN)/python bench/bench_infer.py runs/bench/voi runs/bench/infer-default --fast-run runs/bench/infer-fast --out runs/bench/bundles

lint: setup
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
