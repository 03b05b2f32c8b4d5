# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PORT   ?= 8000
HOST   ?= 127.0.0.1
NPY_FLAG := -DNPY_IN_ARRAY=NPY_ARRAY_IN_ARRAY

CHROMIUM := /usr/bin/chromium
ORTHANC := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
NGINX := /usr/sbin/nginx
# The viewer's 3D rendering library (BSD-2-Clause, 2.3 MB): fetched once from npm, git-ignored
NIIVUE_VERSION := 0.69.0
NIIVUE := clients/web/vendor/niivue.umd.js

niivue: $(NIIVUE)

NPM := /usr/bin/npm

.PHONY: niivue ohif serve serve-replicas test bench bench-load bench-browser bench-propagation bench-jobs worker openapi lint clean-venv

# The venv is rebuilt when pyproject.toml changes. GeodisTK's sdist needs NumPy and
# setuptools present and the NPY_IN_ARRAY alias to compile against NumPy 2; torch is pinned
# to the CPU build that is already on disk (any other spec pulls CUDA packages).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --progress-bar off --upgrade pip setuptools wheel "numpy>=2.0"
	$(PIP) install --quiet --progress-bar off torch==2.13.0
	CFLAGS="$(NPY_FLAG)" CPPFLAGS="$(NPY_FLAG)" $(PIP) install --quiet --progress-bar off --no-build-isolation --no-cache-dir "geodistk>=0.1.7"
	$(PIP) install --quiet --progress-bar off -e ".[dev,train]"
	touch $(STAMP)

# `make serve` is a local developer server: with no API keys configured it switches dev mode
# on explicitly (no auth, loopback only). Configure MEDSEG_API_KEYS(_FILE) to require keys.
DEV_MODE := $(if $(MEDSEG_API_KEYS)$(MEDSEG_API_KEYS_FILE),0,1)

serve: $(STAMP) $(NIIVUE)
	MEDSEG_DEV_MODE=$${MEDSEG_DEV_MODE:-$(DEV_MODE)} HOST=$(HOST) PORT=$(PORT) $(PY) -m medseg.main

# N API replicas (3) and M job workers (2) on one Redis behind a private nginx on loopback
# (round robin), as a cluster runs them: `make serve-replicas API=3 JOB_WORKERS=2 PORT=8080`
API ?= 3
JOB_WORKERS ?= 2
serve-replicas: $(STAMP) $(NGINX)
	MEDSEG_DEV_MODE=$${MEDSEG_DEV_MODE:-$(DEV_MODE)} $(PY) -m medseg.replicas --api $(API) \
	  --workers $(JOB_WORKERS) --port $(if $(filter 8000,$(PORT)),8080,$(PORT))

# The replica tests (tests/scale) and `make serve-replicas` run Debian's nginx (never the
# system service: a private configuration on loopback ports).
$(NGINX):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "the replica tests need nginx: apt-get install nginx" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends nginx

# The viewer's browser tests drive Debian's Chromium (never a browser Playwright downloads).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "the browser tests need $(CHROMIUM): apt-get install chromium" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends chromium chromium-driver fonts-dejavu-core

# `npm pack` writes the published package as it is (no install scripts run); its integrity is
# checked by npm against the registry's, and only the built UMD file is kept.
$(NIIVUE):
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; \
	  then SUDO="sudo -n"; else echo "the 3D view needs npm once: apt-get install npm" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends npm; }
	rm -rf $(@D)/.npm-pack && mkdir -p $(@D)/.npm-pack
	cd $(@D)/.npm-pack && npm pack --silent @niivue/niivue@$(NIIVUE_VERSION) >/dev/null
	tar -xzf $(@D)/.npm-pack/niivue-niivue-$(NIIVUE_VERSION).tgz -C $(@D)/.npm-pack \
	  package/dist/niivue.umd.js package/package.json
	mv $(@D)/.npm-pack/package/dist/niivue.umd.js $@.tmp
	mv $(@D)/.npm-pack/package/package.json $(@D)/niivue-package.json  # licence, version
	rm -rf $(@D)/.npm-pack && mv $@.tmp $@

# The PACS tests (tests/pacs) start their own Orthanc with its DICOMweb plug-in (Debian's).
$(ORTHANC):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "the PACS tests need Orthanc: apt-get install orthanc orthanc-dicomweb" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends orthanc orthanc-dicomweb

# The OHIF viewer served at /ohif (docs/ohif.md): the prebuilt dist/ of npm's @ohif/app,
# fetched once with `npm pack` (the tarball only, ~50 MB, kept in npm's cache) into the
# git-ignored .cache/ohif/<version>/dist and patched for the base path; a no-op once there.
ohif: $(STAMP) $(NPM)
	$(PY) -m medseg.ohif fetch

$(NPM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "the OHIF viewer is fetched with npm: apt-get install npm" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends npm

# lint first: a type or style error fails fast, before the 5-minute suite
test: lint $(CHROMIUM) $(ORTHANC) $(NGINX) $(NIIVUE) ohif
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m medseg_bench.latency

# concurrent clients clicking on the shared CT series: clicks/s, p50/p95, errors (~2 minutes)
bench-load: $(STAMP)
	$(PY) -m medseg_bench.load

bench-propagation: $(STAMP)
	$(PY) -m medseg_bench.propagation

bench-jobs: $(STAMP)
	$(PY) -m medseg_bench.jobs

# an extra job worker against MEDSEG_REDIS_URL (`make serve` already starts one)
worker: $(STAMP)
	$(PY) -m medseg.worker

bench-browser: $(STAMP) $(CHROMIUM) $(NIIVUE)
	$(PY) -m medseg_bench.browser

openapi: $(STAMP)
	$(PY) -m medseg.api.openapi_export openapi/openapi.json

lint: $(STAMP)
	$(VENV)/bin/ruff check services clients protocol benchmarks tests
	$(VENV)/bin/mypy

clean-venv:
	rm -rf $(VENV)
