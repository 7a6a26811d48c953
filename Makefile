# wbagent — the front door. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo 0.0.0)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X wbagent/internal/version.Version=$(VERSION) -X wbagent/internal/version.Commit=$(COMMIT) -X wbagent/internal/version.Date=$(DATE)

.PHONY: help build build-windows lint test deps

# Tools as command:debian-package. Samba is the real AD DC of the
# integration tests, the demo, the benchmarks and the chaos suite; the
# packaging tools build and check the packages (make package, make test);
# tinyproxy is the HTTP proxy of the transport tests.
SAMBA_TOOLS := samba:samba samba-tool:samba-ad-dc samba-tool:samba-ad-provision samba-tool:samba-dsdb-modules \
  samba-tool:python3-samba ldapmodify:ldap-utils kinit:krb5-user wbinfo:winbind
PACKAGE_TOOLS := lintian:lintian rpm:rpm debootstrap:debootstrap wixl:wixl msiinfo:msitools
PROXY_TOOLS := tinyproxy:tinyproxy

# install-tools installs the Debian packages of the tools in $(1) that are
# missing (apt-get, when root), or says which to install.
define install-tools
	@missing=""; for t in $(1); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing tools. Install them (as root): apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/wbagent for this machine, version-stamped
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/wbagent ./agent

build-windows: ## cross-compile bin/wbagent.exe and vet the Windows-only files
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/wbagent.exe ./agent
	GOOS=windows GOARCH=amd64 $(GO) vet ./...

lint: ## gofmt, go vet and staticcheck (pinned as a tool in go.mod)
	@out=$$(gofmt -l agent internal); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

deps: deps-samba deps-package ## install what the tests need: Go modules, Samba, the packaging tools and tinyproxy (apt-get, when root)
	$(call install-tools,$(PROXY_TOOLS))

.PHONY: deps-samba deps-package
deps-samba: ## install Go modules and Samba, all the demo, benchmarks and chaos suite need
	$(GO) mod download
	$(call install-tools,$(SAMBA_TOOLS))

deps-package: ## install the packaging tools (lintian, rpm, debootstrap, wixl, msitools)
	$(call install-tools,$(PACKAGE_TOOLS))

# Packages with the most concurrency, run again under the race detector.
RACE_PKGS := ./internal/devbus/... ./internal/bus/... ./internal/wsconn/... ./internal/writeback/... ./internal/ledger/... ./internal/audit/... ./internal/telemetry/...
# Short fuzz runs of every decoder that reads untrusted bytes (package:target).
FUZZ := ./internal/devbus/amqp:FuzzParseFrame ./internal/devbus/amqp:FuzzUnmarshal \
  ./internal/protocol:FuzzOpen ./internal/protocol:FuzzParseRequest ./internal/protocol:FuzzStrictJSON \
  ./internal/ledger:FuzzDecodeSessionState ./internal/audit:FuzzVerify
# A count, not a duration: a duration-based -fuzztime can fail spuriously
# with "context deadline exceeded" in Go 1.26 (golang/go#75804).
FUZZTIME ?= 100000x

test: deps lint build build-windows ## everything: lint, builds, unit and integration tests (Samba AD DC + devbus), race, short fuzz
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)
	@for f in $(FUZZ); do \
	  echo "fuzz $${f#*:} ($${f%%:*}): $(FUZZTIME) inputs"; \
	  out=$$($(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}" 2>&1) || { echo "$$out"; exit 1; }; \
	done
	@echo "make test: all passed"

.PHONY: package
package: deps-package ## build dist/: the .deb and .rpm (nfpm) and the .msi (wixl; apt-get installs msitools when root)
	GO='$(GO)' GO_LDFLAGS='$(LDFLAGS)' installer/package.sh $(CURDIR)/dist

.PHONY: demo
demo: deps-samba build ## provision a throwaway AD domain, run devbus and the agent, show five writebacks and the audit trail, tear down
	$(GO) run ./internal/lab/demo/wbdemo --agent $(BIN)/wbagent

.PHONY: bench
BENCH_OUT ?= $(BIN)/bench.json
bench: deps-samba ## benchmark against a fresh Samba AD DC and devbus: prints a markdown table, writes BENCH_OUT (default bin/bench.json)
	$(GO) build -o $(BIN)/wbbench ./internal/lab/bench/wbbench
	BENCH_OUT='$(BENCH_OUT)' $(BIN)/wbbench
	@echo "== micro-benchmarks: request verify+open, devbus, directory vs raw go-ldap, pipeline, ledger, audit"
	$(GO) test -run '^$$' -bench . -benchmem ./internal/protocol ./internal/devbus ./internal/directory ./internal/writeback ./internal/ledger ./internal/audit

.PHONY: chaos
chaos: deps-samba ## the full chaos suite: faults against Samba AD DC, devbus and agents, invariants checked (make test runs its short form)
	WBAGENT_CHAOS=full $(GO) test -count=1 -timeout 60m -v ./internal/lab/chaos/

.PHONY: test-windows
# What the Windows lane needs besides the Samba tools of deps, as
# command:debian-package.
WINE_TOOLS := wine:wine /usr/lib/wine/wine64:wine64 wineserver:wine x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32
test-windows: deps ## the Windows lane: the MSI (make package) installed under Wine (private prefix in bin/wine), service started, a reset applied, removed
	$(call install-tools,$(WINE_TOOLS))
	@# One version for the build and the lookup, even if HEAD moves meanwhile.
	@read -r v _ < <(installer/version.sh) && PKG_VERSION=$$v $(MAKE) --no-print-directory package && \
	msi=$(CURDIR)/dist/wbagent-$$v-x64.msi && test -f "$$msi" && \
	WBAGENT_WINE=1 WBAGENT_WINE_MSI="$$msi" $(GO) test -count=1 -timeout 10m -v -run 'TestWindowsService' ./internal/lab/wine/
