# Particle-OS. `make demo` and `make test` do all set-up themselves (via `make deps`).
SHELL := /bin/bash
BUN := node_modules/.bin/bun
VITEST := node_modules/.bin/vitest
PREFIX ?= /usr
DESTDIR ?=
CACHE ?= $(HOME)/.cache/particle-os
export PARTICLE_CACHE := $(CACHE)

# Host packages: tests mount real EROFS/overlay/squashfs, compare with ostree and fsverity, build
# images with umoci and buildah, serve and sign images (docker-registry, gpg), build trixie guests
# with mmdebstrap and boot them with QEMU+OVMF. swtpm: the TPM of the sealed QEMU test's strict
# boots; cryptsetup: the /var-on-LUKS unit test; tpm2-tools, jq, xxd: the LUKS/TPM experiment
# (test/experiments/luks-tpm2.sh).
APT_PACKAGES := erofs-utils fsverity ostree mmdebstrap qemu-system-x86 qemu-utils ovmf skopeo \
	squashfs-tools e2fsprogs zstd dosfstools mtools attr gdisk fdisk util-linux xz-utils cpio \
	systemd-boot-efi systemd-boot binutils python3 grub-efi-amd64-bin grub-common umoci buildah \
	docker-registry gpg sbsigntool efitools openssl dpkg-dev time \
	swtpm swtpm-tools tpm2-tools cryptsetup-bin libtss2-tcti-swtpm0 jq xxd

BUN_FLAGS := --compile --minify --bytecode --no-compile-autoload-dotenv --no-compile-autoload-bunfig

# `particle --version` names the commit and the build time: the last commit that changed what the
# binary is built from (so commits elsewhere neither change its bytes nor invalidate the QEMU tier's
# guest cache), "-dirty" when those files have uncommitted changes. The time is SOURCE_DATE_EPOCH
# or that commit's, never now: the same sources build the same bytes.
BUILD_PATHS := runtime boot package-lock.json
GIT_COMMIT := $(or $(shell git log -1 --format=%h --abbrev=12 -- $(BUILD_PATHS) 2>/dev/null),unknown)$(shell git diff --quiet HEAD -- $(BUILD_PATHS) 2>/dev/null || echo -dirty)
BUILD_EPOCH := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct -- $(BUILD_PATHS) 2>/dev/null),0)
BUILD_TIME := $(shell date -u -d @$(BUILD_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
BUILD_INFO := $(GIT_COMMIT) $(BUILD_TIME)

.PHONY: FORCE all deps build image test test-unit test-host test-image test-crash test-crash-ci test-qemu test-qemu-layering test-qemu-sealed fuzz bench demo run install clean typecheck

all: build

deps: .deps-stamp
.deps-stamp: package-lock.json
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# The package's own registry service (all addresses, :5000) is not wanted: tests start theirs on 127.0.0.1.
	@systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
	npm ci --no-audit --no-fund
	touch $@

build: deps dist/particle dist/particle-boot

SOURCES := $(shell find runtime/src boot/src -name '*.ts' 2>/dev/null) package-lock.json

# Rewritten only when the commit or time changes, so dist/particle is rebuilt exactly then.
dist/build-info: FORCE
	@mkdir -p dist
	@[ "$$(cat $@ 2>/dev/null)" = "$(BUILD_INFO)" ] || echo "$(BUILD_INFO)" >$@

dist/particle: $(SOURCES) dist/build-info
	@mkdir -p dist
	$(BUN) build $(BUN_FLAGS) --define 'PARTICLE_COMMIT="$(GIT_COMMIT)"' --define 'PARTICLE_BUILD_TIME="$(BUILD_TIME)"' \
	  runtime/src/main.ts runtime/src/store/ingest-worker.ts --outfile $@

dist/particle-boot: $(SOURCES)
	@mkdir -p dist
	$(BUN) build $(BUN_FLAGS) boot/src/main.ts --outfile $@

# The base image (docs/image.md): an OCI layout at dist/image, tag latest. Reproducible: the same
# cached rootfs and dist/ give the same manifest digest (printed, and kept in dist/image.digest).
IMAGE_LAYOUT ?= dist/image
image: build
	bash image/build.sh $(IMAGE_LAYOUT) latest > $(IMAGE_LAYOUT).digest.tmp && mv $(IMAGE_LAYOUT).digest.tmp $(IMAGE_LAYOUT).digest
	@cat $(IMAGE_LAYOUT).digest

typecheck: deps
	node_modules/.bin/tsc --noEmit

test: deps build test-unit test-host test-crash-ci test-qemu

test-unit: deps
	$(VITEST) run --dir test/unit

# The parser fuzz tests (test/unit/fuzz) run 10,000 cases per property in test-unit; this runs them
# longer. FUZZ_SEED=N replays a failure (fast-check prints the seed).
FUZZ_RUNS ?= 200000
fuzz: deps
	PARTICLE_FUZZ_RUNS=$(FUZZ_RUNS) $(if $(FUZZ_SEED),PARTICLE_FUZZ_SEED=$(FUZZ_SEED)) $(VITEST) run --dir test/unit/fuzz

# test/host/image.test.ts builds the base image (image/build.sh; its Debian rootfs is an
# mmdebstrap, cached per day, about 2.5 minutes when the day's is missing) and runs buildah with a
# real apt-get: about 2 minutes on a warm rootfs. `make test-image` runs it alone.
test-host: deps build
	$(VITEST) run --dir test/host --no-file-parallelism

test-image: deps build
	$(VITEST) run --dir test/host --no-file-parallelism test/host/image.test.ts

# Crash campaigns (test/crash): every writing command SIGKILLed at random moments and at each named
# checkpoint (PARTICLE_DIE_AT), invariants checked after each kill and after the next command. The
# seed is fixed and printed (CRASH_SEED=N for another; the same N replays a failure). test-crash is
# the full size (25 random kills per command and every checkpoint), test-crash-ci the sample
# `make test` runs (6 kills per command, 2-3 minutes).
CRASH_KILLS ?= 25
CRASH_SEED ?= 20261201
test-crash: deps build
	PARTICLE_CRASH_SEED=$(CRASH_SEED) PARTICLE_CRASH_KILLS=$(CRASH_KILLS) $(VITEST) run --dir test/crash --no-file-parallelism

test-crash-ci: deps build
	PARTICLE_CRASH_SEED=$(CRASH_SEED) PARTICLE_CRASH_KILLS=2 PARTICLE_CRASH_CHECKPOINTS=4 $(VITEST) run --dir test/crash --no-file-parallelism

test-qemu: deps build
	@if [ -d test/qemu ] && ls test/qemu/*.test.ts >/dev/null 2>&1; then \
	  $(VITEST) run --config test/qemu/vitest.config.ts --dir test/qemu; \
	else echo "test-qemu: no QEMU tests yet"; fi

# The layering scenario alone (it is part of test-qemu).
test-qemu-layering: deps build
	$(VITEST) run --config test/qemu/vitest.config.ts test/qemu/layering.test.ts

# The sealed-boot file alone (issue 11; also part of test-qemu): Secure Boot firmware, several boots.
test-qemu-sealed: deps build
	$(VITEST) run --config test/qemu/vitest.config.ts test/qemu/sealed.test.ts

bench: deps build
	$(BUN) test/bench/run.ts $(BENCH_ARGS)

# One guest at a time: it gets both cores (the QEMU tier runs two 1-vCPU guests instead).
demo: deps build
	PARTICLE_QEMU_SMP=$${PARTICLE_QEMU_SMP:-2} bash test/demo.sh

# Boots the disk `make demo` left behind, on this terminal (log in as root, no password; Ctrl-a x quits).
DEMO_DISK := $(CACHE)/demo/disk.img
run:
	@test -f $(DEMO_DISK) || { echo "run: $(DEMO_DISK) does not exist; run make demo first" >&2; exit 1; }
	qemu-system-x86_64 -accel tcg -cpu max,-avx,-avx2,-sha-ni -smp 2 -m 2048 -nographic \
	  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
	  -drive if=pflash,format=raw,unit=1,file=$(DEMO_DISK).vars.fd \
	  -drive file=$(DEMO_DISK),format=raw,if=virtio

# Every file gets the time of this install, never its checkout's (no cp -a): image/build.sh clamps
# times newer than the rootfs, so a checkout older than the cached rootfs would give another image.
install: build
	install -D -m 0755 dist/particle $(DESTDIR)$(PREFIX)/bin/particle
	ln -sf particle $(DESTDIR)$(PREFIX)/bin/particle-stage
	install -D -m 0755 dist/particle-boot $(DESTDIR)$(PREFIX)/bin/particle-boot
	install -D -m 0644 systemd-boot/particle-finalize.service $(DESTDIR)$(PREFIX)/lib/systemd/system/particle-finalize.service
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system/multi-user.target.wants
	ln -sf ../particle-finalize.service $(DESTDIR)$(PREFIX)/lib/systemd/system/multi-user.target.wants/particle-finalize.service
	install -D -m 0644 grub/particle-bless.service $(DESTDIR)$(PREFIX)/lib/systemd/system/particle-bless.service
	ln -sf ../particle-bless.service $(DESTDIR)$(PREFIX)/lib/systemd/system/multi-user.target.wants/particle-bless.service
	install -D -m 0644 runtime/units/particle-upgrade.service $(DESTDIR)$(PREFIX)/lib/systemd/system/particle-upgrade.service
	install -D -m 0644 runtime/units/particle-upgrade.timer $(DESTDIR)$(PREFIX)/lib/systemd/system/particle-upgrade.timer
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system/timers.target.wants
	ln -sf ../particle-upgrade.timer $(DESTDIR)$(PREFIX)/lib/systemd/system/timers.target.wants/particle-upgrade.timer
	install -D -m 0644 runtime/units/upgrade.conf.example $(DESTDIR)$(PREFIX)/share/doc/particle/upgrade.conf.example
	install -D -m 0755 grub/15_particle $(DESTDIR)/etc/grub.d/15_particle
	install -D -m 0644 health/particle-health.service $(DESTDIR)$(PREFIX)/lib/systemd/system/particle-health.service
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system/boot-complete.target.requires
	ln -sf ../particle-health.service $(DESTDIR)$(PREFIX)/lib/systemd/system/boot-complete.target.requires/particle-health.service
	install -D -m 0755 health/health.d/10-particle-root $(DESTDIR)$(PREFIX)/lib/particle/health.d/10-particle-root
	install -D -m 0644 health/required-units $(DESTDIR)$(PREFIX)/lib/particle/required-units
	@if [ -d dracut-module/90particle ] && [ -f dracut-module/90particle/module-setup.sh ]; then \
	  mkdir -p $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90particle; \
	  cp -R --preserve=mode dracut-module/90particle/. $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90particle/; \
	fi

clean:
	rm -rf dist
