# Included by userspace/Makefile: what the quiescers add to hbamig.
QUIESCE_SRCS := $(wildcard $(QUIESCE_DIR)/*.c)
QUIESCE_CFLAGS :=
QUIESCE_LDLIBS :=
QUIESCE_DEPS :=
