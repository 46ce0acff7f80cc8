# Two commands for a newcomer: `make demo` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch that our build machines have on disk; pyproject keeps a general range.
TORCH_PIN := torch==2.13.0

.PHONY: install install-dev demo test lint typecheck unit bench bundles clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(VENV)/.base-stamp: $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev-stamp: $(VENV)/.base-stamp
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[dev,train,validation,openvino]'
	touch $@

install: $(VENV)/.base-stamp
install-dev: $(VENV)/.dev-stamp

demo: $(VENV)/.base-stamp
	$(BIN)/sonoedge demo

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot see setuptools' editable finder, so it checks a link farm shaped like the
# installed package (sdk/ -> sonoedge, firmware_bridge/ -> sonoedge.firmware_bridge, ...).
typecheck: $(VENV)/.dev-stamp
	@rm -rf .typecheck && mkdir -p .typecheck/sonoedge
	@for f in sdk/*; do ln -s ../../$$f .typecheck/sonoedge/; done
	@for p in firmware_bridge quantization devices; do ln -s ../../$$p .typecheck/sonoedge/$$p; done
	MYPYPATH=.typecheck $(BIN)/mypy -p sonoedge

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
# The suite runs under an ASCII locale (CI machines may have one): any file or pipe read
# without an explicit encoding, or a symbol printed without a fallback, fails here too.
unit: $(VENV)/.dev-stamp
	@env -u PYTHONIOENCODING LC_ALL=C PYTHONUTF8=0 $(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck unit

bench: $(VENV)/.dev-stamp
	$(BIN)/python benchmarks/ingest.py

# The signed bundles shipped in sdk/zoo/bundles/ (needs the project's private key, kept outside git).
bundles: $(VENV)/.dev-stamp
	@test -n "$$SONOEDGE_SIGNING_KEY" || { echo "set SONOEDGE_SIGNING_KEY to the project key"; exit 2; }
	$(BIN)/python -m sonoedge.devices.release --out sdk/zoo/bundles

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .typecheck
