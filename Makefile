# MacLLM: `make run` opens the app on the default model, `make test` passes every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bundle qt-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

qt-deps:
	@bash packaging/linux/ensure-qt-deps.sh

run: install qt-deps
	$(VENV)/bin/macllm-app

lint: install
	$(PY) -m ruff check macllm_app tests bench packaging
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider

bench: install
	$(PY) bench/run_all.py

bundle: install
	$(PY) -m pip install --quiet 'pyinstaller>=6.6'
	$(PY) packaging/make_icons.py build/icons
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/macllm.spec
	@bash packaging/finish_bundle.sh

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
