// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba: the "emuhba" generic netlink family (control plane).
 *
 * The contract is include/uapi/linux/emuhba.h, generated from
 * Documentation/netlink/specs/emuhba.yaml. The policies and the ops table
 * between the "ynl-gen" markers below follow what ynl-gen-c.py produces
 * from that spec; selftests/netlink/spec-check regenerates both and fails
 * when they drift apart.
 */

#include <linux/list.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "../include/uapi/linux/emuhba.h"
#include "emuhba.h"
#include "emuhba_image.h"
#include "emu_verdict.h"
#include "emu_nvme.h"

static struct genl_family emuhba_nl_family;

/* The driver's position sources are the uAPI's values. */
static_assert((int)EMUHBA_POS_SHADOW_DOORBELLS ==
	      (int)EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS);
static_assert((int)EMUHBA_POS_TRAPPED_DOORBELLS ==
	      (int)EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS);

/* Whether the family is registered: the core may notify before or after. */
static bool emuhba_genl_ready;

/*
 * policy-set is a read-modify-write of the adapter's policy; ops run in
 * parallel (a switch can take up to its timeout), so concurrent policy
 * updates are serialised here rather than under genl_mutex.
 */
static DEFINE_MUTEX(emuhba_genl_policy_lock);

/*
 * Switch requests in progress. The core reports some switch failures to
 * the events group itself (those of a switch that started); the others
 * (refused preconditions) are reported here, so that every failed switch
 * request yields exactly one error notification.
 */
struct emuhba_nl_switch_req {
	struct list_head node;
	struct task_struct *task;
	struct emuhba_adapter *a;
	bool notified;
};

static LIST_HEAD(emuhba_nl_switch_reqs);
static DEFINE_SPINLOCK(emuhba_nl_switch_lock);

/*
 * Between the markers, the image's length range is ours: ynl-gen-c (6.12)
 * has no binary range check and would emit { .type = NLA_BINARY, };
 * spec-check accepts exactly this difference and checks that the bounds
 * are the spec's constants. The range goes through a pointer because
 * the maximum does not fit the policy's s16 bounds.
 */
/* ynl-gen: begin policies */
static const struct netlink_range_validation emuhba_a_policy_switch_timeout_range = {
	.min	= 10ULL,
	.max	= 60000ULL,
};

static const struct netlink_range_validation emuhba_a_adapter_image_range = {
	.min	= EMUHBA_IMAGE_MIN_LEN,
	.max	= EMUHBA_IMAGE_MAX_LEN,
};

static const struct netlink_range_validation emuhba_a_policy_idle_after_range = {
	.max	= 60000ULL,
};

static const struct nla_policy emuhba_policy_nl_policy[EMUHBA_A_POLICY_NS_COPY + 1] = {
	[EMUHBA_A_POLICY_AUTO_SWITCH] = NLA_POLICY_MAX(NLA_U8, 1),
	[EMUHBA_A_POLICY_QUIESCE_REQUIRED] = NLA_POLICY_MAX(NLA_U8, 1),
	[EMUHBA_A_POLICY_SWITCH_TIMEOUT] =
		NLA_POLICY_FULL_RANGE(NLA_U32, &emuhba_a_policy_switch_timeout_range),
	[EMUHBA_A_POLICY_IDLE_AFTER] =
		NLA_POLICY_FULL_RANGE(NLA_U32, &emuhba_a_policy_idle_after_range),
	[EMUHBA_A_POLICY_NS_COPY] = NLA_POLICY_MAX(NLA_U8, 1),
};

static const struct nla_policy emuhba_adapter_get_nl_policy[EMUHBA_A_ADAPTER_BDF + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
};

static const struct nla_policy emuhba_backend_set_nl_policy[EMUHBA_A_ADAPTER_BACKEND + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
	[EMUHBA_A_ADAPTER_BACKEND] = { .type = NLA_NUL_STRING, .len = EMUHBA_BACKEND_MAX_LEN, },
};

static const struct nla_policy emuhba_policy_set_nl_policy[EMUHBA_A_ADAPTER_POLICY + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
	[EMUHBA_A_ADAPTER_POLICY] = NLA_POLICY_NESTED(emuhba_policy_nl_policy),
};

static const struct nla_policy emuhba_switch_nl_policy[EMUHBA_A_ADAPTER_MODE + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
	[EMUHBA_A_ADAPTER_MODE] = NLA_POLICY_RANGE(NLA_U32, 1, 2),
};

static const struct nla_policy emuhba_image_get_nl_policy[EMUHBA_A_ADAPTER_BDF + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
};

static const struct nla_policy emuhba_compat_check_nl_policy[EMUHBA_A_ADAPTER_IMAGE + 1] = {
	[EMUHBA_A_ADAPTER_ID] = { .type = NLA_U32, },
	[EMUHBA_A_ADAPTER_BDF] = { .type = NLA_NUL_STRING, .len = EMUHBA_BDF_MAX_LEN, },
	[EMUHBA_A_ADAPTER_IMAGE] =
		NLA_POLICY_FULL_RANGE(NLA_BINARY, &emuhba_a_adapter_image_range),
};

/* ynl-gen: end policies */

enum {
	EMUHBA_NLGRP_EVENTS,
};

static const struct genl_multicast_group emuhba_nl_mcgrps[] = {
	[EMUHBA_NLGRP_EVENTS] = { EMUHBA_MCGRP_EVENTS, },
};

/* Position of a dump: the next adapter id to emit. */
struct emuhba_nl_dump_ctx {
	u32 next_id;
	bool done;
};

static const char *emuhba_nl_bdf(struct emuhba_adapter *a)
{
	return pci_name(a->core.pdev);
}

/*
 * Resolve the adapter a request names, by id or by PCI address. Returns a
 * referenced adapter or an ERR_PTR with the extack set.
 */
static struct emuhba_adapter *emuhba_nl_lookup(struct genl_info *info)
{
	struct nlattr *id_attr = info->attrs[EMUHBA_A_ADAPTER_ID];
	struct nlattr *bdf_attr = info->attrs[EMUHBA_A_ADAPTER_BDF];
	struct emuhba_adapter *a;

	if (id_attr) {
		a = emuhba_adapter_get(nla_get_u32(id_attr));
		if (!a) {
			NL_SET_ERR_MSG_ATTR(info->extack, id_attr,
					    "no adapter with this id");
			return ERR_PTR(-ENODEV);
		}
		if (bdf_attr && strcmp(nla_data(bdf_attr), emuhba_nl_bdf(a))) {
			emuhba_adapter_put(a);
			NL_SET_ERR_MSG_ATTR(info->extack, bdf_attr,
					    "id and bdf name different adapters");
			return ERR_PTR(-EINVAL);
		}
		return a;
	}
	if (bdf_attr) {
		a = emuhba_adapter_get_by_bdf(nla_data(bdf_attr));
		if (!a) {
			NL_SET_ERR_MSG_ATTR(info->extack, bdf_attr,
					    "no emuhba adapter at this PCI address");
			return ERR_PTR(-ENODEV);
		}
		return a;
	}
	NL_SET_ERR_MSG(info->extack, "adapter id or bdf required");
	NL_SET_ERR_ATTR_MISS(info->extack, NULL, EMUHBA_A_ADAPTER_ID);
	return ERR_PTR(-EINVAL);
}

/* GENL_REQ_ATTR_CHECK() with a message: every error carries one. */
static bool emuhba_nl_require(struct genl_info *info, int type,
			      const char *msg)
{
	if (info->attrs[type])
		return true;
	NL_SET_ERR_MSG_FMT(info->extack, "%s", msg);
	NL_SET_ERR_ATTR_MISS(info->extack, NULL, type);
	return false;
}

static int emuhba_nl_put_policy(struct sk_buff *skb,
				const struct emuhba_policy *p)
{
	struct nlattr *nest;

	nest = nla_nest_start(skb, EMUHBA_A_ADAPTER_POLICY);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u8(skb, EMUHBA_A_POLICY_AUTO_SWITCH, p->auto_switch) ||
	    nla_put_u8(skb, EMUHBA_A_POLICY_QUIESCE_REQUIRED,
		       p->quiesce_required) ||
	    nla_put_u32(skb, EMUHBA_A_POLICY_SWITCH_TIMEOUT,
			p->switch_timeout_ms) ||
	    nla_put_u32(skb, EMUHBA_A_POLICY_IDLE_AFTER, p->idle_after_ms) ||
	    nla_put_u8(skb, EMUHBA_A_POLICY_NS_COPY, p->ns_copy)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int emuhba_nl_put_counters(struct sk_buff *skb,
				  const struct emuhba_counters *c)
{
	const int pad = EMUHBA_A_COUNTERS_PAD;
	struct nlattr *nest;

	nest = nla_nest_start(skb, EMUHBA_A_ADAPTER_COUNTERS);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_REG_TRAPS,
			      c->reg_traps, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_ADMIN_OBSERVED,
			      c->admin_observed, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_EMULATED_CMDS,
			      c->emulated_cmds, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_SWITCHES,
			      c->switches, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_SWITCH_FAILURES,
			      c->switch_failures, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_DIRTY_PAGES,
			      c->dirty_pages, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_IDENTIFY_ANSWERED,
			      c->identify_answered, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_COUNTERS_WINDOW_DOORBELLS,
			      c->window_doorbells, pad)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* A timing with no source mode describes a switch that never ran. */
static int emuhba_nl_put_timing(struct sk_buff *skb,
				const struct emuhba_switch_timing *t)
{
	const int pad = EMUHBA_A_SWITCH_TIMING_PAD;
	struct nlattr *nest;

	if (!t->from_mode)
		return 0;
	nest = nla_nest_start(skb, EMUHBA_A_ADAPTER_LAST_SWITCH);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_s32(skb, EMUHBA_A_SWITCH_TIMING_RESULT, t->result) ||
	    nla_put_u32(skb, EMUHBA_A_SWITCH_TIMING_FROM_MODE, t->from_mode) ||
	    nla_put_u32(skb, EMUHBA_A_SWITCH_TIMING_TO_MODE, t->to_mode) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_SWITCH_TIMING_STOP_NS,
			      t->stop_ns, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_SWITCH_TIMING_CAPTURE_NS,
			      t->capture_ns, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_SWITCH_TIMING_LOAD_NS,
			      t->load_ns, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_SWITCH_TIMING_REPOINT_NS,
			      t->repoint_ns, pad) ||
	    nla_put_u64_64bit(skb, EMUHBA_A_SWITCH_TIMING_TOTAL_NS,
			      t->total_ns, pad)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* Absent values stay absent: "no NGUID" is not an all-zero NGUID. */
static int emuhba_nl_put_ident(struct sk_buff *skb,
			       const struct emuhba_ident_info *id)
{
	if (id->nsid && nla_put_u32(skb, EMUHBA_A_ADAPTER_NSID, id->nsid))
		return -EMSGSIZE;
	if (id->has_nguid &&
	    nla_put(skb, EMUHBA_A_ADAPTER_NGUID, sizeof(id->nguid), id->nguid))
		return -EMSGSIZE;
	if (id->has_eui64 &&
	    nla_put(skb, EMUHBA_A_ADAPTER_EUI64, sizeof(id->eui64), id->eui64))
		return -EMSGSIZE;
	if (id->subnqn[0] &&
	    nla_put_string(skb, EMUHBA_A_ADAPTER_SUBNQN, id->subnqn))
		return -EMSGSIZE;
	return 0;
}

static int emuhba_nl_fill_adapter(struct sk_buff *skb,
				  const struct emuhba_snapshot *s,
				  const struct emuhba_ident_info *id,
				  u32 portid, u32 seq, int flags, u8 cmd)
{
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &emuhba_nl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, EMUHBA_A_ADAPTER_ID, s->id) ||
	    nla_put_string(skb, EMUHBA_A_ADAPTER_BDF, s->bdf) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_PERSONALITY, s->personality) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_MODE, s->mode) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_MIG_STATE, s->mig_state) ||
	    nla_put_u8(skb, EMUHBA_A_ADAPTER_OPEN, s->open) ||
	    nla_put_u8(skb, EMUHBA_A_ADAPTER_GUEST_IDENTITY,
		       s->guest_identity) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_POSITION_SOURCE,
			s->position_source) ||
	    nla_put_string(skb, EMUHBA_A_ADAPTER_BACKEND, s->backend) ||
	    emuhba_nl_put_policy(skb, &s->policy) ||
	    emuhba_nl_put_counters(skb, &s->counters) ||
	    emuhba_nl_put_timing(skb, &s->last_switch) ||
	    emuhba_nl_put_ident(skb, id)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* An adapter as the family shows it: its state and its identity. */
struct emuhba_nl_view {
	struct emuhba_snapshot s;
	struct emuhba_ident_info id;
};

static void emuhba_nl_view(struct emuhba_adapter *a, struct emuhba_nl_view *v)
{
	memset(v, 0, sizeof(*v));
	emuhba_adapter_snapshot(a, &v->s);
	emuhba_ident_info(a, &v->id);
}

static int emuhba_nl_adapter_get_doit(struct sk_buff *skb,
				      struct genl_info *info)
{
	struct emuhba_nl_view *s;
	struct emuhba_adapter *a;
	struct sk_buff *rsp;
	int err;

	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);

	err = -ENOMEM;
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	rsp = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!s || !rsp)
		goto err_free;
	emuhba_nl_view(a, s);
	err = emuhba_nl_fill_adapter(rsp, &s->s, &s->id, info->snd_portid,
				     info->snd_seq, 0, EMUHBA_CMD_ADAPTER_GET);
	if (err) {
		NL_SET_ERR_MSG(info->extack, "adapter does not fit a message");
		goto err_free;
	}
	kfree(s);
	emuhba_adapter_put(a);
	return genlmsg_reply(rsp, info);

err_free:
	nlmsg_free(rsp);
	kfree(s);
	emuhba_adapter_put(a);
	return err;
}

static int emuhba_nl_adapter_get_dumpit(struct sk_buff *skb,
					struct netlink_callback *cb)
{
	struct emuhba_nl_dump_ctx *ctx = (void *)cb->ctx;
	struct emuhba_nl_view *s;
	struct emuhba_adapter *a;
	u32 id = ctx->next_id;
	int err = 0;

	NL_ASSERT_DUMP_CTX_FITS(struct emuhba_nl_dump_ctx);
	if (ctx->done)
		return 0;
	s = kmalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	while ((a = emuhba_adapter_get_next(&id))) {
		emuhba_nl_view(a, s);
		emuhba_adapter_put(a);
		/*
		 * NLM_F_MULTI on every part: readers (libnl) that stop at the
		 * first buffer without it would miss the rest of the dump.
		 */
		err = emuhba_nl_fill_adapter(skb, &s->s, &s->id,
					     NETLINK_CB(cb->skb).portid,
					     cb->nlh->nlmsg_seq, NLM_F_MULTI,
					     EMUHBA_CMD_ADAPTER_GET);
		if (err)
			break;
		if (id == U32_MAX) {
			ctx->done = true;
			break;
		}
		ctx->next_id = ++id;
	}
	kfree(s);
	/* -EMSGSIZE with a non-empty skb: the core resumes at next_id. */
	return err;
}

static int emuhba_nl_backend_set_doit(struct sk_buff *skb,
				      struct genl_info *info)
{
	struct nlattr *attr;
	struct emuhba_adapter *a;
	const char *path;
	int err;

	if (!emuhba_nl_require(info, EMUHBA_A_ADAPTER_BACKEND,
			       "backend attribute required"))
		return -EINVAL;
	attr = info->attrs[EMUHBA_A_ADAPTER_BACKEND];
	path = nla_data(attr);
	if (path[0] != '/' && strcmp(path, "auto")) {
		NL_SET_ERR_MSG_ATTR(info->extack, attr,
				    "backend must be an absolute path or \"auto\"");
		return -EINVAL;
	}

	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);
	err = emuhba_adapter_set_backend(a, path, info->extack);
	if (err && !info->extack->_msg)
		NL_SET_ERR_MSG_ATTR(info->extack, attr, "backend refused");
	emuhba_adapter_put(a);
	return err;
}

static int emuhba_nl_policy_set_doit(struct sk_buff *skb,
				     struct genl_info *info)
{
	struct nlattr *tb[EMUHBA_A_POLICY_MAX + 1];
	struct emuhba_snapshot *s;
	struct emuhba_adapter *a;
	struct emuhba_policy p;
	struct nlattr *nest;
	int err;

	if (!emuhba_nl_require(info, EMUHBA_A_ADAPTER_POLICY,
			       "policy nest required"))
		return -EINVAL;
	nest = info->attrs[EMUHBA_A_ADAPTER_POLICY];
	err = nla_parse_nested(tb, EMUHBA_A_POLICY_MAX, nest,
			       emuhba_policy_nl_policy, info->extack);
	if (err)
		return err;
	if (!tb[EMUHBA_A_POLICY_AUTO_SWITCH] &&
	    !tb[EMUHBA_A_POLICY_QUIESCE_REQUIRED] &&
	    !tb[EMUHBA_A_POLICY_SWITCH_TIMEOUT] &&
	    !tb[EMUHBA_A_POLICY_IDLE_AFTER] &&
	    !tb[EMUHBA_A_POLICY_NS_COPY]) {
		NL_SET_ERR_MSG_ATTR(info->extack, nest,
				    "policy nest changes nothing");
		return -EINVAL;
	}

	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s) {
		emuhba_adapter_put(a);
		return -ENOMEM;
	}

	mutex_lock(&emuhba_genl_policy_lock);
	emuhba_adapter_snapshot(a, s);
	p = s->policy;
	if (tb[EMUHBA_A_POLICY_AUTO_SWITCH])
		p.auto_switch = nla_get_u8(tb[EMUHBA_A_POLICY_AUTO_SWITCH]);
	if (tb[EMUHBA_A_POLICY_QUIESCE_REQUIRED])
		p.quiesce_required =
			nla_get_u8(tb[EMUHBA_A_POLICY_QUIESCE_REQUIRED]);
	if (tb[EMUHBA_A_POLICY_SWITCH_TIMEOUT])
		p.switch_timeout_ms =
			nla_get_u32(tb[EMUHBA_A_POLICY_SWITCH_TIMEOUT]);
	if (tb[EMUHBA_A_POLICY_IDLE_AFTER])
		p.idle_after_ms = nla_get_u32(tb[EMUHBA_A_POLICY_IDLE_AFTER]);
	if (tb[EMUHBA_A_POLICY_NS_COPY])
		p.ns_copy = nla_get_u8(tb[EMUHBA_A_POLICY_NS_COPY]);
	err = emuhba_adapter_set_policy(a, &p, info->extack);
	mutex_unlock(&emuhba_genl_policy_lock);
	if (err && !info->extack->_msg)
		NL_SET_ERR_MSG_ATTR(info->extack, nest, "policy refused");

	kfree(s);
	emuhba_adapter_put(a);
	return err;
}

static int emuhba_nl_switch_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct emuhba_nl_switch_req req = {};
	struct emuhba_switch_timing timing = {};
	struct emuhba_adapter *a;
	struct sk_buff *rsp;
	void *hdr;
	u32 to;
	int err;

	if (!emuhba_nl_require(info, EMUHBA_A_ADAPTER_MODE,
			       "target mode required"))
		return -EINVAL;
	to = nla_get_u32(info->attrs[EMUHBA_A_ADAPTER_MODE]);

	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);

	rsp = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!rsp) {
		emuhba_adapter_put(a);
		return -ENOMEM;
	}

	req.task = current;
	req.a = a;
	spin_lock(&emuhba_nl_switch_lock);
	list_add(&req.node, &emuhba_nl_switch_reqs);
	spin_unlock(&emuhba_nl_switch_lock);
	err = emuhba_adapter_switch(a, to, &timing, info->extack);
	spin_lock(&emuhba_nl_switch_lock);
	list_del(&req.node);
	spin_unlock(&emuhba_nl_switch_lock);
	if (err) {
		if (!info->extack->_msg)
			NL_SET_ERR_MSG(info->extack, "switch failed");
		if (!req.notified)
			emuhba_genl_notify_error(a, err, info->extack->_msg);
		goto err_free;
	}

	err = -EMSGSIZE;
	hdr = genlmsg_iput(rsp, info);
	if (!hdr)
		goto err_free;
	if (nla_put_u32(rsp, EMUHBA_A_ADAPTER_ID, a->id) ||
	    nla_put_string(rsp, EMUHBA_A_ADAPTER_BDF, emuhba_nl_bdf(a)) ||
	    nla_put_u32(rsp, EMUHBA_A_ADAPTER_MODE, timing.to_mode ?: to) ||
	    emuhba_nl_put_timing(rsp, &timing))
		goto err_free;
	genlmsg_end(rsp, hdr);
	emuhba_adapter_put(a);
	return genlmsg_reply(rsp, info);

err_free:
	nlmsg_free(rsp);
	emuhba_adapter_put(a);
	return err;
}

static int emuhba_nl_image_get_doit(struct sk_buff *skb,
				    struct genl_info *info)
{
	struct emuhba_adapter *a;
	struct sk_buff *rsp;
	u8 *img = NULL;
	void *hdr;
	int len, err;

	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);
	len = emuhba_image_stable(a, EMUHBA_IMAGE_MAX_LEN, &img);
	if (len < 0) {
		NL_SET_ERR_MSG_FMT(info->extack,
				   "cannot build the stable image: %pe",
				   ERR_PTR(len));
		emuhba_adapter_put(a);
		return len;
	}

	err = -ENOMEM;
	rsp = genlmsg_new(nla_total_size(len) + NLMSG_GOODSIZE, GFP_KERNEL);
	if (!rsp)
		goto out;
	err = -EMSGSIZE;
	hdr = genlmsg_iput(rsp, info);
	if (!hdr ||
	    nla_put_u32(rsp, EMUHBA_A_ADAPTER_ID, a->id) ||
	    nla_put_string(rsp, EMUHBA_A_ADAPTER_BDF, emuhba_nl_bdf(a)) ||
	    nla_put(rsp, EMUHBA_A_ADAPTER_IMAGE, len, img)) {
		NL_SET_ERR_MSG(info->extack, "image does not fit a message");
		nlmsg_free(rsp);
		goto out;
	}
	genlmsg_end(rsp, hdr);
	err = genlmsg_reply(rsp, info);
out:
	kvfree(img);
	emuhba_adapter_put(a);
	return err;
}

/* Values as text: a verdict is read by people and compared by scripts. */
static void emuhba_nl_compat_val(const struct emu_verdict_field *f, bool dst,
				 char *buf, size_t len)
{
	u64 v = dst ? f->dst : f->src;

	if (dst && !f->dst_present) {
		strscpy(buf, "absent", len);
		return;
	}
	switch (f->fmt) {
	case EMU_VERDICT_DEC:
		snprintf(buf, len, "%llu", v);
		break;
	case EMU_VERDICT_HEX:
		snprintf(buf, len, "0x%llx", v);
		break;
	case EMU_VERDICT_ID:
		snprintf(buf, len, "%*phN", f->id_len,
			 dst ? f->dst_id : f->src_id);
		break;
	default:
		strscpy(buf, "-", len);
	}
}

static int emuhba_nl_put_verdict(struct sk_buff *skb,
				 const struct emu_verdict *v)
{
	char src[2 * EMU_VERDICT_ID_MAX + 1], dst[2 * EMU_VERDICT_ID_MAX + 1];
	struct nlattr *nest;
	u32 i;

	if (nla_put_u8(skb, EMUHBA_A_ADAPTER_COMPATIBLE, v->compatible))
		return -EMSGSIZE;
	for (i = 0; i < v->nr; i++) {
		const struct emu_verdict_field *f = &v->f[i];

		emuhba_nl_compat_val(f, false, src, sizeof(src));
		emuhba_nl_compat_val(f, true, dst, sizeof(dst));
		nest = nla_nest_start(skb, EMUHBA_A_ADAPTER_COMPAT_FIELD);
		if (!nest ||
		    nla_put_string(skb, EMUHBA_A_COMPAT_FIELD_NAME, f->name) ||
		    (f->nsid &&
		     nla_put_u32(skb, EMUHBA_A_COMPAT_FIELD_NSID, f->nsid)) ||
		    nla_put_string(skb, EMUHBA_A_COMPAT_FIELD_SRC, src) ||
		    nla_put_string(skb, EMUHBA_A_COMPAT_FIELD_DST, dst) ||
		    nla_put_u8(skb, EMUHBA_A_COMPAT_FIELD_OK, f->ok))
			return -EMSGSIZE;
		nla_nest_end(skb, nest);
	}
	return 0;
}

/*
 * A refusal is an answer, not a failure: the reply carries the verdict and
 * the extended ACK names the first refusing field (a warning). Only an
 * image that is not well formed fails the request.
 */
static int emuhba_nl_compat_check_doit(struct sk_buff *skb,
				       struct genl_info *info)
{
	struct emu_verdict *v = NULL;
	struct emu_nvme_limits *lim = NULL;
	struct emuhba_adapter *a;
	struct sk_buff *rsp;
	struct nlattr *attr;
	char msg[128];
	void *hdr;
	int err;

	if (!emuhba_nl_require(info, EMUHBA_A_ADAPTER_IMAGE,
			       "image attribute required"))
		return -EINVAL;
	attr = info->attrs[EMUHBA_A_ADAPTER_IMAGE];
	a = emuhba_nl_lookup(info);
	if (IS_ERR(a))
		return PTR_ERR(a);

	err = -ENOMEM;
	lim = kzalloc(sizeof(*lim), GFP_KERNEL);
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	if (!lim || !v)
		goto out;
	emuhba_image_limits(a, lim);
	err = emu_verdict_judge(nla_data(attr), nla_len(attr), lim, v, msg,
				sizeof(msg));
	if (err) {
		NL_SET_ERR_MSG_ATTR_FMT(info->extack, attr,
					"image not well formed: %s", msg);
		goto out;
	}

	err = -ENOMEM;
	rsp = genlmsg_new(NLMSG_GOODSIZE + v->nr * 128, GFP_KERNEL);
	if (!rsp)
		goto out;
	hdr = genlmsg_iput(rsp, info);
	if (!hdr ||
	    nla_put_u32(rsp, EMUHBA_A_ADAPTER_ID, a->id) ||
	    nla_put_string(rsp, EMUHBA_A_ADAPTER_BDF, emuhba_nl_bdf(a)) ||
	    emuhba_nl_put_verdict(rsp, v)) {
		NL_SET_ERR_MSG(info->extack, "verdict does not fit a message");
		nlmsg_free(rsp);
		err = -EMSGSIZE;
		goto out;
	}
	genlmsg_end(rsp, hdr);
	if (!v->compatible)
		NL_SET_ERR_MSG_FMT(info->extack, "refused: %s", msg);
	err = genlmsg_reply(rsp, info);
out:
	kfree(v);
	kfree(lim);
	emuhba_adapter_put(a);
	return err;
}

/* ynl-gen: begin ops */
static const struct genl_split_ops emuhba_nl_ops[] = {
	{
		.cmd		= EMUHBA_CMD_ADAPTER_GET,
		.doit		= emuhba_nl_adapter_get_doit,
		.policy		= emuhba_adapter_get_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_BDF,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd	= EMUHBA_CMD_ADAPTER_GET,
		.dumpit	= emuhba_nl_adapter_get_dumpit,
		.flags	= GENL_ADMIN_PERM | GENL_CMD_CAP_DUMP,
	},
	{
		.cmd		= EMUHBA_CMD_BACKEND_SET,
		.doit		= emuhba_nl_backend_set_doit,
		.policy		= emuhba_backend_set_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_BACKEND,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= EMUHBA_CMD_POLICY_SET,
		.doit		= emuhba_nl_policy_set_doit,
		.policy		= emuhba_policy_set_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_POLICY,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= EMUHBA_CMD_SWITCH,
		.doit		= emuhba_nl_switch_doit,
		.policy		= emuhba_switch_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_MODE,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= EMUHBA_CMD_IMAGE_GET,
		.doit		= emuhba_nl_image_get_doit,
		.policy		= emuhba_image_get_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_BDF,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= EMUHBA_CMD_COMPAT_CHECK,
		.doit		= emuhba_nl_compat_check_doit,
		.policy		= emuhba_compat_check_nl_policy,
		.maxattr	= EMUHBA_A_ADAPTER_IMAGE,
		.flags		= GENL_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
};

/* ynl-gen: end ops */

/*
 * Adapters are host PCI functions, not per-namespace objects: the family
 * lives in the initial network namespace only (netnsok false).
 */
static struct genl_family emuhba_nl_family __ro_after_init = {
	.name		= EMUHBA_FAMILY_NAME,
	.version	= EMUHBA_FAMILY_VERSION,
	.netnsok	= false,
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.split_ops	= emuhba_nl_ops,
	.n_split_ops	= ARRAY_SIZE(emuhba_nl_ops),
	.mcgrps		= emuhba_nl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(emuhba_nl_mcgrps),
};

static bool emuhba_nl_listening(void)
{
	return READ_ONCE(emuhba_genl_ready) &&
	       genl_has_listeners(&emuhba_nl_family, &init_net,
				  EMUHBA_NLGRP_EVENTS);
}

static struct sk_buff *emuhba_nl_ntf_new(struct emuhba_adapter *a, u8 cmd,
					 void **hdr)
{
	struct sk_buff *skb;

	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!skb)
		return NULL;
	*hdr = genlmsg_put(skb, 0, 0, &emuhba_nl_family, 0, cmd);
	if (!*hdr ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_ID, a->id) ||
	    nla_put_string(skb, EMUHBA_A_ADAPTER_BDF, emuhba_nl_bdf(a))) {
		nlmsg_free(skb);
		return NULL;
	}
	return skb;
}

static void emuhba_nl_ntf_send(struct sk_buff *skb, void *hdr)
{
	genlmsg_end(skb, hdr);
	genlmsg_multicast(&emuhba_nl_family, skb, 0, EMUHBA_NLGRP_EVENTS,
			  GFP_KERNEL);
}

void emuhba_genl_notify_adapter(struct emuhba_adapter *a, bool added)
{
	struct emuhba_nl_view *s;
	struct sk_buff *skb;
	void *hdr;

	if (!emuhba_nl_listening())
		return;
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return;
	emuhba_nl_view(a, s);
	if (added) {
		skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
		if (skb && !emuhba_nl_fill_adapter(skb, &s->s, &s->id, 0, 0, 0,
						   EMUHBA_CMD_ADAPTER_ADD_NTF))
			genlmsg_multicast(&emuhba_nl_family, skb, 0,
					  EMUHBA_NLGRP_EVENTS, GFP_KERNEL);
		else
			nlmsg_free(skb);
	} else {
		skb = emuhba_nl_ntf_new(a, EMUHBA_CMD_ADAPTER_DEL_NTF, &hdr);
		if (skb) {
			if (nla_put_u32(skb, EMUHBA_A_ADAPTER_PERSONALITY,
					s->s.personality))
				nlmsg_free(skb);
			else
				emuhba_nl_ntf_send(skb, hdr);
		}
	}
	kfree(s);
}

void emuhba_genl_notify_mode(struct emuhba_adapter *a, u32 old_mode,
			     u32 new_mode)
{
	struct sk_buff *skb;
	void *hdr;

	if (!emuhba_nl_listening())
		return;
	skb = emuhba_nl_ntf_new(a, EMUHBA_CMD_MODE_CHANGE_NTF, &hdr);
	if (!skb)
		return;
	if (nla_put_u32(skb, EMUHBA_A_ADAPTER_OLD_MODE, old_mode) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_MODE, new_mode)) {
		nlmsg_free(skb);
		return;
	}
	emuhba_nl_ntf_send(skb, hdr);
}

void emuhba_genl_notify_mig_state(struct emuhba_adapter *a, u32 old_state,
				  u32 new_state)
{
	struct sk_buff *skb;
	void *hdr;

	if (!emuhba_nl_listening())
		return;
	skb = emuhba_nl_ntf_new(a, EMUHBA_CMD_MIG_STATE_NTF, &hdr);
	if (!skb)
		return;
	if (nla_put_u32(skb, EMUHBA_A_ADAPTER_OLD_MIG_STATE, old_state) ||
	    nla_put_u32(skb, EMUHBA_A_ADAPTER_MIG_STATE, new_state)) {
		nlmsg_free(skb);
		return;
	}
	emuhba_nl_ntf_send(skb, hdr);
}

void emuhba_genl_notify_error(struct emuhba_adapter *a, int err,
			      const char *msg)
{
	struct emuhba_nl_switch_req *req;
	struct sk_buff *skb;
	void *hdr;

	spin_lock(&emuhba_nl_switch_lock);
	list_for_each_entry(req, &emuhba_nl_switch_reqs, node)
		if (req->task == current && req->a == a)
			req->notified = true;
	spin_unlock(&emuhba_nl_switch_lock);

	if (!emuhba_nl_listening())
		return;
	skb = emuhba_nl_ntf_new(a, EMUHBA_CMD_ERROR_NTF, &hdr);
	if (!skb)
		return;
	if (nla_put_s32(skb, EMUHBA_A_ADAPTER_ERROR, err) ||
	    (msg && nla_put_string(skb, EMUHBA_A_ADAPTER_ERROR_MSG, msg))) {
		nlmsg_free(skb);
		return;
	}
	emuhba_nl_ntf_send(skb, hdr);
}

int emuhba_genl_init(void)
{
	int err;

	err = genl_register_family(&emuhba_nl_family);
	if (err)
		return err;
	WRITE_ONCE(emuhba_genl_ready, true);
	return 0;
}

void emuhba_genl_exit(void)
{
	WRITE_ONCE(emuhba_genl_ready, false);
	genl_unregister_family(&emuhba_nl_family);
}
