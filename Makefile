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
	deps help mutation

all: modules userspace selftests

help:
	@sed -n '3,11p' Makefile

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
	@scripts/run-suite fuzz-model "$(MAKE) -s -C fuzz/model smoke" fuzz/model/Makefile
	@scripts/run-suite fuzz-hbamig "$(MAKE) -s -C fuzz/hbamig smoke" fuzz/hbamig/Makefile
	@scripts/run-suite fuzz-qmp "$(MAKE) -s -C fuzz/qmp smoke" fuzz/qmp/Makefile

check-vm: modules userspace selftests check-vm-only

# Every suite with its vm-options, then once more per line of its
# vm-variants (scripts/vm-matrix names the runs: vm-kmod, vm-kmod-nodbbuf).
check-vm-only:
	@mkdir -p build/results
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
