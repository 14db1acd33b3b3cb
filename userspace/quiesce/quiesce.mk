# Included by userspace/Makefile: what the quiescers add to hbamig.
# Needs QUIESCE_DIR (this directory). Generated files go to QUIESCE_OUT.
QUIESCE_OUT ?= $(QUIESCE_DIR)/.gen
# The rules below must not become the includer's default goal.
QUIESCE_SAVED_GOAL := $(.DEFAULT_GOAL)
QUIESCE_BPF_CLANG ?= clang
QUIESCE_BPFTOOL ?= bpftool

QUIESCE_SRCS := $(addprefix $(QUIESCE_DIR)/,quiesce.c quiesce_conn.c \
	quiesce_tcp.c quiesce_tcp_cli.c quiesce_budget.c quiesce_pfc.c \
	quiesce_rnr.c quiesce_rnr_agent.c rnr_agent.c)
QUIESCE_CFLAGS := -I$(QUIESCE_DIR) -I$(QUIESCE_DIR)/.. -I$(QUIESCE_OUT)
QUIESCE_LDLIBS := -lbpf -lelf -lz -libverbs
QUIESCE_DEPS := $(QUIESCE_OUT)/quiesce_tcp.skel.h

$(QUIESCE_OUT)/quiesce_tcp.bpf.o: $(QUIESCE_DIR)/bpf/quiesce_tcp.bpf.c \
		$(QUIESCE_DIR)/quiesce_tcp_shared.h
	@mkdir -p $(@D)
	$(QUIESCE_BPF_CLANG) -O2 -g -Wall -Werror -target bpf \
		-I/usr/include/$(shell $(CC) -dumpmachine) -c $< -o $@

$(QUIESCE_OUT)/quiesce_tcp.skel.h: $(QUIESCE_OUT)/quiesce_tcp.bpf.o
	$(QUIESCE_BPFTOOL) gen skeleton $< name quiesce_tcp_bpf > $@.tmp
	mv $@.tmp $@

.DEFAULT_GOAL := $(QUIESCE_SAVED_GOAL)
