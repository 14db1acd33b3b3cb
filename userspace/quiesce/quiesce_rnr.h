/* SPDX-License-Identifier: GPL-2.0-only */
/* RC queue pair plumbing shared by the RNR quiescer and its test peer. */
#ifndef QUIESCE_RNR_H
#define QUIESCE_RNR_H

#include <stdbool.h>
#include <stdint.h>
#include <infiniband/verbs.h>

struct quiesce_rnr_info {
	uint32_t	qpn;
	uint32_t	psn;
	uint8_t		gid[16];
};

struct quiesce_rnr_qp {
	struct ibv_context	*ctx;
	struct ibv_pd		*pd;
	struct ibv_cq		*cq;
	struct ibv_qp		*qp;
	struct ibv_mr		*mr;
	char			*buf;
	size_t			size;
	int			depth;
	int			gid_index;
	union ibv_gid		gid;
	struct quiesce_rnr_info	local;
};

unsigned int quiesce_rnr_timer_us(uint8_t code);
int quiesce_rnr_open(struct quiesce_rnr_qp *q, const char *dev, size_t size,
		     int depth);
int quiesce_rnr_connect(struct quiesce_rnr_qp *q,
			const struct quiesce_rnr_info *remote,
			uint8_t min_rnr_timer, uint8_t rnr_retry);
void quiesce_rnr_close(struct quiesce_rnr_qp *q);
const char *quiesce_rnr_state(struct quiesce_rnr_qp *q);
/* The receive of slot @slot (0 .. depth-1, wr_id = slot), to be posted. */
void quiesce_rnr_recv_wr(const struct quiesce_rnr_qp *q, int slot,
			 struct ibv_sge *sge, struct ibv_recv_wr *wr);
int quiesce_rnr_post_recv(struct quiesce_rnr_qp *q, int slot);
int quiesce_rnr_xchg(int fd, const struct quiesce_rnr_info *local,
		     struct quiesce_rnr_info *remote);
void quiesce_rnr_fill(void *buf, size_t size, uint32_t seq);
bool quiesce_rnr_check(const void *buf, size_t size, uint32_t seq);

#endif
