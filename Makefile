# warren's build. Every target works on a fresh machine with Go 1.26 and git.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
BIN := $(CURDIR)/bin
TOOLS_BUILD := test/tools/build.sh
# The versioned cache the tools module builds into (outside the repository).
TOOLS_DIR := $(shell $(TOOLS_BUILD) --dir)
export WARREN_TOOLS_DIR := $(TOOLS_DIR)

# Packages whose tests need the local control planes (and so the tools).
TEST_TIMEOUT ?= 25m
# The longest packages, named first: `go test` starts packages in the order
# it is given them, -p (one per CPU) at a time, so these two run beside each
# other and the short ones fill in after, instead of one of them starting
# last.
TEST_FIRST := ./test/e2e/realnodes ./test/e2e/fleet

.PHONY: all build images tools host-packages test test-unit lint bench plane demo generate clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/ ./cmd/...

tools: host-packages
	@$(TOOLS_BUILD) >/dev/null

# What real nodes need from the distribution (runc, CNI plugins, iptables,
# conntrack): installed as root when missing, with a clear message otherwise.
host-packages:
	@test/tools/host-packages.sh

# warren's own images as archives, built like ko does (no Docker, no
# registry), named as config/default and the reconciler's default syncer
# image name them. Load with `ctr -n k8s.io images import FILE`.
IMAGE_TAG ?= v0.1.0
IMAGES := $(BIN)/images
images:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(IMAGE_TAG)" -o $(IMAGES)/ ./cmd/warren-reconciler ./cmd/warren-syncer
	$(GO) run ./test/cmd/images -o $(IMAGES)/warren-reconciler.tar ghcr.io/warren-dev/warren-reconciler:$(IMAGE_TAG)=$(IMAGES)/warren-reconciler
	$(GO) run ./test/cmd/images -o $(IMAGES)/warren-syncer.tar ghcr.io/warren-dev/warren-syncer:$(IMAGE_TAG)=$(IMAGES)/warren-syncer

generate: tools
	$(TOOLS_DIR)/controller-gen object paths=./reconciler/api/...
	$(TOOLS_DIR)/controller-gen crd paths=./reconciler/api/... output:crd:artifacts:config=config/crd/bases
	$(TOOLS_DIR)/controller-gen rbac:roleName=warren-reconciler paths=./reconciler/controller/... output:rbac:artifacts:config=config/rbac

# Fails when the generated files (deepcopy, CRDs, RBAC) differ from what
# `make generate` makes from the sources.
verify-generate: generate
	@out=$$(git status --porcelain -- reconciler/api config/crd config/rbac); \
	if [ -n "$$out" ]; then echo "make generate changes:"; echo "$$out"; git diff -- reconciler/api config/crd config/rbac; exit 1; fi

# Unit, integration and end-to-end tests. Tests that need a real control plane
# start their own from the tools cache; nothing is mocked.
test: tools lint verify-generate
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FIRST) ./...

# Only the tests that need no control plane.
test-unit:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# WARREN_BENCH_LARGE=1 adds the 5,000-cluster fleet (most of an hour on 2 cores).
bench: tools build
	WARREN_BENCH_LARGE=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 150m ./...

# A local control plane with a kwok fake node, until Ctrl-C.
plane: tools
	$(GO) run ./test/cmd/plane

# As root, the demo's host has a real node holding a syncer image built from
# this checkout (static, as in warren's image).
demo: tools
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demo/warren-syncer ./cmd/warren-syncer
	$(GO) run ./cmd/warren demo --syncer-binary $(BIN)/demo/warren-syncer

clean:
	rm -rf $(BIN)
