# SPDX-License-Identifier: GPL-2.0-only
# Rules shared by the libFuzzer targets under fuzz/. A fuzz/NAME/Makefile
# sets, then includes this file last (`include ../fuzz.mk`):
#   TOP            the project root
#   FUZZ_TARGETS   target names; each is built from NAME.c and fed the
#                  committed seeds in seeds/NAME
#   FUZZ_SRCS      sources linked into every target (optional)
#   FUZZ_DEPS      further prerequisites, e.g. headers (optional)
#   FUZZ_CPPFLAGS  include paths and defines (optional)
# and gets `all`, `smoke` (every target SMOKE_TIME s, fails on a crash),
# `long` (FUZZ_TIME s per target) and `clean`. Binaries, scratch corpora,
# logs and crash artifacts go to OUT (build/fuzz-NAME).
OUT ?= $(TOP)/build/fuzz-$(notdir $(CURDIR))
CC := clang
CFLAGS := -g -O1 -Wall -Wextra -Werror $(FUZZ_CPPFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
SMOKE_TIME ?= 20
FUZZ_TIME ?= 600

.PHONY: all smoke long clean
all: $(addprefix $(OUT)/,$(FUZZ_TARGETS))

$(OUT)/%: %.c $(FUZZ_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(OUT)
	$(CC) $(CFLAGS) -o $@ $< $(FUZZ_SRCS)

# One target after the other (they share the machine's cores). New inputs
# go to a scratch corpus; the committed seeds stay read-only.
fuzz_run = set -e; for t in $(FUZZ_TARGETS); do \
	mkdir -p $(OUT)/corpus-$$t; \
	echo "\# fuzzing $$t for $(1) s"; \
	$(OUT)/$$t -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix=$(OUT)/$$t- \
		$(OUT)/corpus-$$t seeds/$$t 2>$(OUT)/$$t.log || \
		{ tail -40 $(OUT)/$$t.log; echo "FAIL: $$t"; exit 1; }; \
	grep -E 'stat::number_of_executed_units' $(OUT)/$$t.log || true; \
	echo "ok $$t"; \
	done

smoke: all
	@$(call fuzz_run,$(SMOKE_TIME))

long: all
	@$(call fuzz_run,$(FUZZ_TIME))

clean:
	rm -rf $(OUT)
