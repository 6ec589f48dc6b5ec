# dmsize. `make demo` and `make test` are the two commands that matter; see README.md.
SHELL := /bin/bash
GO ?= go
BUILD ?= build
VM := integration/vm
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# Test VM profiles and the test packages each one runs.
PROFILES := bookworm trixie
VM_TESTS_bookworm := ./kernel/dm ./kernel/loop ./kernel/fs ./kernel/thin ./integration/graphdriver ./guard
VM_TESTS_trixie := ./integration/snapshotter
# `make test-long` and vm-test-PROFILE also run every benchmark once, so that none rots (the
# fast suite runs none); `make bench` runs them for real.
DMSIZE_BENCH ?= .
DMSIZE_BENCHTIME ?= 1x
# How many volumes TestVolumes/many creates and removes; empty: 5 in `make test`, 200 in
# `make test-long`.
DMSIZE_VOLUMES ?=
# DMSIZE_SHARED_ROOT=1: the guest makes / rshared before the tests, as systemd does on a host.
DMSIZE_SHARED_ROOT ?=
# DMSIZE_LONG=1: the long proofs in vm-test-PROFILE (suite.sh sets it for `make test-long`).
DMSIZE_LONG ?=
# Whole-VM limit (seconds) of vm-test-PROFILE and of each shard of `make test` (fast) and
# `make test-long`: a hung guest is killed and reported with its console tail.
VM_TIMEOUT ?= 3600
VM_TIMEOUT_LONG ?= 7200

export CGO_ENABLED := 0

.PHONY: all test test-long unit vm-test vm-test-long deps deps-plugin plugin demo bench clean distclean \
	$(addprefix vm-test-,$(PROFILES)) $(addprefix image-,$(PROFILES)) $(addprefix payload-,$(PROFILES))

all: plugin cli

## deps: install the host packages the VM needs (as root, via apt)
deps:
	@$(VM)/host-deps.sh

## deps-plugin: the host packages `make plugin` needs (mke2fs and mkfs.xfs go into the rootfs)
deps-plugin:
	@$(VM)/host-deps.sh plugin

## unit: vet and unit tests; they run anywhere with Go and the mkfs tools (deps-plugin)
unit: deps-plugin
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./...
	$(GO) test -count=1 ./...

## plugin: the managed plugin's directories, no Docker needed: build/plugin (config.json +
## rootfs), build/plugin-lvm, the flavor that may also run the host's lvm (direct-lvm), and
## build/plugin-containerd, the flavor that reads containerd's records (Docker 25+)
plugin: deps-plugin
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BUILD)/bin/dmsize-plugin ./cmd/dmsize-plugin
	rootfs/assemble.sh $(BUILD)/plugin config.json $(BUILD)/bin/dmsize-plugin
	$(GO) run ./rootfs/flavor lvm config.json > $(BUILD)/config-lvm.json
	rootfs/assemble.sh $(BUILD)/plugin-lvm $(BUILD)/config-lvm.json $(BUILD)/bin/dmsize-plugin
	$(GO) run ./rootfs/flavor containerd config.json > $(BUILD)/config-containerd.json
	rootfs/assemble.sh $(BUILD)/plugin-containerd $(BUILD)/config-containerd.json $(BUILD)/bin/dmsize-plugin

## push: publish REGISTRY/dmsize:VERSION, REGISTRY/dmsize-lvm:VERSION, REGISTRY/dmsize-containerd:VERSION
## and each :latest, with
## the Docker engine on this host (any storage driver)
.PHONY: push
push: plugin
	@[ -n "$(REGISTRY)" ] || { echo "make push REGISTRY=registry.example.com/you VERSION=1.0.0" >&2; exit 2; }
	rootfs/push.sh $(REGISTRY) $(VERSION) $(BUILD)/plugin $(BUILD)/plugin-lvm $(BUILD)/plugin-containerd

## cli: the dmsize command, build/bin/dmsize (static: copy it onto the host's PATH)
.PHONY: cli
cli:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BUILD)/bin/dmsize ./cmd/dmsize

## test: unit tests, then the fast VM suite: the shards of integration/vm/shards, one VM each,
## side by side, and a table of every test's seconds at the end
test: deps unit vm-test

## test-long: the long proofs (every crash step on every set-up, the 200-create burst, 200
## volumes, 30 lifecycle cycles), then the 50-boot enable probe
test-long: deps unit vm-test-long boot-probe

vm-test: deps $(addprefix payload-,$(PROFILES)) $(addprefix image-,$(PROFILES))
	$(VM)/suite.sh fast --timeout $(VM_TIMEOUT)

vm-test-long: deps $(addprefix payload-,$(PROFILES)) $(addprefix image-,$(PROFILES))
	$(VM)/suite.sh long --timeout $(VM_TIMEOUT_LONG)

## image-PROFILE: build (or reuse) the cached VM image of a profile
$(addprefix image-,$(PROFILES)): image-%: deps
	@$(VM)/build-image.sh $* >/dev/null

# The payload of a profile: what the VM gets on /payload (guest scripts, plugin, test binaries).
# $(call payload,DIR,PROFILE,RUN,TEST_PACKAGES): ./run is the guest script the VM runs
# (run-suite.sh, or demo.sh for the demo).
define payload
	rm -rf $(1)
	mkdir -p $(1)/tests
	cp -r $(VM)/guest $(1)/guest
	cp -r $(BUILD)/plugin $(1)/plugin
	cp -r $(BUILD)/plugin-lvm $(1)/plugin-lvm
	cp -r $(BUILD)/plugin-containerd $(1)/plugin-containerd
	cp $(BUILD)/bin/dmsize $(1)/guest/dmsize
	echo $(2) > $(1)/profile
	printf "DMSIZE_RUN='%s'\nDMSIZE_SKIP='%s'\nDMSIZE_BENCH='%s'\nDMSIZE_BENCHTIME='%s'\nDMSIZE_VOLUMES='%s'\nDMSIZE_SHARED_ROOT='%s'\nDMSIZE_LONG='%s'\n" '$(DMSIZE_RUN)' '$(DMSIZE_SKIP)' '$(DMSIZE_BENCH)' '$(DMSIZE_BENCHTIME)' '$(DMSIZE_VOLUMES)' '$(DMSIZE_SHARED_ROOT)' '$(DMSIZE_LONG)' > $(1)/env
	ln -s guest/$(3) $(1)/run
	$(if $(strip $(4)),$(GO) test -c -tags vmtest -o $(1)/tests/ $(4))
endef

## payload-PROFILE: build/payload-PROFILE, also what the Vagrant box runs (see Vagrantfile)
$(addprefix payload-,$(PROFILES)): payload-%: plugin cli
	$(call payload,$(BUILD)/payload-$*,$*,run-suite.sh,$(VM_TESTS_$*))
	@# For the registry tests only: push.sh, and a next version (another build: its own layer).
	cp rootfs/push.sh $(BUILD)/payload-$*/guest/dmsize-push
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)-next" -o $(BUILD)/bin/dmsize-plugin-next ./cmd/dmsize-plugin
	rootfs/assemble.sh $(BUILD)/payload-$*/plugin-next config.json $(BUILD)/bin/dmsize-plugin-next

## vm-test-PROFILE: every VM test of one profile in one VM (DMSIZE_RUN=pattern narrows it;
## DMSIZE_LONG=1 for the long proofs)
$(addprefix vm-test-,$(PROFILES)): vm-test-%: deps payload-% image-%
	$(VM)/run.sh --profile $* --payload $(BUILD)/payload-$* --timeout $(VM_TIMEOUT) --out $(BUILD)/vm-run/$*

## bench: the VM benchmarks only, 20 iterations each; results in build/vm-run/bench-bookworm
bench: deps plugin image-bookworm
	$(MAKE) --no-print-directory payload-bookworm DMSIZE_RUN='^$$' DMSIZE_BENCH=. DMSIZE_BENCHTIME=20x
	$(VM)/run.sh --profile bookworm --payload $(BUILD)/payload-bookworm --timeout $(VM_TIMEOUT) --out $(BUILD)/vm-run/bench-bookworm

## demo: boot the VM, install the plugin, show a container's root filesystem size
demo: deps plugin cli image-bookworm
	@$(call payload,$(BUILD)/payload-demo,bookworm,demo.sh,)
	@$(VM)/run.sh --profile bookworm --payload $(BUILD)/payload-demo --timeout 900 --out $(BUILD)/vm-run/demo

## boot-probe: N boots (default 50), each timing the first docker plugin enable after boot;
## FLAVOR=plugin-lvm probes the lvm flavor. Kernel stacks at loglevel 7 go to each console.log.
N ?= 50
FLAVOR ?= plugin
.PHONY: boot-probe
boot-probe: deps plugin cli image-bookworm
	@$(call payload,$(BUILD)/payload-probe,bookworm,boot-probe.sh,)
	@echo "DMSIZE_PROBE_FLAVOR=$(FLAVOR)" >> $(BUILD)/payload-probe/env
	@ok=0 hung=0; for i in $$(seq 1 $(N)); do \
		if DMSIZE_VM_LOGLEVEL=7 $(VM)/run.sh --profile bookworm --payload $(BUILD)/payload-probe --timeout 300 --out $(BUILD)/vm-run/probe-$$i 2>&1 | grep -a '^probe:'; then ok=$$((ok + 1)); \
		else hung=$$((hung + 1)); echo "boot $$i: no enable; console: $(BUILD)/vm-run/probe-$$i/console.log"; fi; \
		grep -a -l 'soft lockup' $(BUILD)/vm-run/probe-$$i/console.log 2>/dev/null || true; \
	done; echo "boot-probe: $(N) boots of $(FLAVOR): $$ok enabled, $$hung hung"; [ $$hung = 0 ]

clean:
	rm -rf $(BUILD)

## distclean: also drop the cached VM images (/var/cache/dmsize as root, .cache otherwise)
distclean: clean
	rm -rf .cache $(if $(DMSIZE_CACHE),$(DMSIZE_CACHE),$(if $(filter 0,$(shell id -u)),/var/cache/dmsize))
