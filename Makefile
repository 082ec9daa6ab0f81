# The two commands of README.md: `make serve` and `make test`.
GO ?= go

.PHONY: serve test test-short vet bench

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
