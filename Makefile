# SPDX-License-Identifier: GPL-2.0-only
#
# Top-level build of emuhba. Targets:
#   all (default)  emuhba.ko, hbamig, the tests
#   check          all tests: userspace (ASan/UBSan), fuzz smoke, in-VM selftests
#   check-quick    userspace tests and fuzz smoke only (no VM)
#   check-vm-list  the in-VM runs make check does (suites and their variants)
#   demo           the main job on the test VM (see README.md)
#   lint           checkpatch --strict and sparse on kmod/ and emuhba/
#   coverage fuzz  line coverage of emuhba/, long fuzz runs
#   mutation       mutation score of emuhba/ and userspace/ (MUTATION_SAMPLE=N)
#   install        module (modules_install, depmod), hbamig, man page, bash
#                  completion, udev rule; honours DESTDIR, PREFIX, KVER
#   uninstall      removes what install installed
#   dkms-install   module sources into /usr/src and dkms install (rebuilt on
#                  kernel updates); dkms-uninstall removes them
#   deb            Debian packages emuhba-dkms and hbamig into build/deb
#   (see Documentation/install.rst)
SHELL := /bin/bash
ROOT := $(CURDIR)

KVER ?= $(shell ls -d /lib/modules/6.12.*/build 2>/dev/null | sort -V | tail -n1 | cut -d/ -f4)
KDIR ?= /lib/modules/$(KVER)/build
LINUX_SRC_TAR ?= $(firstword $(wildcard /usr/src/linux-source-6.12.tar.xz))
LINUX_TOOLS := build/linux
CHECKPATCH := $(LINUX_TOOLS)/scripts/checkpatch.pl
KSFT_HARNESS := $(LINUX_TOOLS)/tools/testing/selftests/kselftest_harness.h

KMOD_SRCS := $(wildcard kmod/*.c kmod/*.h emuhba/*.c emuhba/*.h include/uapi/linux/*.h)
SUBDIRS_USER := $(wildcard userspace/Makefile)
VM_SUITES ?= $(sort $(wildcard selftests/*/vm-suite))
# Variants of the suites to run (selftests/*/vm-variants, scripts/vm-matrix):
# empty for all, else e.g. "base" or "nodbbuf".
VM_VARIANTS ?=
VM_TIMEOUT ?= 900
# Test VMs run side by side, one a core (each is one TCG thread), at most 4.
VM_JOBS ?= $(shell n=$$(nproc); [ $$n -gt 4 ] && n=4; echo $$n)

export KVER KDIR ROOT

.PHONY: all modules userspace selftests linux-tools lint check check-quick \
	check-user check-vm check-vm-only check-vm-list demo coverage fuzz clean \
	deps help mutation install uninstall install-module uninstall-module \
	install-hbamig uninstall-hbamig install-dkms-src dkms-install \
	dkms-uninstall deb debs

all: modules userspace selftests

help:
	@sed -n '3,17p' Makefile

deps:
	@scripts/install-deps

# The kernel build decides what to rebuild; the stamp keeps a no-change
# "make" from invoking Kbuild at all.
modules: emuhba.ko
emuhba.ko: $(KMOD_SRCS) Kbuild
	@test -d "$(KDIR)" || { echo "no kernel build tree at '$(KDIR)': run scripts/install-deps" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(ROOT) W=$(W) C=$(C) modules

userspace:
	@if [ -f userspace/Makefile ]; then $(MAKE) -C userspace; fi

linux-tools: $(KSFT_HARNESS)
$(KSFT_HARNESS) $(CHECKPATCH):
	@test -n "$(LINUX_SRC_TAR)" || { echo "linux-source-6.12 missing: run scripts/install-deps" >&2; exit 1; }
	mkdir -p $(LINUX_TOOLS)
	tar -xJf $(LINUX_SRC_TAR) -C $(LINUX_TOOLS) --strip-components=1 \
		linux-source-6.12/scripts/checkpatch.pl \
		linux-source-6.12/scripts/spelling.txt \
		linux-source-6.12/scripts/const_structs.checkpatch \
		linux-source-6.12/tools/testing/selftests/kselftest.h \
		linux-source-6.12/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.12/tools/testing/selftests/kselftest/ktap_helpers.sh
	touch $(KSFT_HARNESS) $(CHECKPATCH)

selftests: linux-tools
	@for d in $(wildcard selftests/*/Makefile); do \
		$(MAKE) -C $$(dirname $$d) || exit 1; done

lint: $(CHECKPATCH)
	perl $(CHECKPATCH) --strict --no-tree --terse --show-types \
		--ignore SPDX_LICENSE_TAG,FILE_PATH_CHANGES \
		-f $(wildcard kmod/*.c kmod/*.h emuhba/*.c emuhba/*.h include/uapi/linux/*.h)
	$(MAKE) -C $(KDIR) M=$(ROOT) W=1 C=2 CF="-D__CHECK_ENDIAN__" modules 2>&1 | tee build/lint-kbuild.log
	@! grep -E 'warning:|error:' build/lint-kbuild.log

# Userspace tests: each prints TAP into build/results/*.tap.
check-user: linux-tools
	@mkdir -p build/results
	@scripts/run-suite user-model "$(MAKE) -s -C selftests/model run_tests" selftests/model/Makefile
	@scripts/run-suite user-hbamig "$(MAKE) -s -C userspace check" userspace/Makefile
	@scripts/run-suite user-quiesce "$(MAKE) -s -C selftests/quiesce run_tests" selftests/quiesce/Makefile
	@scripts/run-suite user-vmrun "selftests/vm/options-test" selftests/vm/options-test
	@scripts/run-suite user-ktap "selftests/lib/ktap-summary-test" selftests/lib/ktap-summary-test
	@scripts/run-suite fuzz-model "$(MAKE) -s -C fuzz/model smoke" fuzz/model/Makefile
	@scripts/run-suite fuzz-hbamig "$(MAKE) -s -C fuzz/hbamig smoke" fuzz/hbamig/Makefile
	@scripts/run-suite fuzz-qmp "$(MAKE) -s -C fuzz/qmp smoke" fuzz/qmp/Makefile
	@scripts/run-suite user-pkg "$(MAKE) -s userspace debs; selftests/pkg/run-tests" selftests/pkg/run-tests

check-vm: modules userspace selftests check-vm-only

# The packaging suite installs the packages built here; should they not
# build, that suite fails, the others still run.
VM_DEBS := $(filter selftests/pkg/vm-suite,$(VM_SUITES))
# The libvirt suite installs the module with depmod's output computed here.
VM_DEPMOD := $(filter selftests/libvirt/vm-suite,$(VM_SUITES))

# Every suite with its vm-options, then once more per line of its
# vm-variants (scripts/vm-matrix names the runs: vm-kmod, vm-kmod-nodbbuf).
check-vm-only:
	@mkdir -p build/results
	@$(if $(VM_DEBS),$(MAKE) -s debs || echo "# WARNING: make debs failed: vm-pkg will fail" >&2)
	@$(if $(VM_DEPMOD),scripts/depmod-stage >/dev/null || echo "# WARNING: scripts/depmod-stage failed: vm-libvirt runs depmod -a itself" >&2)
	@VM_VARIANTS="$(VM_VARIANTS)" scripts/run-vm-suites $(VM_JOBS) $(VM_TIMEOUT) $(VM_SUITES)

check-vm-list:
	@VM_VARIANTS="$(VM_VARIANTS)" scripts/vm-matrix $(VM_SUITES)

check-quick:
	@scripts/install-deps
	@rm -rf build/results
	@$(MAKE) -s check-user; scripts/ktap-summary build/results

check:
	@scripts/install-deps
	@rm -rf build/results
	@scripts/run-suite build "$(MAKE) -s all" Makefile
	@$(MAKE) -s check-user
	@$(MAKE) -s check-vm-only
	@scripts/ktap-summary build/results

demo:
	@scripts/install-deps
	@$(MAKE) -s all
	@scripts/demo

coverage: linux-tools
	$(MAKE) -C selftests/model coverage

# Mutants of emuhba/ and userspace/ against the userspace suites
# (scripts/mutate, Documentation/testing.rst). MUTATION_SAMPLE mutants per
# directory drawn with MUTATION_SEED (0: all of them, about a day); at most 2 jobs.
MUTATION_SAMPLE ?= 0
MUTATION_SEED ?= 1
MUTATION_JOBS ?= 1
mutation: linux-tools
	nice -n 19 scripts/mutate --sample $(MUTATION_SAMPLE) \
		--seed $(MUTATION_SEED) --jobs $(MUTATION_JOBS)

fuzz:
	$(MAKE) -C fuzz/model long
	$(MAKE) -C fuzz/hbamig long
	$(MAKE) -C fuzz/qmp long

clean:
	-$(MAKE) -C $(KDIR) M=$(ROOT) clean
	-rm -rf build
	@for d in userspace $(wildcard selftests/*/Makefile fuzz/*/Makefile); do \
		d=$${d%/Makefile}; [ -f $$d/Makefile ] && $(MAKE) -C $$d clean; done; true

# ---- installation (Documentation/install.rst) ----
# One version string: hbamig's (userspace/hbamig.c). dkms.conf takes it
# when its sources are installed, debian/changelog must carry it
# (selftests/pkg/run-tests checks).
VERSION := $(shell sed -n 's/^\#define HBAMIG_VERSION "\(.*\)"/\1/p' userspace/hbamig.c)
DESTDIR ?=
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# udev reads rules from /lib/udev/rules.d (packages) and /etc/udev/rules.d
# (the administrator's): a local install goes to the latter.
UDEVRULESDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/udev/rules.d,/etc/udev/rules.d)
BIND_DIR := /etc/emuhba/bind.d
# "updates" takes precedence over the kernel's own modules in depmod's
# default search order; DKMS uses updates/dkms.
INSTALL_MOD_DIR ?= updates
DKMS_SRC = $(DESTDIR)/usr/src/emuhba-$(VERSION)
DEB_DIR ?= build/deb
INSTALL ?= install

# "make -s print-VERSION": a variable's value, for scripts and tests.
print-%:
	@echo '$($*)'

install: install-module install-hbamig

uninstall: uninstall-module uninstall-hbamig

install-module: modules
	$(MAKE) -C $(KDIR) M=$(ROOT) INSTALL_MOD_PATH=$(DESTDIR) \
		INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) modules_install
	$(if $(DESTDIR),,depmod -a $(KVER))

uninstall-module:
	rm -f $(DESTDIR)/lib/modules/$(KVER)/$(INSTALL_MOD_DIR)/emuhba.ko*
	-rmdir -p --ignore-fail-on-non-empty $(DESTDIR)/lib/modules/$(KVER)/$(INSTALL_MOD_DIR) 2>/dev/null
	$(if $(DESTDIR),,depmod -a $(KVER))

install-hbamig: userspace
	$(INSTALL) -D -m 0755 userspace/hbamig $(DESTDIR)$(SBINDIR)/hbamig
	$(INSTALL) -D -m 0644 Documentation/man/hbamig.8 $(DESTDIR)$(MANDIR)/man8/hbamig.8
	$(INSTALL) -D -m 0644 userspace/completion/hbamig $(DESTDIR)$(BASHCOMPDIR)/hbamig
	$(INSTALL) -d $(DESTDIR)$(UDEVRULESDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BIND_DIR@|$(BIND_DIR)|g' \
		udev/90-emuhba.rules.in > $(DESTDIR)$(UDEVRULESDIR)/90-emuhba.rules
	chmod 0644 $(DESTDIR)$(UDEVRULESDIR)/90-emuhba.rules

# The administrator's choices in $(BIND_DIR) stay: they are configuration.
uninstall-hbamig:
	rm -f $(DESTDIR)$(SBINDIR)/hbamig $(DESTDIR)$(MANDIR)/man8/hbamig.8 \
		$(DESTDIR)$(BASHCOMPDIR)/hbamig \
		$(DESTDIR)$(UDEVRULESDIR)/90-emuhba.rules

# What DKMS builds from: Kbuild and the module's sources, no more.
install-dkms-src:
	$(INSTALL) -d $(DKMS_SRC)
	tar -cf - Kbuild $(KMOD_SRCS) | tar -xf - -C $(DKMS_SRC)

dkms-install: install-dkms-src
	sed 's/#MODULE_VERSION#/$(VERSION)/' dkms.conf > $(DKMS_SRC)/dkms.conf
	dkms install emuhba/$(VERSION) $(if $(KVER),-k $(KVER))

dkms-uninstall:
	-dkms remove emuhba/$(VERSION) --all
	rm -rf /usr/src/emuhba-$(VERSION)

# Built from a copy of the tracked (and new, not ignored) files, so that
# dpkg-buildpackage leaves nothing in this tree; the packages land in
# $(DEB_DIR).
DEB_SRC = $(DEB_DIR)/emuhba-$(VERSION)
deb:
	@command -v dpkg-buildpackage >/dev/null || { echo "dpkg-dev missing: run scripts/install-deps" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	if git -C $(ROOT) rev-parse --git-dir >/dev/null 2>&1; then \
		git -C $(ROOT) ls-files -z -c -o --exclude-standard | \
			xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
			tar --null -T - -cf - | tar -xf - -C $(DEB_SRC); \
	else \
		tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C $(DEB_SRC); \
	fi
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	rm -rf $(DEB_SRC)
	@ls $(DEB_DIR)/*.deb

# "make deb" only when something packaged changed: the packaging suites
# (user-pkg, vm-pkg) test what is in $(DEB_DIR). Its log: build/deb.log.
DEB_INPUTS := Makefile Kbuild dkms.conf $(KMOD_SRCS) $(wildcard debian/* \
	debian/*/* udev/* userspace/*.c userspace/*.h userspace/Makefile \
	userspace/completion/* userspace/quiesce/*.[ch] userspace/quiesce/*.mk \
	userspace/quiesce/bpf/*.[ch] Documentation/man/*)
debs: $(DEB_DIR)/.built
$(DEB_DIR)/.built: $(DEB_INPUTS)
	@mkdir -p build
	@$(MAKE) -s deb > build/deb.log 2>&1 || \
		{ tail -n 30 build/deb.log >&2; echo "make deb failed: build/deb.log" >&2; exit 1; }
	@touch $@
