// SPDX-License-Identifier: GPL-2.0-only
/*
 * Output of hbamig: a small streaming JSON writer (-j, -p) and the text and
 * JSON renderings of adapters, switches, events and VFs. JSON key names
 * and their order are an interface (golden files in selftests/hbamig).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <linux/emuhba.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>

#include "hbamig.h"

struct hba_out hba_out;

void out_init(FILE *f, bool json, bool pretty)
{
	memset(&hba_out, 0, sizeof(hba_out));
	hba_out.f = f;
	hba_out.json = json;
	hba_out.pretty = pretty;
	hba_out.first[0] = true;
}

static void indent(void)
{
	if (!hba_out.pretty)
		return;
	fputc('\n', hba_out.f);
	for (int i = 0; i < hba_out.depth; i++)
		fputs("  ", hba_out.f);
}

static void json_string(const char *s)
{
	FILE *f = hba_out.f;

	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Separator and key of the next member. */
static void member(const char *key)
{
	int d = hba_out.depth;

	if (!hba_out.first[d])
		fputc(',', hba_out.f);
	if (d > 0)
		indent();
	hba_out.first[d] = false;
	if (key) {
		json_string(key);
		fputs(hba_out.pretty ? ": " : ":", hba_out.f);
	}
}

static void open_(const char *key, char c)
{
	member(key);
	fputc(c, hba_out.f);
	if (hba_out.depth < 15)
		hba_out.depth++;
	hba_out.first[hba_out.depth] = true;
}

static void close_(char c)
{
	bool empty = hba_out.first[hba_out.depth];

	if (hba_out.depth > 0)
		hba_out.depth--;
	if (!empty)
		indent();
	fputc(c, hba_out.f);
}

void out_obj_start(const char *key)
{
	open_(key, '{');
}

void out_obj_end(void)
{
	close_('}');
}

void out_arr_start(const char *key)
{
	open_(key, '[');
}

void out_arr_end(void)
{
	close_(']');
}

void out_str(const char *key, const char *val)
{
	member(key);
	json_string(val);
}

void out_u64(const char *key, u64 val)
{
	member(key);
	fprintf(hba_out.f, "%" PRIu64, val);
}

void out_s64(const char *key, int64_t val)
{
	member(key);
	fprintf(hba_out.f, "%" PRId64, val);
}

void out_bool(const char *key, bool val)
{
	member(key);
	fputs(val ? "true" : "false", hba_out.f);
}

void out_null(const char *key)
{
	member(key);
	fputs("null", hba_out.f);
}

void out_eol(void)
{
	fputc('\n', hba_out.f);
	hba_out.first[0] = true;
	fflush(hba_out.f);
}

/* ---- names ---- */

static const char *name_or_num(const char *const *tab, size_t n, u32 v)
{
	static char buf[4][24];
	static int i;

	if (v < n && tab[v])
		return tab[v];
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "unknown-%u", v);
	return buf[i];
}

const char *hba_mode_name(u32 mode)
{
	static const char *const t[] = {
		[EMUHBA_ADAPTER_MODE_DIRECT] = "direct",
		[EMUHBA_ADAPTER_MODE_EMULATED] = "emulated",
		[EMUHBA_ADAPTER_MODE_SWITCHING] = "switching",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), mode);
}

/* enum vfio_device_mig_state, spelled as QEMU and the kernel docs do. */
const char *hba_mig_state_name(u32 st)
{
	static const char *const t[] = {
		"error", "stop", "running", "stop_copy", "resuming",
		"running_p2p", "pre_copy", "pre_copy_p2p",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), st);
}

const char *hba_personality_name(u32 p)
{
	static const char *const t[] = {
		[EMUHBA_ADAPTER_PERSONALITY_NVME] = "nvme",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), p);
}

const char *hba_position_source_name(u32 src)
{
	static const char *const t[] = {
		[EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS] =
			"shadow-doorbells",
		[EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS] =
			"trapped-doorbells",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), src);
}

const char *hba_cmd_name(u8 cmd)
{
	static const char *const t[] = {
		[EMUHBA_CMD_ADAPTER_GET] = "adapter",
		[EMUHBA_CMD_ADAPTER_ADD_NTF] = "adapter-add",
		[EMUHBA_CMD_ADAPTER_DEL_NTF] = "adapter-del",
		[EMUHBA_CMD_BACKEND_SET] = "backend-set",
		[EMUHBA_CMD_POLICY_SET] = "policy-set",
		[EMUHBA_CMD_SWITCH] = "switch",
		[EMUHBA_CMD_MODE_CHANGE_NTF] = "mode-change",
		[EMUHBA_CMD_MIG_STATE_NTF] = "mig-state-change",
		[EMUHBA_CMD_ERROR_NTF] = "error",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), cmd);
}

const char *hba_errno_name(int err)
{
	switch (err < -4095 || err > 4095 ? -1 : err < 0 ? -err : err) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EAGAIN: return "EAGAIN";
	case EALREADY: return "EALREADY";
	case ECANCELED: return "ECANCELED";
	case EPROTO: return "EPROTO";
	}
	return "errno";
}

static const char *on_off(bool v)
{
	return v ? "on" : "off";
}

/* ---- adapters ---- */

static void print_policy_json(const struct hba_policy *p)
{
	out_obj_start("policy");
	if (p->has_auto_switch)
		out_bool("auto_switch", p->auto_switch);
	if (p->has_quiesce_required)
		out_bool("quiesce_required", p->quiesce_required);
	if (p->has_switch_timeout)
		out_u64("switch_timeout_ms", p->switch_timeout_ms);
	/* null from kernels that do not report it */
	if (p->has_idle_after)
		out_u64("idle_after_ms", p->idle_after_ms);
	else
		out_null("idle_after_ms");
	if (p->has_ns_copy)
		out_bool("ns_copy", p->ns_copy);
	else
		out_null("ns_copy");
	out_obj_end();
}

static void print_timing_json(const struct hba_timing *t)
{
	out_obj_start("last_switch");
	out_str("from", hba_mode_name(t->from_mode));
	out_str("to", hba_mode_name(t->to_mode));
	out_s64("result", t->result);
	out_str("result_name", hba_errno_name(t->result));
	out_u64("stop_ns", t->stop_ns);
	out_u64("capture_ns", t->capture_ns);
	out_u64("load_ns", t->load_ns);
	out_u64("repoint_ns", t->repoint_ns);
	out_u64("total_ns", t->total_ns);
	out_obj_end();
}

static void print_timing_text(const struct hba_timing *t)
{
	FILE *f = hba_out.f;

	fprintf(f, "    last-switch %s -> %s result %d (%s) total %" PRIu64
		"ns\n", hba_mode_name(t->from_mode), hba_mode_name(t->to_mode),
		t->result, hba_errno_name(t->result), t->total_ns);
	fprintf(f, "        stop %" PRIu64 "ns capture %" PRIu64 "ns load %"
		PRIu64 "ns repoint %" PRIu64 "ns\n", t->stop_ns,
		t->capture_ns, t->load_ns, t->repoint_ns);
}

static void hex(char *buf, const u8 *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", v[i]);
}

/*
 * The VF's own namespace and subsystem; guest_identity says whether the
 * guest sees another controller's identity (it came from another VF).
 * Absent means the VF reports none (or an older kernel): null, not zeros.
 */
static void print_identity_json(const struct hba_msg *m)
{
	char h[33];

	out_obj_start("identity");
	if (m->has_nsid)
		out_u64("nsid", m->nsid);
	else
		out_null("nsid");
	hex(h, m->nguid, sizeof(m->nguid));
	if (m->has_nguid)
		out_str("nguid", h);
	else
		out_null("nguid");
	hex(h, m->eui64, sizeof(m->eui64));
	if (m->has_eui64)
		out_str("eui64", h);
	else
		out_null("eui64");
	if (m->has_subnqn)
		out_str("subnqn", m->subnqn);
	else
		out_null("subnqn");
	if (m->has_guest_identity)
		out_bool("guest_identity", m->guest_identity);
	else
		out_null("guest_identity");
	out_obj_end();
}

static void print_identity_text(const struct hba_msg *m)
{
	char h[33];

	if (!m->has_nsid && !m->has_subnqn && !m->has_guest_identity)
		return;
	fprintf(hba_out.f, "    identity");
	if (m->has_nsid)
		fprintf(hba_out.f, " nsid %u", m->nsid);
	if (m->has_nguid) {
		hex(h, m->nguid, sizeof(m->nguid));
		fprintf(hba_out.f, " nguid %s", h);
	}
	if (m->has_eui64) {
		hex(h, m->eui64, sizeof(m->eui64));
		fprintf(hba_out.f, " eui64 %s", h);
	}
	if (m->has_subnqn)
		fprintf(hba_out.f, " subnqn %s", m->subnqn);
	if (m->has_guest_identity)
		fprintf(hba_out.f, " guest-identity %s",
			m->guest_identity ? "yes" : "no");
	if (m->counters.has_identify_answered)
		fprintf(hba_out.f, " identify-answered %" PRIu64,
			m->counters.identify_answered);
	fputc('\n', hba_out.f);
}

void hba_print_adapter(const struct hba_msg *m)
{
	FILE *f = hba_out.f;

	if (hba_out.json) {
		out_obj_start(NULL);
		out_u64("id", m->id);
		out_str("bdf", m->bdf);
		out_str("personality", hba_personality_name(m->personality));
		out_str("mode", hba_mode_name(m->mode));
		out_str("mig_state", hba_mig_state_name(m->mig_state));
		out_bool("open", m->open);
		if (m->has_backend && m->backend[0])
			out_str("backend", m->backend);
		else
			out_null("backend");
		/* null from kernels that do not report it */
		if (m->has_position_source)
			out_str("position_source",
				hba_position_source_name(m->position_source));
		else
			out_null("position_source");
		print_policy_json(&m->policy);
		if (m->counters.present) {
			const struct hba_counters *c = &m->counters;

			out_obj_start("counters");
			out_u64("reg_traps", c->reg_traps);
			out_u64("admin_observed", c->admin_observed);
			out_u64("emulated_cmds", c->emulated_cmds);
			out_u64("switches", c->switches);
			out_u64("switch_failures", c->switch_failures);
			out_u64("dirty_pages", c->dirty_pages);
			if (c->has_identify_answered)
				out_u64("identify_answered",
					c->identify_answered);
			else
				out_null("identify_answered");
			if (c->has_window_doorbells)
				out_u64("window_doorbells",
					c->window_doorbells);
			else
				out_null("window_doorbells");
			out_obj_end();
		}
		print_identity_json(m);
		if (m->last_switch.present)
			print_timing_json(&m->last_switch);
		else
			out_null("last_switch");
		out_obj_end();
		return;
	}

	fprintf(f, "%s: id %u %s mode %s mig-state %s%s\n", m->bdf, m->id,
		hba_personality_name(m->personality), hba_mode_name(m->mode),
		hba_mig_state_name(m->mig_state), m->open ? " open" : "");
	fprintf(f, "    backend %s\n",
		m->has_backend && m->backend[0] ? m->backend : "none");
	if (m->has_policy) {
		fprintf(f, "    policy auto-switch %s quiesce-required %s "
			"switch-timeout %ums",
			on_off(m->policy.auto_switch),
			on_off(m->policy.quiesce_required),
			m->policy.switch_timeout_ms);
		if (m->policy.has_idle_after)
			fprintf(f, " idle-after %ums",
				m->policy.idle_after_ms);
		/* Only while a storage copy's export holds the adapter. */
		if (m->policy.has_ns_copy && m->policy.ns_copy)
			fputs(" ns-copy on", f);
		fputc('\n', f);
	}
	if (m->has_position_source)
		fprintf(f, "    position-source %s\n",
			hba_position_source_name(m->position_source));
	if (m->counters.present) {
		fprintf(f, "    counters reg-traps %" PRIu64 " admin-observed %"
			PRIu64 " emulated-cmds %" PRIu64 " switches %" PRIu64
			" switch-failures %" PRIu64 " dirty-pages %" PRIu64,
			m->counters.reg_traps, m->counters.admin_observed,
			m->counters.emulated_cmds, m->counters.switches,
			m->counters.switch_failures, m->counters.dirty_pages);
		if (m->counters.has_window_doorbells)
			fprintf(f, " window-doorbells %" PRIu64,
				m->counters.window_doorbells);
		fputc('\n', f);
	}
	print_identity_text(m);
	if (m->last_switch.present)
		print_timing_text(&m->last_switch);
}

void hba_print_switch(const struct hba_msg *m)
{
	if (hba_out.json) {
		out_obj_start(NULL);
		out_u64("id", m->id);
		out_str("bdf", m->bdf);
		out_str("mode", hba_mode_name(m->mode));
		if (m->last_switch.present)
			print_timing_json(&m->last_switch);
		else
			out_null("last_switch");
		out_obj_end();
		return;
	}
	fprintf(hba_out.f, "%s: id %u now %s\n", m->bdf, m->id,
		hba_mode_name(m->mode));
	if (m->last_switch.present)
		print_timing_text(&m->last_switch);
}

/* ---- events: one line (or one JSON object) each ---- */

void hba_print_event(const struct hba_msg *m)
{
	FILE *f = hba_out.f;

	if (hba_out.json) {
		out_obj_start(NULL);
		out_str("event", hba_cmd_name(m->cmd));
		out_u64("id", m->id);
		out_str("bdf", m->bdf);
		switch (m->cmd) {
		case EMUHBA_CMD_ADAPTER_ADD_NTF:
		case EMUHBA_CMD_ADAPTER_DEL_NTF:
			out_str("personality",
				hba_personality_name(m->personality));
			if (m->has_mode)
				out_str("mode", hba_mode_name(m->mode));
			break;
		case EMUHBA_CMD_MODE_CHANGE_NTF:
			out_str("old", hba_mode_name(m->old_mode));
			out_str("new", hba_mode_name(m->mode));
			break;
		case EMUHBA_CMD_MIG_STATE_NTF:
			out_str("old", hba_mig_state_name(m->old_mig_state));
			out_str("new", hba_mig_state_name(m->mig_state));
			break;
		case EMUHBA_CMD_ERROR_NTF:
			out_s64("error", m->error);
			out_str("error_name", hba_errno_name(m->error));
			out_str("message", m->error_msg);
			break;
		}
		out_obj_end();
		out_eol();
		return;
	}

	switch (m->cmd) {
	case EMUHBA_CMD_ADAPTER_ADD_NTF:
		fprintf(f, "adapter add %s id %u %s mode %s\n", m->bdf, m->id,
			hba_personality_name(m->personality),
			hba_mode_name(m->mode));
		break;
	case EMUHBA_CMD_ADAPTER_DEL_NTF:
		fprintf(f, "adapter del %s id %u %s\n", m->bdf, m->id,
			hba_personality_name(m->personality));
		break;
	case EMUHBA_CMD_MODE_CHANGE_NTF:
		fprintf(f, "mode %s id %u %s -> %s\n", m->bdf, m->id,
			hba_mode_name(m->old_mode), hba_mode_name(m->mode));
		break;
	case EMUHBA_CMD_MIG_STATE_NTF:
		fprintf(f, "mig-state %s id %u %s -> %s\n", m->bdf, m->id,
			hba_mig_state_name(m->old_mig_state),
			hba_mig_state_name(m->mig_state));
		break;
	case EMUHBA_CMD_ERROR_NTF:
		fprintf(f, "error %s id %u %s: %s\n", m->bdf, m->id,
			hba_errno_name(m->error),
			m->has_error_msg ? m->error_msg : "");
		break;
	default:
		fprintf(f, "%s %s id %u\n", hba_cmd_name(m->cmd), m->bdf,
			m->id);
		break;
	}
	fflush(f);
}

void hba_print_family_event(const char *family, bool removed)
{
	if (hba_out.json) {
		out_obj_start(NULL);
		out_str("event", removed ? "family-del" : "family-add");
		out_str("family", family);
		out_obj_end();
		out_eol();
		return;
	}
	fprintf(hba_out.f, "family %s %s\n", family,
		removed ? "removed" : "added");
	fflush(hba_out.f);
}

/* ---- VFs ---- */

static const char *link_state_name(u32 s)
{
	static const char *const t[] = {
		[IFLA_VF_LINK_STATE_AUTO] = "auto",
		[IFLA_VF_LINK_STATE_ENABLE] = "enable",
		[IFLA_VF_LINK_STATE_DISABLE] = "disable",
	};

	return name_or_num(t, sizeof(t) / sizeof(t[0]), s);
}

static void mac_str(const u8 *mac, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

void hba_print_link(const struct hba_link *l, const char *pf_bdf,
		    const char *pf_driver)
{
	FILE *f = hba_out.f;
	char mac[24];

	if (hba_out.json) {
		out_obj_start(NULL);
		if (pf_bdf[0])
			out_str("pf", pf_bdf);
		else
			out_null("pf");
		out_str("driver", pf_driver);
		if (l->has_netdev)
			out_str("ifname", l->ifname);
		else
			out_null("ifname");
		out_u64("total_vfs", l->total_vfs);
		out_u64("num_vf", l->num_vf);
		out_arr_start("vfs");
		for (u32 i = 0; i < l->n; i++) {
			const struct hba_vf *v = &l->vfs[i];

			out_obj_start(NULL);
			out_u64("vf", v->vf);
			if (v->has_sys) {
				out_str("bdf", v->bdf);
				out_str("driver", v->driver);
			}
			if (v->has_mac) {
				mac_str(v->mac, mac, sizeof(mac));
				out_str("mac", mac);
			}
			if (v->has_vlan) {
				out_u64("vlan", v->vlan);
				out_u64("qos", v->qos);
			}
			if (v->has_rate) {
				out_u64("min_tx_rate", v->min_tx_rate);
				out_u64("max_tx_rate", v->max_tx_rate);
			}
			if (v->has_spoofchk && v->spoofchk != (u32)-1)
				out_bool("spoofchk", v->spoofchk);
			if (v->has_link_state)
				out_str("link_state",
					link_state_name(v->link_state));
			if (v->has_trust && v->trust != (u32)-1)
				out_bool("trust", v->trust);
			if (v->has_rss_query && v->rss_query != (u32)-1)
				out_bool("query_rss", v->rss_query);
			out_obj_end();
		}
		out_arr_end();
		out_obj_end();
		return;
	}

	fprintf(f, "%s: %s driver %s num_vf %u total_vfs %u\n",
		pf_bdf[0] ? pf_bdf : "(no device)",
		l->has_netdev ? l->ifname : "(no netdev)", pf_driver,
		l->num_vf, l->total_vfs);
	for (u32 i = 0; i < l->n; i++) {
		const struct hba_vf *v = &l->vfs[i];

		fprintf(f, "    vf %u", v->vf);
		if (v->has_sys)
			fprintf(f, " %s driver %s", v->bdf, v->driver);
		if (v->has_mac) {
			mac_str(v->mac, mac, sizeof(mac));
			fprintf(f, " mac %s", mac);
		}
		if (v->has_vlan && (v->vlan || v->qos))
			fprintf(f, " vlan %u qos %u", v->vlan, v->qos);
		if (v->has_rate)
			fprintf(f, " min_tx_rate %uMbps max_tx_rate %uMbps",
				v->min_tx_rate, v->max_tx_rate);
		if (v->has_spoofchk && v->spoofchk != (u32)-1)
			fprintf(f, " spoofchk %s", on_off(v->spoofchk));
		if (v->has_link_state)
			fprintf(f, " link-state %s",
				link_state_name(v->link_state));
		if (v->has_trust && v->trust != (u32)-1)
			fprintf(f, " trust %s", on_off(v->trust));
		if (v->has_rss_query && v->rss_query != (u32)-1)
			fprintf(f, " query_rss %s", on_off(v->rss_query));
		fputc('\n', f);
	}
}
