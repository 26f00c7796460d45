# Local development. Needs only Python 3.11+ on the machine; everything else comes from pip.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-long schemas bench bench-intake bench-matching bench-deadlines bench-notify bench-reporting clean-data images

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependencies change.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[local,test,bench]'
	touch $@

$(VENV): $(PY)

run: install
	$(PY) -m devstack.run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The whole suite plus the long fault and abuse variants (tests marked long).
test-long: install
	$(PY) -m pytest --long $(PYTEST_ARGS)

schemas: install
	$(PY) -m schemas

bench: install
	$(PY) -m bench

bench-intake: install
	$(PY) -m bench intake

bench-matching: install
	$(PY) -m bench matching

bench-deadlines: install
	$(PY) -m bench deadlines

bench-notify: install
	$(PY) -m bench notify

bench-reporting: install
	$(PY) -m bench reporting

clean-data:
	rm -rf .data

# The one image of the four services (Dockerfile). Needs a running Docker engine with BuildKit.
IMAGE_REPO ?= ghcr.io/hotline111/hotline111
PROJECT_VERSION = $(shell sed -n '/^\[project\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' pyproject.toml)
IMAGE_TAG ?= $(PROJECT_VERSION)
images:
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine is reachable (docker info failed); run it where one is." >&2; exit 1; }
	DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(PROJECT_VERSION) \
		--label org.opencontainers.image.revision=$$(git rev-parse HEAD 2>/dev/null) \
		-t $(IMAGE_REPO):$(IMAGE_TAG) .
