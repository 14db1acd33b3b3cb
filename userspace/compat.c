// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig dev compat SRC DST: can adapter DST take the guest of adapter SRC?
 * The source's stable state image (image-get, the bytes a migration sends
 * first) is handed to the destination (compat-check), which judges it with
 * the check it runs on every migration image and answers field by field.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/emuhba.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "hbamig.h"
#include "compat.h"

#define COMPAT_MAX_FIELDS	128
#define COMPAT_VAL_LEN		64
#define COMPAT_NAME_LEN		(EMUHBA_COMPAT_NAME_MAX_LEN + 1)

struct compat_field {
	char name[COMPAT_NAME_LEN];
	u32 nsid;
	char src[COMPAT_VAL_LEN];
	char dst[COMPAT_VAL_LEN];
	bool ok;
};

struct compat_reply {
	bool got;		/* a reply of the expected command arrived */
	u8 cmd;
	u8 *image;
	size_t image_len;
	bool has_compatible;
	bool compatible;
	u32 n;
	struct compat_field f[COMPAT_MAX_FIELDS];
};

/* A string attribute must hold its NUL within its length. */
static int compat_str(const struct nlattr *a, char *buf, size_t size)
{
	int len = nla_len(a);
	const char *d = nla_data(a);
	const char *nul = len > 0 ? memchr(d, 0, len) : NULL;

	if (!nul || (size_t)(nul - d) + 1 > size)
		return -EBADMSG;
	memcpy(buf, d, nul - d + 1);
	return 0;
}

static int compat_field(const struct nlattr *nest, struct compat_field *f)
{
	const struct nlattr *a;
	bool name = false, src = false, dst = false, ok = false;
	int rem, err = 0;

	memset(f, 0, sizeof(*f));
	nla_for_each_nested(a, nest, rem) {
		switch (nla_type(a)) {
		case EMUHBA_A_COMPAT_FIELD_NAME:
			err = compat_str(a, f->name, sizeof(f->name));
			name = true;
			break;
		case EMUHBA_A_COMPAT_FIELD_NSID:
			if (nla_len(a) != sizeof(u32))
				return -EBADMSG;
			f->nsid = nla_get_u32((struct nlattr *)a);
			break;
		case EMUHBA_A_COMPAT_FIELD_SRC:
			err = compat_str(a, f->src, sizeof(f->src));
			src = true;
			break;
		case EMUHBA_A_COMPAT_FIELD_DST:
			err = compat_str(a, f->dst, sizeof(f->dst));
			dst = true;
			break;
		case EMUHBA_A_COMPAT_FIELD_OK:
			if (nla_len(a) != sizeof(u8))
				return -EBADMSG;
			f->ok = nla_get_u8((struct nlattr *)a);
			ok = true;
			break;
		}
		if (err)
			return err;
	}
	return name && src && dst && ok ? 0 : -EBADMSG;
}

/* Replies of image-get and compat-check, undecoded by parse.c. */
static int compat_raw_cb(const void *nlh, void *arg)
{
	const struct nlmsghdr *h = nlh;
	struct compat_reply *r = arg;
	const struct genlmsghdr *gh;
	const struct nlattr *a;
	int rem, err = 0;

	if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
		return -EBADMSG;
	gh = nlmsg_data((struct nlmsghdr *)h);
	if (gh->cmd != r->cmd)
		return 0;
	r->got = true;
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0),
			  genlmsg_attrlen(gh, 0), rem) {
		switch (nla_type(a)) {
		case EMUHBA_A_ADAPTER_IMAGE:
			if (r->image || nla_len(a) <= 0)
				return -EBADMSG;
			r->image = malloc(nla_len(a));
			if (!r->image)
				return -ENOMEM;
			memcpy(r->image, nla_data(a), nla_len(a));
			r->image_len = nla_len(a);
			break;
		case EMUHBA_A_ADAPTER_COMPATIBLE:
			if (nla_len(a) != sizeof(u8))
				return -EBADMSG;
			r->compatible = nla_get_u8((struct nlattr *)a);
			r->has_compatible = true;
			break;
		case EMUHBA_A_ADAPTER_COMPAT_FIELD:
			if (r->n == COMPAT_MAX_FIELDS)
				return -EBADMSG;
			err = compat_field(a, &r->f[r->n++]);
			break;
		}
		if (err)
			return err;
	}
	return 0;
}

static int compat_talk(struct hba_genl *g, u8 cmd, const char *bdf,
		       const struct compat_reply *img, struct compat_reply *r,
		       struct hba_nlerr *err)
{
	struct nl_msg *msg;

	r->cmd = cmd;
	msg = hba_genl_msg(g, cmd, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf) ||
	    (img && nla_put(msg, EMUHBA_A_ADAPTER_IMAGE, img->image_len,
			    img->image))) {
		nlmsg_free(msg);
		memset(err, 0, sizeof(*err));
		err->error = ENOMEM;
		return -ENOMEM;
	}
	return hba_talk(g->sk, msg, 0, NULL, r, g->family, compat_raw_cb,
			err);
}

static void compat_print(const char *src, const char *dst,
			 const struct compat_reply *r, const char *why)
{
	u32 i;

	if (hba_out.json) {
		out_obj_start(NULL);
		out_str("src", src);
		out_str("dst", dst);
		out_bool("compatible", r->compatible);
		if (why[0])
			out_str("refused", why);
		else
			out_null("refused");
		out_arr_start("fields");
		for (i = 0; i < r->n; i++) {
			const struct compat_field *f = &r->f[i];

			out_obj_start(NULL);
			out_str("name", f->name);
			if (f->nsid)
				out_u64("nsid", f->nsid);
			else
				out_null("nsid");
			out_str("src", f->src);
			out_str("dst", f->dst);
			out_bool("ok", f->ok);
			out_obj_end();
		}
		out_arr_end();
		out_obj_end();
		out_eol();
		return;
	}
	printf("%s -> %s: %s\n", src, dst,
	       r->compatible ? "compatible" : "incompatible");
	printf("  %-22s %-5s %-34s %-34s %s\n", "field", "nsid", "source",
	       "destination", "verdict");
	for (i = 0; i < r->n; i++) {
		const struct compat_field *f = &r->f[i];
		char ns[12] = "-";

		if (f->nsid)
			snprintf(ns, sizeof(ns), "%u", f->nsid);
		printf("  %-22s %-5s %-34s %-34s %s\n", f->name, ns, f->src,
		       f->dst, f->ok ? "ok" : "refused");
	}
	if (why[0])
		printf("  refused: %s\n", why);
}

int compat_check(const char *src_bdf, const char *dst_bdf, bool print)
{
	struct compat_reply *img, *v;
	struct hba_nlerr err;
	struct hba_genl g;
	const char *why;
	char what[64];
	int ret;

	if (!valid_bdf(src_bdf) || !valid_bdf(dst_bdf))
		return usage_error("dev compat: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
				   valid_bdf(src_bdf) ? dst_bdf : src_bdf);
	img = calloc(1, sizeof(*img));
	v = calloc(1, sizeof(*v));
	if (!img || !v) {
		free(img);
		free(v);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	ret = hba_genl_open(&g);
	if (ret)
		goto out_free;

	snprintf(what, sizeof(what), "dev compat: source %s", src_bdf);
	if (compat_talk(&g, EMUHBA_CMD_IMAGE_GET, src_bdf, NULL, img, &err)) {
		ret = hba_report_nlerr(what, &err);
		goto out;
	}
	if (!img->got || !img->image) {
		ret = fail(HBAMIG_EXIT_FAIL,
			   "dev compat: %s: the kernel sent no image", src_bdf);
		goto out;
	}
	snprintf(what, sizeof(what), "dev compat: destination %s", dst_bdf);
	if (compat_talk(&g, EMUHBA_CMD_COMPAT_CHECK, dst_bdf, img, v, &err)) {
		ret = hba_report_nlerr(what, &err);
		goto out;
	}
	if (!v->got || !v->has_compatible) {
		ret = fail(HBAMIG_EXIT_FAIL,
			   "dev compat: %s: the kernel sent no verdict",
			   dst_bdf);
		goto out;
	}
	/*
	 * On a refusal the ACK's message ("refused: FIELD: why") names the
	 * first refusing field.
	 */
	why = err.msg;
	if (!strncmp(why, "refused: ", 9))
		why += 9;
	if (print)
		compat_print(src_bdf, dst_bdf, v, v->compatible ? "" : why);
	ret = v->compatible ? HBAMIG_EXIT_OK : HBAMIG_EXIT_FAIL;
out:
	hba_genl_close(&g);
out_free:
	free(img->image);
	free(img);
	free(v);
	return ret;
}
