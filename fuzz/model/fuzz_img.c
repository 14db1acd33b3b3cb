// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the state image decoder and compatibility check with
 * hostile input. A decoded image must export again and decode to the same
 * state.
 */
#include <stdlib.h>
#include <string.h>
#include "fuzz_host.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 out[1 << 17];
	static struct emu_nvme_state first;
	struct fh *fh = fh_get();
	struct emu_nvme_limits lim;
	char err[128];
	int n;

	fh_reset(fh);
	emu_nvme_get_limits(fh->ctrl, &lim);
	emu_img_check_compat(data, size, &lim, err, sizeof(err));
	if (strlen(err) >= sizeof(err))
		abort();
	if (emu_img_import(fh->ctrl, data, size, err, sizeof(err)))
		return 0;
	memcpy(&first, emu_nvme_state(fh->ctrl), sizeof(first));
	n = emu_img_export(fh->ctrl, out, sizeof(out), 0);
	if (n <= 0)
		abort();
	if (emu_img_import(fh->ctrl, out, (size_t)n, err, sizeof(err)))
		abort();
	/* Timestamp bookkeeping is host time, not state. */
	first.feat.ts_set_ns = emu_nvme_state(fh->ctrl)->feat.ts_set_ns;
	first.feat.ts_value = emu_nvme_state(fh->ctrl)->feat.ts_value;
	if (memcmp(&first, emu_nvme_state(fh->ctrl), sizeof(first)))
		abort();
	/* And the controller keeps working on whatever was loaded. */
	emu_nvme_poll(fh->ctrl, 64);
	fh_backend(fh, 64);
	emu_nvme_poll(fh->ctrl, 64);
	return 0;
}
