# keyhub: the two commands are `make run` and `make test`; see README.md.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
SQLC_VERSION := v1.31.1
SQLC := $(BIN)/sqlc-$(SQLC_VERSION)
PG_DIR := .keyhub/pg
# The Debian packages whose programs the tests run for real. db/require.sh
# installs the missing ones as root (waiting for another apt) and, in CI,
# fails when one is still missing instead of letting its tests skip.
TEST_PACKAGES := postgresql redis-server chromium nginx caddy docker-compose curl
# axe-core checks the dashboard's accessibility in its browser tests; it
# is cached per user, outside the repository, like the apt-installed Chromium.
AXE_VERSION := 4.14.1
AXE_JS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/keyhub/axe-core-$(AXE_VERSION)/node_modules/axe-core/axe.min.js
export KEYHUB_AXE_JS ?= $(AXE_JS)

# What `keyhub --version` prints in the image (`make up`): the checkout's
# tag or commit; a plain `make build` stamps the commit through the go
# command's VCS information instead.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: up help run stop test test-in-cluster packages build clean generate check-generated bench token chromium axe-core screenshots measure-propagation loadtest attack

## help: list these targets (the lines starting with two hashes)
help:
	@sed -n 's/^## //p' $(firstword $(MAKEFILE_LIST))

## run: serve on localhost:8080 with a local PostgreSQL (or DATABASE_URL) and, without SUPABASE_URL, dev-mode sign-in
# db/run.sh checks the address before anything starts and makes every way
# of stopping end clean (Ctrl-C, SIGTERM, make stop; its header lists them).
# exec: make's SIGTERM reaches the script itself, not a shell around it.
run: build
	@PG_DIR=$(PG_DIR) exec db/run.sh serve $(BIN)/keyhub

## up: docker compose up --build (docker-compose.yml), the image stamped with this checkout's VERSION for keyhub --version
up:
	KEYHUB_VERSION=$(VERSION) docker compose up --build

## stop: stop every make run of this checkout (gracefully) and its PostgreSQL cluster
stop:
	@PG_DIR=$(PG_DIR) db/run.sh stop

## test: go vet, gofmt, sqlc drift check and go test -race against a throwaway PostgreSQL and Redis
# nginx lives in /usr/sbin, which a non-root PATH lacks: the tests look for
# their programs on PATH.
test: export PATH := $(PATH):/usr/sbin:/sbin
test: packages $(SQLC) axe-core
	@db/pgcluster.sh throwaway -- db/redis.sh throwaway -- $(MAKE) --no-print-directory test-in-cluster

# -timeout: go test's default (10 minutes a package) only bounds a hang;
# on a shared machine at load 15, internal/httpapi alone takes minutes.
test-in-cluster:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*' -not -path './.keyhub/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	@$(MAKE) --no-print-directory check-generated
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run 'Allocat' ./internal/metrics/   # allocation counts are noise under -race

## packages: install the Debian packages make test runs (TEST_PACKAGES) when missing; in CI a missing one fails
packages:
	@db/require.sh $(TEST_PACKAGES)

## chromium: the headless browser of the dashboard tests (internal/dashboard)
chromium:
	@db/require.sh chromium

## axe-core: the accessibility checker of the dashboard tests, from npm into the user's cache when missing (npm through db/require.sh); in CI a missing one fails the tests
axe-core:
	@if [ ! -f "$(KEYHUB_AXE_JS)" ]; then \
	  db/require.sh npm || exit 1; \
	  if command -v npm >/dev/null 2>&1; then \
	    dir=$$(dirname "$$(dirname "$$(dirname "$(KEYHUB_AXE_JS)")")"); \
	    echo "axe-core not found; installing axe-core@$(AXE_VERSION) from npm into $$dir (dashboard accessibility tests)"; \
	    npm install --prefix "$$dir" --no-save --no-audit --no-fund --silent axe-core@$(AXE_VERSION) >/dev/null || exit 1; \
	  else \
	    echo "axe-core not found and npm missing: the dashboard's accessibility checks skip (in CI they fail)"; \
	  fi; \
	fi

## screenshots: regenerate the dashboard pictures in internal/dashboard/docs/ (a throwaway PostgreSQL, headless Chromium)
# TestDashboardAccessibility visits every page at both sizes: it takes them.
screenshots: chromium axe-core
	@db/pgcluster.sh throwaway -- env KEYHUB_DASHBOARD_SCREENSHOTS=$(CURDIR)/internal/dashboard/docs \
	  $(GO) test -count=1 -run '^TestDashboardAccessibility$$' ./internal/dashboard/

## build: bin/keyhub
build:
	$(GO) build -o $(BIN)/keyhub ./cmd/keyhub

## clean: remove the binaries builds leave (bin/keyhub, bin/keyhub-load, ./keyhub, ./mk); keeps bin/'s sqlc and .keyhub (make stop && rm -rf .keyhub drops the local database and dev keys)
clean:
	rm -f $(BIN)/keyhub $(BIN)/keyhub-load keyhub mk

## generate: regenerate internal/dbgen from db/queries and db/migrations
generate: $(SQLC)
	$(SQLC) generate

## check-generated: fail when the committed sqlc output differs from what sqlc produces
check-generated: $(SQLC)
	@$(SQLC) diff || { echo "internal/dbgen is out of date: run make generate and commit the result"; exit 1; }
	@echo "sqlc: generated code is up to date"

## bench: the benchmarks recorded in BENCHMARKS.md
bench:
	@db/pgcluster.sh throwaway -- db/redis.sh throwaway -- $(GO) test -run='^$$' -bench=. -benchmem ./internal/apikey/ ./internal/jwtverify/ ./internal/auth/ ./internal/metrics/ ./internal/ratelimit/

## measure-propagation: revoke on one process → refused and sockets closed on another, p50/p99 over 100 revokes (BENCHMARKS.md)
measure-propagation:
	@db/pgcluster.sh throwaway -- env KEYHUB_MEASURE=1 $(GO) test -count=1 -run '^TestRevocationPropagation$$' -v ./internal/app/ | grep -E '^\s+propagation_test.go|^(ok|FAIL|---)'

## loadtest: keyhub under load on loopback with a throwaway PostgreSQL: one table of throughput, p50/p99, ratios to /healthz, pgbench, WebSocket memory and revocation fan-out (a few minutes; not part of make test)
loadtest: export PATH := $(PATH):/usr/sbin:/sbin
loadtest: build
	@db/require.sh nginx
	$(GO) build -o $(BIN)/keyhub-load ./cmd/keyhub-load
	@ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	  db/pgcluster.sh throwaway -- $(BIN)/keyhub-load -keyhub $(BIN)/keyhub $(LOADTEST_FLAGS)

## attack: what a free key (60/min) reaches by every route across two keyhub processes sharing a throwaway PostgreSQL and Redis, and how long a newly published signing key waits under forged kids (about a minute; not part of make test)
attack: build
	$(GO) build -o $(BIN)/keyhub-load ./cmd/keyhub-load
	@db/pgcluster.sh throwaway -- db/redis.sh throwaway -- $(BIN)/keyhub-load -attack -keyhub $(BIN)/keyhub $(ATTACK_FLAGS)

## token: print a dev-mode access token (EMAIL=you@example.com)
token:
	@$(GO) run ./cmd/keyhub dev token --email $${EMAIL:-dev@example.com}

# Built once into bin/. CGO_ENABLED=0 makes sqlc parse SQL with PostgreSQL's
# parser compiled to WebAssembly (wasilibs/go-pgquery, run by wazero), the
# build sqlc itself uses on Windows: no C compiler, and about 2 minutes of
# CPU instead of the 13 that compiling the parser's C takes; the generated
# code is byte for byte the same. -v's package list, counted, is the progress.
$(SQLC):
	@echo "sqlc: building $(SQLC_VERSION) into bin/ (once; a few minutes on a first build)"
	@set -o pipefail; start=$$SECONDS; \
	  GOBIN=$(BIN) CGO_ENABLED=0 $(GO) install -v github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) 2>&1 | \
	  awk '/^go: downloading/ {if (!d++) print "sqlc: downloading its modules"; next} /^[a-z0-9.\/_-]+$$/ {if (++n % 25 == 0) print "sqlc: " n " packages compiled"; fflush(); next} {print; fflush()}'; \
	  mv $(BIN)/sqlc $(SQLC); echo "sqlc: built in $$((SECONDS - start)) s"
