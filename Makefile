# Drawbridge developer entry points. Every target sets up its own virtualenv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | $(PYTHON) -c "import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])")

.PHONY: help install test validate-catalog clean

help:
	@echo "make demo              the whole flow on an embedded local stack"
	@echo "make test              the full test suite"
	@echo "make dev               the local stack left running (python -m local.dev --help)"
	@echo "make validate-catalog  check policies/access.toml (CATALOG=path to check another file)"
	@echo "make bench             measure cold start, ack latency, calls per lifecycle, scaling (docs/PERFORMANCE.md)"
	@echo "make chaos             300 seeded fault scenarios over real HTTP; invariants table (docs/CHAOS.md)"
	@echo "make review-export     the access review as CSV/JSON on stdout (SINCE=7d FORMAT=csv; needs DRAWBRIDGE_TABLE)"
	@$(MAKE) --no-print-directory help-deploy

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

CATALOG ?= policies/access.toml
validate-catalog: $(STAMP)
	$(BIN)/python -m chalicelib.catalog $(CATALOG)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The whole story on an embedded local stack (moto_server + Slack stand-in + chalice local,
# all on 127.0.0.1), over real HTTP; exits non-zero if any step misbehaves. docs/DEMO.md
.PHONY: demo dev
demo: $(STAMP)
	$(BIN)/python -m local.demo

# The same stack left running for manual use (python -m local.dev --help); Ctrl-C stops it.
dev: $(STAMP)
	$(BIN)/python -m local.dev up

# The access review's export without Slack (docs/REFERENCE.md "Access review"): the table
# named by DRAWBRIDGE_TABLE, read with your AWS credentials; CSV or JSON on stdout.
SINCE  ?= 7d
FORMAT ?= csv
.PHONY: review-export
# stdout is the export and nothing else (piped into a file or jq): the virtualenv set-up and
# its output go to stderr, and no command line is echoed
review-export:
	@$(MAKE) --no-print-directory $(STAMP) >&2
	@$(BIN)/python -m chalicelib.review_export --since $(SINCE) --format $(FORMAT)

include mk/deploy.mk
include mk/bench.mk

# Randomized fault scenarios over real HTTP (moto_server and the Slack stand-in behind fault
# proxies), then the invariants; prints the table (scenario x runs x invariant) and exits
# non-zero if any invariant broke. Run i uses seed CHAOS_SEED+i; one seed again:
#   .venv/bin/python -m tests.chaos --seed 1042 --runs 1 --verbose          (docs/CHAOS.md)
CHAOS_RUNS ?= 300
CHAOS_SEED ?= 1000
CHAOS_JOBS ?= 2
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos --runs $(CHAOS_RUNS) --seed $(CHAOS_SEED) --jobs $(CHAOS_JOBS)
