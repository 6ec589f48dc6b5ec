# dmsize. `make demo` and `make test` are the two commands that matter; see README.md.
SHELL := /bin/bash
GO ?= go
BUILD := build
VM := integration/vm
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# Test VM profiles and the test packages each one runs.
PROFILES := bookworm trixie
VM_TESTS_bookworm := ./integration/graphdriver
VM_TESTS_trixie := ./integration/snapshotter
# Whole-VM limit (seconds): a hung guest is killed and reported with its console tail.
VM_TIMEOUT ?= 2700

export CGO_ENABLED := 0

.PHONY: all test unit vm-test deps plugin demo images clean $(addprefix vm-test-,$(PROFILES)) $(addprefix image-,$(PROFILES))

all: plugin

## deps: install the host packages the VM needs (as root, via apt)
deps:
	@$(VM)/host-deps.sh

## unit: vet and unit tests; they run anywhere
unit:
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./...
	$(GO) test -count=1 ./...

## plugin: the managed plugin directory build/plugin (config.json + rootfs), no Docker needed
plugin:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BUILD)/bin/dmsize-plugin ./plugin
	rootfs/assemble.sh $(BUILD)/plugin config.json $(BUILD)/bin/dmsize-plugin

## test: unit tests, then the VM suite on every profile
test: deps unit vm-test

vm-test: $(addprefix vm-test-,$(PROFILES))

## image-PROFILE: build (or reuse) the cached VM image of a profile
$(addprefix image-,$(PROFILES)): image-%: deps
	@$(VM)/build-image.sh $* >/dev/null

# payload-PROFILE-RUN: what the VM gets on /payload; RUN is the guest script it runs.
define payload
	rm -rf $(BUILD)/payload-$(1)
	mkdir -p $(BUILD)/payload-$(1)/tests
	cp -r $(VM)/guest $(BUILD)/payload-$(1)/guest
	cp -r $(BUILD)/plugin $(BUILD)/payload-$(1)/plugin
	echo $(1) > $(BUILD)/payload-$(1)/profile
	ln -s guest/$(2) $(BUILD)/payload-$(1)/run
endef

## vm-test-PROFILE: the VM suite of one profile (DMSIZE_RUN=pattern narrows it)
$(addprefix vm-test-,$(PROFILES)): vm-test-%: deps plugin image-%
	$(call payload,$*,run-suite.sh)
	@for pkg in $(VM_TESTS_$*); do \
		echo "compiling $$pkg for the VM"; \
		$(GO) test -c -tags vmtest -o $(BUILD)/payload-$*/tests/$$(basename $$pkg).test $$pkg || exit 1; \
	done
	@echo "DMSIZE_RUN=$(DMSIZE_RUN)" > $(BUILD)/payload-$*/env
	$(VM)/run.sh --profile $* --payload $(BUILD)/payload-$* --timeout $(VM_TIMEOUT) --out $(BUILD)/vm-run/$*

## demo: boot the VM, install the plugin, show a container's root filesystem size
demo: deps plugin image-bookworm
	$(call payload,bookworm,demo.sh)
	@$(VM)/run.sh --profile bookworm --payload $(BUILD)/payload-bookworm --timeout 900 --out $(BUILD)/vm-run/demo

clean:
	rm -rf $(BUILD)

## distclean: also drop the cached VM images
distclean: clean
	rm -rf .cache
