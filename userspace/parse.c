// SPDX-License-Identifier: GPL-2.0-only
/*
 * Decoding of netlink replies and events. Everything here works on plain
 * buffers (what recv() returned), reads every header and value with
 * memcpy (buffers need not be aligned) and checks every length, because
 * the fuzzer feeds it arbitrary bytes.
 */
#include <errno.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/emuhba.h>

#include "hbamig.h"

struct attr {
	u16 type;
	const u8 *data;
	size_t len;
};

/* Iterator over attributes in [p, p + len). */
struct attr_it {
	const u8 *p;
	size_t rem;
};

static bool attr_next(struct attr_it *it, struct attr *a)
{
	struct nlattr h;
	size_t step;

	if (it->rem < sizeof(h))
		return false;
	memcpy(&h, it->p, sizeof(h));
	if (h.nla_len < sizeof(h) || h.nla_len > it->rem)
		return false;
	a->type = h.nla_type & NLA_TYPE_MASK;
	a->data = it->p + NLA_HDRLEN;
	a->len = h.nla_len - NLA_HDRLEN;
	step = NLA_ALIGN(h.nla_len);
	if (step > it->rem)
		step = it->rem;
	it->p += step;
	it->rem -= step;
	return true;
}

static int get_u8(const struct attr *a, u8 *v)
{
	if (a->len != sizeof(*v))
		return -EINVAL;
	*v = a->data[0];
	return 0;
}

static int get_u32(const struct attr *a, u32 *v)
{
	if (a->len != sizeof(*v))
		return -EINVAL;
	memcpy(v, a->data, sizeof(*v));
	return 0;
}

static int get_u64(const struct attr *a, u64 *v)
{
	if (a->len != sizeof(*v))
		return -EINVAL;
	memcpy(v, a->data, sizeof(*v));
	return 0;
}

static int get_bin(const struct attr *a, u8 *v, size_t len)
{
	if (a->len != len)
		return -EINVAL;
	memcpy(v, a->data, len);
	return 0;
}

/* A string must carry its NUL and fit @size with it. */
static int get_str(const struct attr *a, char *buf, size_t size)
{
	const u8 *nul;

	if (!a->len)
		return -EINVAL;
	nul = memchr(a->data, 0, a->len);
	if (!nul || (size_t)(nul - a->data) + 1 > size)
		return -EINVAL;
	memcpy(buf, a->data, nul - a->data + 1);
	return 0;
}

static int parse_policy(const struct attr *nest, struct hba_policy *p)
{
	struct attr_it it = { nest->data, nest->len };
	struct attr a;
	u8 v8 = 0;
	int err = 0;

	while (!err && attr_next(&it, &a)) {
		switch (a.type) {
		case EMUHBA_A_POLICY_AUTO_SWITCH:
			err = get_u8(&a, &v8);
			p->auto_switch = v8;
			p->has_auto_switch = true;
			break;
		case EMUHBA_A_POLICY_QUIESCE_REQUIRED:
			err = get_u8(&a, &v8);
			p->quiesce_required = v8;
			p->has_quiesce_required = true;
			break;
		case EMUHBA_A_POLICY_SWITCH_TIMEOUT:
			err = get_u32(&a, &p->switch_timeout_ms);
			p->has_switch_timeout = true;
			break;
		case EMUHBA_A_POLICY_IDLE_AFTER:
			err = get_u32(&a, &p->idle_after_ms);
			p->has_idle_after = true;
			break;
		case EMUHBA_A_POLICY_NS_COPY:
			err = get_u8(&a, &v8);
			p->ns_copy = v8;
			p->has_ns_copy = true;
			break;
		}
	}
	return err;
}

static int parse_counters(const struct attr *nest, struct hba_counters *c)
{
	struct attr_it it = { nest->data, nest->len };
	struct attr a;
	int err = 0;

	c->present = true;
	while (!err && attr_next(&it, &a)) {
		switch (a.type) {
		case EMUHBA_A_COUNTERS_REG_TRAPS:
			err = get_u64(&a, &c->reg_traps);
			break;
		case EMUHBA_A_COUNTERS_ADMIN_OBSERVED:
			err = get_u64(&a, &c->admin_observed);
			break;
		case EMUHBA_A_COUNTERS_EMULATED_CMDS:
			err = get_u64(&a, &c->emulated_cmds);
			break;
		case EMUHBA_A_COUNTERS_SWITCHES:
			err = get_u64(&a, &c->switches);
			break;
		case EMUHBA_A_COUNTERS_SWITCH_FAILURES:
			err = get_u64(&a, &c->switch_failures);
			break;
		case EMUHBA_A_COUNTERS_DIRTY_PAGES:
			err = get_u64(&a, &c->dirty_pages);
			break;
		case EMUHBA_A_COUNTERS_IDENTIFY_ANSWERED:
			err = get_u64(&a, &c->identify_answered);
			c->has_identify_answered = true;
			break;
		case EMUHBA_A_COUNTERS_WINDOW_DOORBELLS:
			err = get_u64(&a, &c->window_doorbells);
			c->has_window_doorbells = true;
			break;
		}
	}
	return err;
}

static int parse_timing(const struct attr *nest, struct hba_timing *t)
{
	struct attr_it it = { nest->data, nest->len };
	struct attr a;
	u32 v = 0;
	int err = 0;

	t->present = true;
	while (!err && attr_next(&it, &a)) {
		switch (a.type) {
		case EMUHBA_A_SWITCH_TIMING_RESULT:
			err = get_u32(&a, &v);
			t->result = (s32)v;
			break;
		case EMUHBA_A_SWITCH_TIMING_FROM_MODE:
			err = get_u32(&a, &t->from_mode);
			break;
		case EMUHBA_A_SWITCH_TIMING_TO_MODE:
			err = get_u32(&a, &t->to_mode);
			break;
		case EMUHBA_A_SWITCH_TIMING_STOP_NS:
			err = get_u64(&a, &t->stop_ns);
			break;
		case EMUHBA_A_SWITCH_TIMING_CAPTURE_NS:
			err = get_u64(&a, &t->capture_ns);
			break;
		case EMUHBA_A_SWITCH_TIMING_LOAD_NS:
			err = get_u64(&a, &t->load_ns);
			break;
		case EMUHBA_A_SWITCH_TIMING_REPOINT_NS:
			err = get_u64(&a, &t->repoint_ns);
			break;
		case EMUHBA_A_SWITCH_TIMING_TOTAL_NS:
			err = get_u64(&a, &t->total_ns);
			break;
		}
	}
	return err;
}

int hba_parse_attrs(const void *attrs, size_t len, struct hba_msg *m)
{
	struct attr_it it = { attrs, len };
	struct attr a;
	u8 v8 = 0;
	u32 v = 0;
	int err = 0;

	while (!err && attr_next(&it, &a)) {
		switch (a.type) {
		case EMUHBA_A_ADAPTER_ID:
			err = get_u32(&a, &m->id);
			m->has_id = true;
			break;
		case EMUHBA_A_ADAPTER_BDF:
			err = get_str(&a, m->bdf, sizeof(m->bdf));
			m->has_bdf = true;
			break;
		case EMUHBA_A_ADAPTER_PERSONALITY:
			err = get_u32(&a, &m->personality);
			m->has_personality = true;
			break;
		case EMUHBA_A_ADAPTER_MODE:
			err = get_u32(&a, &m->mode);
			m->has_mode = true;
			break;
		case EMUHBA_A_ADAPTER_OLD_MODE:
			err = get_u32(&a, &m->old_mode);
			m->has_old_mode = true;
			break;
		case EMUHBA_A_ADAPTER_MIG_STATE:
			err = get_u32(&a, &m->mig_state);
			m->has_mig_state = true;
			break;
		case EMUHBA_A_ADAPTER_OLD_MIG_STATE:
			err = get_u32(&a, &m->old_mig_state);
			m->has_old_mig_state = true;
			break;
		case EMUHBA_A_ADAPTER_OPEN:
			err = get_u8(&a, &v8);
			m->open = v8;
			m->has_open = true;
			break;
		case EMUHBA_A_ADAPTER_BACKEND:
			err = get_str(&a, m->backend, sizeof(m->backend));
			m->has_backend = true;
			break;
		case EMUHBA_A_ADAPTER_POLICY:
			err = parse_policy(&a, &m->policy);
			m->has_policy = true;
			break;
		case EMUHBA_A_ADAPTER_COUNTERS:
			err = parse_counters(&a, &m->counters);
			break;
		case EMUHBA_A_ADAPTER_LAST_SWITCH:
			err = parse_timing(&a, &m->last_switch);
			break;
		case EMUHBA_A_ADAPTER_ERROR:
			err = get_u32(&a, &v);
			m->error = (s32)v;
			m->has_error = true;
			break;
		case EMUHBA_A_ADAPTER_ERROR_MSG:
			err = get_str(&a, m->error_msg, sizeof(m->error_msg));
			m->has_error_msg = true;
			break;
		case EMUHBA_A_ADAPTER_NSID:
			err = get_u32(&a, &m->nsid);
			m->has_nsid = true;
			break;
		case EMUHBA_A_ADAPTER_NGUID:
			err = get_bin(&a, m->nguid, sizeof(m->nguid));
			m->has_nguid = true;
			break;
		case EMUHBA_A_ADAPTER_EUI64:
			err = get_bin(&a, m->eui64, sizeof(m->eui64));
			m->has_eui64 = true;
			break;
		case EMUHBA_A_ADAPTER_SUBNQN:
			err = get_str(&a, m->subnqn, sizeof(m->subnqn));
			m->has_subnqn = true;
			break;
		case EMUHBA_A_ADAPTER_GUEST_IDENTITY:
			err = get_u8(&a, &v8);
			m->guest_identity = v8;
			m->has_guest_identity = true;
			break;
		case EMUHBA_A_ADAPTER_POSITION_SOURCE:
			err = get_u32(&a, &m->position_source);
			m->has_position_source = true;
			break;
		default:
			/* Newer kernels may add attributes: not an error. */
			break;
		}
	}
	return err;
}

/* A kernel errno as a positive value; nonsense (beyond MAX_ERRNO) is EPROTO. */
static int errno_of(s32 v)
{
	if (v < -4095 || v > 4095)
		return EPROTO;
	return v < 0 ? -v : v;
}

/* Extended ACK TLVs after an NLMSG_ERROR or NLMSG_DONE payload. */
static void parse_ext_ack(const u8 *p, size_t len, struct hba_nlerr *e)
{
	struct attr_it it = { p, len };
	struct attr a;

	while (attr_next(&it, &a)) {
		switch (a.type) {
		case NLMSGERR_ATTR_MSG:
			if (get_str(&a, e->msg, sizeof(e->msg)))
				e->msg[0] = 0;
			break;
		case NLMSGERR_ATTR_OFFS:
			e->has_offs = !get_u32(&a, &e->offs);
			break;
		case NLMSGERR_ATTR_MISS_TYPE:
			e->has_miss = !get_u32(&a, &e->miss_type);
			break;
		}
	}
}

static int parse_error(const struct nlmsghdr *h, const u8 *payload,
		       size_t plen, struct hba_nlerr *e)
{
	struct nlmsgerr me;
	size_t skip;

	if (plen < sizeof(me))
		return -EINVAL;
	memcpy(&me, payload, sizeof(me));
	memset(e, 0, sizeof(*e));
	e->error = errno_of(me.error);
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return 0;
	if (h->nlmsg_flags & NLM_F_CAPPED)
		skip = sizeof(me);
	else
		skip = sizeof(me.error) + NLMSG_ALIGN(me.msg.nlmsg_len);
	if (skip < plen)
		parse_ext_ack(payload + skip, plen - skip, e);
	return 0;
}

int hba_parse_buf(const void *buf, size_t len, u16 family, hba_msg_cb cb,
		  void *arg, u16 raw_type, hba_raw_cb raw,
		  struct hba_nlerr *err)
{
	const u8 *p = buf;
	struct nlmsghdr h;
	int ret;

	while (len >= sizeof(h)) {
		const u8 *payload;
		size_t plen;

		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len)
			return -EBADMSG;
		payload = p + NLMSG_HDRLEN;
		plen = h.nlmsg_len - NLMSG_HDRLEN;

		if (h.nlmsg_type == NLMSG_ERROR) {
			if (parse_error(&h, payload, plen, err))
				return -EBADMSG;
			return HBA_PARSE_DONE;
		}
		if (h.nlmsg_type == NLMSG_DONE) {
			s32 e = 0;

			memset(err, 0, sizeof(*err));
			if (plen >= sizeof(e)) {
				memcpy(&e, payload, sizeof(e));
				err->error = errno_of(e);
				if (h.nlmsg_flags & NLM_F_ACK_TLVS)
					parse_ext_ack(payload + sizeof(e),
						      plen - sizeof(e), err);
			}
			return HBA_PARSE_DONE;
		}
		if (family && h.nlmsg_type == family && cb) {
			struct genlmsghdr g;
			struct hba_msg m;

			if (plen < GENL_HDRLEN)
				return -EBADMSG;
			memcpy(&g, payload, sizeof(g));
			memset(&m, 0, sizeof(m));
			m.cmd = g.cmd;
			if (hba_parse_attrs(payload + GENL_HDRLEN,
					    plen - GENL_HDRLEN, &m))
				return -EBADMSG;
			ret = cb(&m, arg);
			if (ret < 0)
				return ret;
		} else if (raw_type && h.nlmsg_type == raw_type && raw) {
			ret = raw(p, arg);
			if (ret < 0)
				return ret;
		}
		if (NLMSG_ALIGN(h.nlmsg_len) >= len)
			break;
		p += NLMSG_ALIGN(h.nlmsg_len);
		len -= NLMSG_ALIGN(h.nlmsg_len);
	}
	return HBA_PARSE_MORE;
}

const char *hba_parse_ctrl_family(const void *nlh, u8 *cmd)
{
	static char name[GENL_NAMSIZ];
	struct genlmsghdr g;
	struct nlmsghdr h;
	struct attr_it it;
	struct attr a;

	memcpy(&h, nlh, sizeof(h));
	if (h.nlmsg_type != GENL_ID_CTRL ||
	    h.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
		return NULL;
	memcpy(&g, (const u8 *)nlh + NLMSG_HDRLEN, sizeof(g));
	*cmd = g.cmd;
	it.p = (const u8 *)nlh + NLMSG_HDRLEN + GENL_HDRLEN;
	it.rem = h.nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
	while (attr_next(&it, &a))
		if (a.type == CTRL_ATTR_FAMILY_NAME &&
		    !get_str(&a, name, sizeof(name)))
			return name;
	return NULL;
}

/* Every IFLA_VF_* struct begins with the VF number. */
static int vf_field(const struct attr *a, size_t size, void *out)
{
	if (a->len < size)
		return -EINVAL;
	memcpy(out, a->data, size);
	return 0;
}

static struct hba_vf *vf_slot(struct hba_link *l, u32 vf, struct hba_vf *cur)
{
	if (cur)
		return cur;
	if (l->n >= HBA_MAX_VFS)
		return NULL;
	cur = &l->vfs[l->n++];
	memset(cur, 0, sizeof(*cur));
	cur->vf = vf;
	return cur;
}

static int parse_vf_info(const struct attr *info, struct hba_link *l)
{
	struct attr_it it = { info->data, info->len };
	struct hba_vf *v = NULL;
	struct attr a;

	while (attr_next(&it, &a)) {
		switch (a.type) {
		case IFLA_VF_MAC: {
			struct ifla_vf_mac x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			memcpy(v->mac, x.mac, sizeof(v->mac));
			v->has_mac = true;
			break;
		}
		case IFLA_VF_VLAN: {
			struct ifla_vf_vlan x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->vlan = x.vlan;
			v->qos = x.qos;
			v->has_vlan = true;
			break;
		}
		case IFLA_VF_RATE: {
			struct ifla_vf_rate x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->min_tx_rate = x.min_tx_rate;
			v->max_tx_rate = x.max_tx_rate;
			v->has_rate = true;
			break;
		}
		case IFLA_VF_SPOOFCHK: {
			struct ifla_vf_spoofchk x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->spoofchk = x.setting;
			v->has_spoofchk = true;
			break;
		}
		case IFLA_VF_LINK_STATE: {
			struct ifla_vf_link_state x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->link_state = x.link_state;
			v->has_link_state = true;
			break;
		}
		case IFLA_VF_TRUST: {
			struct ifla_vf_trust x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->trust = x.setting;
			v->has_trust = true;
			break;
		}
		case IFLA_VF_RSS_QUERY_EN: {
			struct ifla_vf_rss_query_en x;

			if (vf_field(&a, sizeof(x), &x))
				return -EINVAL;
			v = vf_slot(l, x.vf, v);
			if (!v)
				return -E2BIG;
			v->rss_query = x.setting;
			v->has_rss_query = true;
			break;
		}
		}
	}
	return 0;
}

int hba_parse_link(const void *nlh, size_t len, struct hba_link *l)
{
	struct ifinfomsg ifi;
	struct nlmsghdr h;
	struct attr_it it;
	struct attr a;
	int err;

	memset(l, 0, sizeof(*l));
	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, nlh, sizeof(h));
	if (h.nlmsg_len > len ||
	    h.nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi)))
		return -EINVAL;
	memcpy(&ifi, (const u8 *)nlh + NLMSG_HDRLEN, sizeof(ifi));
	l->ifindex = ifi.ifi_index;
	l->has_ifindex = true;
	it.p = (const u8 *)nlh + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi));
	it.rem = h.nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(ifi));
	while (attr_next(&it, &a)) {
		switch (a.type) {
		case IFLA_IFNAME:
			if (get_str(&a, l->ifname, sizeof(l->ifname)))
				return -EINVAL;
			break;
		case IFLA_NUM_VF:
			if (get_u32(&a, &l->num_vf))
				return -EINVAL;
			break;
		case IFLA_VFINFO_LIST: {
			struct attr_it vit = { a.data, a.len };
			struct attr va;

			while (attr_next(&vit, &va)) {
				if (va.type != IFLA_VF_INFO)
					continue;
				err = parse_vf_info(&va, l);
				if (err)
					return err;
			}
			break;
		}
		}
	}
	return 0;
}
