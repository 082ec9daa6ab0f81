# The two commands of README.md: `make serve` and `make test`.
GO ?= go

.PHONY: serve test test-short vet bench fuzz soak torture

serve:
	$(GO) run ./cmd/chronicle serve

# Installs what the tests need (Debian's postgresql; chromium for the console
# test), starts a throwaway PostgreSQL on loopback unless
# CHRONICLE_TEST_POSTGRES is set, and runs every test on both backends with
# the race detector.
test:
	scripts/test-deps
	scripts/with-postgres $(GO) test -race -count=1 -timeout 30m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

bench:
	scripts/with-postgres $(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Each fuzzer for FUZZTIME (default 20 s): event payload validation, the
# upcaster chains, the HTTP command decoders, appends that must be
# accepted or refused identically by SQLite and PostgreSQL, and the audit
# trail's canonical JSON (and the check of an append's JSON in the same
# pass). Seed corpora
# are in each package's testdata/fuzz/. CI runs it after `make test`.
FUZZTIME ?= 20s
FUZZERS = .:FuzzValidateJSON upcast:FuzzUpcast order:FuzzOrderUpcast httpapi:FuzzCommandDecoders torture:FuzzAppendBothBackends audit:FuzzCanonicalize audit:FuzzPrepareAppend internal/eventjson:FuzzAppend personal:FuzzMembers
fuzz:
	scripts/with-postgres sh -c 'set -e; for f in $(FUZZERS); do \
		echo "fuzz: $$f for $(FUZZTIME)"; \
		GO=$(GO) scripts/fuzz $${f%%:*} $${f#*:} $(FUZZTIME); done'

# The reliability suite of RELIABILITY.md (kill -9, PostgreSQL crash, long
# transaction, full disk, soak) as `make test` runs it, verbosely.
torture:
	scripts/with-postgres $(GO) test -race -count=1 -v -timeout 30m ./torture

# The long soak: SOAK_DURATION (default 20m) of mixed commands on each
# backend, with rebuilds and a restart in the middle, then verify.
SOAK_DURATION ?= 20m
soak:
	scripts/with-postgres env SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -v -timeout 0 -run '^TestSoak$$' ./torture
