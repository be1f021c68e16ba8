# ckpt — see README.md. Targets a newcomer can guess.
GO       ?= go
GOBIN    ?= $(shell $(GO) env GOPATH)/bin
FUZZTIME ?= 30s
# The environment may set GOFLAGS=-buildvcs=false; ckpt version wants the
# revision when there is one.
BUILDFLAGS := -buildvcs=auto

# Tools the tests and lint need, built from source through the module proxy.
VERSITYGW_VERSION   ?= v1.8.0
STATICCHECK_VERSION ?= v0.8.2
VERSITYGW           := $(GOBIN)/versitygw
STATICCHECK         := $(GOBIN)/staticcheck
# The release tool 'make dist' runs, built the same way; not part of
# 'tools', which 'make test' needs, since it takes minutes to build.
GORELEASER_VERSION  ?= v2.15.1
GORELEASER          := $(GOBIN)/goreleaser

# ckpt is one static binary: without cgo, os/user and net use their pure Go
# versions, and the binary runs on any Linux (Alpine, older glibc).
STATIC := CGO_ENABLED=0

.PHONY: all build install man dist release-tools test test-short bench lint cross fuzz crash-test cover demo report-demo tools clean

all: build

## build: compile ./ckpt, statically linked
build:
	$(STATIC) $(GO) build $(BUILDFLAGS) -o ckpt .

## install: install ckpt, statically linked, into $(GOBIN) and run it
install:
	GOBIN=$(GOBIN) $(STATIC) $(GO) install $(BUILDFLAGS) .
	@$(GOBIN)/ckpt version
	@echo "installed $(GOBIN)/ckpt; add $(GOBIN) to PATH if 'ckpt --help' is not found"

## tools: install versitygw (the S3 server the tests run) and staticcheck
tools: $(VERSITYGW) $(STATICCHECK)

$(VERSITYGW):
	GOBIN=$(GOBIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(STATICCHECK):
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## release-tools: install goreleaser, which 'make dist' runs
release-tools: $(GORELEASER)

$(GORELEASER):
	GOBIN=$(GOBIN) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)

## man: write the man pages, from the commands' help, into man/
man:
	$(GO) run ./internal/docgen -man man

## dist: check .goreleaser.yaml and build a snapshot release into dist/:
## static binaries for linux, darwin and freebsd on amd64 and arm64,
## archives with the man pages and shell completions, .deb and .rpm
## packages, and checksums
dist: $(GORELEASER)
	$(GORELEASER) check
	$(GORELEASER) release --snapshot --clean

## test: lint, then every test with the race detector (fuzz seeds included),
## the end-to-end scripts against both a local and an S3 repository
# A race-enabled binary sleeps 1s before it exits unless GORACE says
# otherwise, and the end-to-end scripts run ckpt hundreds of times.
test: tools lint
	VERSITYGW=$(VERSITYGW) CKPT_REQUIRE_VERSITYGW=1 \
	GORACE="$${GORACE:-atexit_sleep_ms=10}" $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^TestManySteps$$' ./pkg/storage/
	VERSITYGW=$(VERSITYGW) CKPT_REQUIRE_VERSITYGW=1 $(GO) test -count=1 -run '^TestFleetExactlyOnce$$' .

## test-short: the quick subset, no race detector
test-short:
	$(GO) test -short -count=1 ./...

## bench: ckpt as users run it, each next to a floor measured in the same run:
## library saves next to raw syscalls; step and mark over 4 KiB, 256 MiB and
## 1 GiB payloads; the S3 requests and round trips of every verb through a
## counting proxy (20 ms added); 1 GiB on S3 next to the bare SDK; list, last
## and gc over 10,000 local and 1,000 S3 sessions next to ls -l and
## ListObjectsV2; ckpt step in an empty session next to one with a 1 GiB
## payload and one with 10,000 earlier steps (and on S3); peak RSS; contention;
## start-up: a 4 KiB ckpt save process next to the floor process
## (internal/savefloor), an empty Go program with and without the AWS SDK,
## and ckpt version, in one run
bench: $(VERSITYGW)
	$(GO) test -run '^$$' -bench . -benchtime 300x -count 1 ./pkg/storage/
	$(GO) test -run '^$$' -bench '^BenchmarkStartup$$' -benchtime 50x -count 1 .
	VERSITYGW=$(VERSITYGW) $(GO) test -run '^$$' -bench 'CLIMetadata|S3Verbs' -benchtime 7x -count 1 -timeout 20m .
	VERSITYGW=$(VERSITYGW) $(GO) test -run '^$$' -bench 'CLI1GiB|S31GiB|ListScale' -benchtime 1x -count 1 -timeout 20m .
	$(GO) test -run '^$$' -bench '^BenchmarkStepCost$$' -benchtime 20x -count 1 .
	VERSITYGW=$(VERSITYGW) $(GO) test -run '^$$' -bench 'S3StepCost' -benchtime 5x -count 1 -timeout 20m .
	$(GO) test -run '^$$' -bench 'Contention16' -benchtime 3x -count 1 .
	VERSITYGW=$(VERSITYGW) $(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/storage/s3store/
	VERSITYGW=$(VERSITYGW) $(GO) test -run '^$$' -bench '^BenchmarkFleetS3$$' -benchtime 1x -count 1 -timeout 10m .

## lint: go vet, gofmt, and staticcheck when it is installed, after cross
lint: cross
	$(GO) vet ./...
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if [ -x $(STATICCHECK) ]; then $(STATICCHECK) ./...; elif command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed ('make tools' installs it); skipped"; fi

## cross: go vet and go build for darwin, freebsd, openbsd, netbsd and illumos (amd64)
## and darwin/freebsd arm64 — these compile, only linux is tested
CROSS ?= darwin/amd64 freebsd/amd64 openbsd/amd64 netbsd/amd64 illumos/amd64 darwin/arm64 freebsd/arm64
cross:
	@set -e; for t in $(CROSS); do \
		echo "GOOS=$${t%/*} GOARCH=$${t#*/} go vet, go build"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(STATIC) $(GO) vet ./...; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(STATIC) $(GO) build -o /dev/null .; \
	done

## fuzz: run each fuzz target for FUZZTIME (default 30s)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./pkg/checkpoint/
	$(GO) test -run '^$$' -fuzz '^FuzzStream$$' -fuzztime $(FUZZTIME) ./pkg/checkpoint/
	$(GO) test -run '^$$' -fuzz '^FuzzHeaderJSON$$' -fuzztime $(FUZZTIME) ./pkg/checkpoint/
	$(GO) test -run '^$$' -fuzz '^FuzzManifest$$' -fuzztime $(FUZZTIME) ./pkg/checkpoint/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateID$$' -fuzztime $(FUZZTIME) ./pkg/repository/

## crash-test: SIGKILL a writer mid-save CRASHKILLS times (default 1000)
CRASHKILLS ?= 1000
crash-test:
	$(GO) test -count=1 -v -timeout 60m -run '^TestCrashLoop$$' ./pkg/storage/ -args -crash.kills=$(CRASHKILLS)

## cover: test coverage per package, and cover.html
cover:
	$(GO) test -count=1 -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o cover.html

## demo: a four-step run killed with SIGKILL mid-step, then resumed (testdata/demo.sh)
demo: build
	sh testdata/demo.sh ./ckpt

## report-demo: 4 runners share 20 steps (ckpt queue), one is SIGKILLed mid-step;
## writes report-demo/ckpt-report.html and a headless Chromium screenshot of it
report-demo: build
	sh testdata/report-demo.sh ./ckpt report-demo

clean:
	rm -f ckpt coverage.out cover.html
