// SPDX-License-Identifier: GPL-2.0-only
/*
 * The identity the model presents is the VF's own. It is read once, when the
 * VF is bound and before any VFIO user owns it: the driver enables the
 * controller with a private admin queue (the VF is still in its kernel DMA
 * domain), asks Identify for the controller, the active namespaces and their
 * descriptors, and the queue count, then disables it again.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/iommu.h>
#include <linux/jiffies.h>
#include <linux/nvme.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "emuhba.h"
#include "emuhba_image.h"

#define EMUHBA_IDENT_QDEPTH	2
#define EMUHBA_IDENT_MAX_NS	16
#define EMUHBA_IDENT_CMD_MS	5000
#define EMUHBA_IDC_SUBNQN	768

struct emuhba_ident {
	struct pci_dev *pdev;
	void __iomem *bar;
	u64 cap;
	struct nvme_command *sq;
	struct nvme_completion *cq;
	void *data;
	dma_addr_t sq_dma, cq_dma, data_dma;
	u16 sq_tail, cq_head;
	u8 phase;
	u16 cid;
};

static int emuhba_ident_wait_rdy(struct emuhba_ident *id, bool rdy)
{
	unsigned long deadline = jiffies +
		msecs_to_jiffies((NVME_CAP_TIMEOUT(id->cap) + 1) * 500);
	u32 csts;

	for (;;) {
		csts = readl(id->bar + NVME_REG_CSTS);
		if (csts == ~0U)
			return -ENODEV;
		if (csts & NVME_CSTS_CFS)
			return -EIO;
		if (!!(csts & NVME_CSTS_RDY) == rdy)
			return 0;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(1000, 2000);
	}
}

static int emuhba_ident_disable(struct emuhba_ident *id)
{
	writel(0, id->bar + NVME_REG_CC);
	return emuhba_ident_wait_rdy(id, false);
}

static int emuhba_ident_enable(struct emuhba_ident *id)
{
	u32 aqa = (EMUHBA_IDENT_QDEPTH - 1) | (EMUHBA_IDENT_QDEPTH - 1) << 16;
	int ret;

	ret = emuhba_ident_disable(id);
	if (ret)
		return ret;
	writel(aqa, id->bar + NVME_REG_AQA);
	lo_hi_writeq(id->sq_dma, id->bar + NVME_REG_ASQ);
	lo_hi_writeq(id->cq_dma, id->bar + NVME_REG_ACQ);
	writel(NVME_CC_ENABLE | NVME_CC_CSS_NVM | NVME_CC_IOSQES |
	       NVME_CC_IOCQES, id->bar + NVME_REG_CC);
	id->sq_tail = 0;
	id->cq_head = 0;
	id->phase = 1;
	return emuhba_ident_wait_rdy(id, true);
}

static int emuhba_ident_cmd(struct emuhba_ident *id, struct nvme_command *c,
			    u32 *result)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(EMUHBA_IDENT_CMD_MS);
	u32 stride = 4 << NVME_CAP_STRIDE(id->cap);
	struct nvme_completion *cqe;
	u16 status;

	c->common.command_id = ++id->cid;
	c->common.dptr.prp1 = cpu_to_le64(id->data_dma);
	memcpy(&id->sq[id->sq_tail], c, sizeof(*c));
	id->sq_tail = (id->sq_tail + 1) % EMUHBA_IDENT_QDEPTH;
	writel(id->sq_tail, id->bar + NVME_REG_DBS);

	cqe = &id->cq[id->cq_head];
	while ((le16_to_cpu(READ_ONCE(cqe->status)) & 1) != id->phase) {
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(100, 200);
	}
	dma_rmb();
	status = le16_to_cpu(cqe->status) >> 1;
	if (result)
		*result = le32_to_cpu(cqe->result.u32);
	if (++id->cq_head == EMUHBA_IDENT_QDEPTH) {
		id->cq_head = 0;
		id->phase ^= 1;
	}
	writel(id->cq_head, id->bar + NVME_REG_DBS + stride);
	return status ? -EIO : 0;
}

static int emuhba_ident_identify(struct emuhba_ident *id, u8 cns, u8 csi,
				 u32 nsid)
{
	struct nvme_command c = { };

	c.identify.opcode = nvme_admin_identify;
	c.identify.nsid = cpu_to_le32(nsid);
	c.identify.cns = cns;
	c.identify.csi = csi;
	memset(id->data, 0, SZ_4K);
	return emuhba_ident_cmd(id, &c, NULL);
}

static int emuhba_ident_read(struct emuhba_adapter *a, struct emuhba_ident *id)
{
	const struct nvme_id_ctrl *ctrl = id->data;
	const __le32 *ns_list = id->data;
	struct nvme_command c = { };
	u32 nsids[EMUHBA_IDENT_MAX_NS];
	u16 cntlid, max_sqs, max_cqs;
	u32 nr_q, n = 0, i;
	int ret;

	ret = emuhba_ident_identify(id, NVME_ID_CNS_CTRL, 0, 0);
	if (ret)
		return ret;
	cntlid = le16_to_cpu(ctrl->cntlid);
	ret = emu_nvme_load_identify(a->model, NVME_ID_CNS_CTRL, 0, 0, cntlid,
				     id->data);
	if (ret)
		return ret;
	/*
	 * The NVM command set's own controller page (limits Linux reads at
	 * every reset); optional before NVMe 2.0.
	 */
	if (!emuhba_ident_identify(id, NVME_ID_CNS_CS_CTRL, NVME_CSI_NVM, 0))
		emu_nvme_load_identify(a->model, NVME_ID_CNS_CS_CTRL,
				       NVME_CSI_NVM, 0, cntlid, id->data);

	ret = emuhba_ident_identify(id, NVME_ID_CNS_NS_ACTIVE_LIST, 0, 0);
	if (ret)
		return ret;
	ret = emu_nvme_load_identify(a->model, NVME_ID_CNS_NS_ACTIVE_LIST, 0,
				     0, cntlid, id->data);
	if (ret)
		return ret;
	while (n < EMUHBA_IDENT_MAX_NS && ns_list[n]) {
		nsids[n] = le32_to_cpu(ns_list[n]);
		n++;
	}

	for (i = 0; i < n; i++) {
		ret = emuhba_ident_identify(id, NVME_ID_CNS_NS, 0, nsids[i]);
		if (!ret)
			ret = emu_nvme_load_identify(a->model, NVME_ID_CNS_NS, 0,
						     nsids[i], cntlid, id->data);
		if (ret)
			return ret;
	}
	/*
	 * Optional pages, after every namespace's own page has its slot:
	 * descriptors (before NVMe 1.3 a VF may have none) and the NVM
	 * command set's namespace page.
	 */
	for (i = 0; i < n; i++) {
		if (!emuhba_ident_identify(id, NVME_ID_CNS_NS_DESC_LIST, 0,
					   nsids[i]))
			emu_nvme_load_identify(a->model, NVME_ID_CNS_NS_DESC_LIST,
					       0, nsids[i], cntlid, id->data);
		if (!emuhba_ident_identify(id, NVME_ID_CNS_CS_NS, NVME_CSI_NVM,
					   nsids[i]))
			emu_nvme_load_identify(a->model, NVME_ID_CNS_CS_NS,
					       NVME_CSI_NVM, nsids[i], cntlid,
					       id->data);
	}

	/* Ask for the most; the answer is what the VF has. */
	c.features.opcode = nvme_admin_set_features;
	c.features.fid = cpu_to_le32(NVME_FEAT_NUM_QUEUES);
	c.features.dword11 = cpu_to_le32(0xfffefffe);
	ret = emuhba_ident_cmd(id, &c, &nr_q);
	if (ret)
		return ret;
	max_sqs = (nr_q & 0xffff) + 1;
	max_cqs = (nr_q >> 16) + 1;

	return emu_nvme_set_hw(a->model, id->cap,
			       readl(id->bar + NVME_REG_VS),
			       pci_msix_vec_count(id->pdev) > 0 ?
			       pci_msix_vec_count(id->pdev) : 1,
			       max_sqs, max_cqs);
}

int emuhba_ident_capture(struct emuhba_adapter *a)
{
	struct pci_dev *pdev = a->core.pdev;
	struct device *dev = &pdev->dev;
	struct emuhba_ident id = { .pdev = pdev };
	struct iommu_group *group;
	bool owned;
	int ret;

	/*
	 * The identity is read with the DMA API, which is only sound while the
	 * kernel owns the IOMMU group: a VFIO user holding another device of
	 * the group would have the VF's DMA land in its own address space.
	 */
	group = iommu_group_get(dev);
	owned = group && iommu_group_dma_owner_claimed(group);
	iommu_group_put(group);
	if (owned) {
		pci_err(pdev, "its IOMMU group is in use by a VFIO user: bind the VF before the group's other devices are opened\n");
		return -EBUSY;
	}

	ret = pci_enable_device_mem(pdev);
	if (ret)
		return ret;
	ret = pci_request_mem_regions(pdev, KBUILD_MODNAME);
	if (ret)
		goto out_disable;
	/* The whole BAR: the admin doorbells sit at a stride CAP chooses. */
	id.bar = pci_iomap(pdev, 0, 0);
	if (!id.bar) {
		ret = -ENOMEM;
		goto out_release;
	}
	pci_set_master(pdev);
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		goto out_unmap;

	id.sq = dma_alloc_coherent(dev, SZ_4K, &id.sq_dma, GFP_KERNEL);
	id.cq = dma_alloc_coherent(dev, SZ_4K, &id.cq_dma, GFP_KERNEL);
	id.data = dma_alloc_coherent(dev, SZ_4K, &id.data_dma, GFP_KERNEL);
	if (!id.sq || !id.cq || !id.data) {
		ret = -ENOMEM;
		goto out_free;
	}

	id.cap = lo_hi_readq(id.bar + NVME_REG_CAP);
	if (id.cap == ~0ULL) {
		ret = -ENODEV;
		goto out_free;
	}
	if (NVME_REG_DBS + (8ULL << NVME_CAP_STRIDE(id.cap)) >
	    pci_resource_len(pdev, 0)) {
		pci_err(pdev, "CAP.DSTRD %llu puts the admin doorbells beyond BAR0\n",
			NVME_CAP_STRIDE(id.cap));
		ret = -EINVAL;
		goto out_free;
	}
	ret = emuhba_ident_enable(&id);
	if (!ret)
		ret = emuhba_ident_read(a, &id);
	/* Leave the VF as a new VFIO user expects it: disabled. */
	if (emuhba_ident_disable(&id) && !ret)
		ret = -EIO;

out_free:
	if (id.data)
		dma_free_coherent(dev, SZ_4K, id.data, id.data_dma);
	if (id.cq)
		dma_free_coherent(dev, SZ_4K, id.cq, id.cq_dma);
	if (id.sq)
		dma_free_coherent(dev, SZ_4K, id.sq, id.sq_dma);
out_unmap:
	pci_clear_master(pdev);
	pci_iounmap(pdev, id.bar);
out_release:
	pci_release_mem_regions(pdev);
out_disable:
	pci_disable_device(pdev);
	return ret;
}

/*
 * What a host path to the adapter's namespace shows as well (nvme exposes
 * nguid, eui, nsid and the subsystem's subsysnqn in sysfs), so that the
 * host block device reaching the same namespace can be found: the lowest
 * active namespace, its NGUID and EUI64 as the model reports them
 * (namespace descriptors override the Identify Namespace fields), and the
 * controller's SUBNQN.
 */
void emuhba_ident_info(struct emuhba_adapter *a, struct emuhba_ident_info *id)
{
	static const u8 zero[16];
	const struct emu_nvme_identity *ident;
	struct emu_nvme_limits *lim;
	const struct emu_nvme_ns_limits *ns = NULL;
	unsigned int i;

	memset(id, 0, sizeof(*id));
	lim = kzalloc(sizeof(*lim), GFP_KERNEL);
	mutex_lock(&a->model_lock);
	if (lim)
		emu_nvme_get_limits(a->model, lim);
	ident = &emu_nvme_state(a->model)->id;
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		const struct emu_nvme_idpage *p = &ident->pages[i];

		if (p->valid && p->cns == NVME_ID_CNS_CTRL) {
			memcpy(id->subnqn, p->data + EMUHBA_IDC_SUBNQN,
			       EMUHBA_SUBNQN_LEN - 1);
			break;
		}
	}
	mutex_unlock(&a->model_lock);
	id->subnqn[EMUHBA_SUBNQN_LEN - 1] = '\0';
	/* SUBNQN is NUL-padded ASCII; trailing blanks are not part of it. */
	i = strlen(id->subnqn);
	while (i && id->subnqn[i - 1] == ' ')
		id->subnqn[--i] = '\0';
	if (!lim)
		return;

	for (i = 0; i < lim->nr_ns && i < EMU_NVME_MAX_NS; i++)
		if (lim->ns[i].nsid && (!ns || lim->ns[i].nsid < ns->nsid))
			ns = &lim->ns[i];
	if (ns) {
		id->nsid = ns->nsid;
		memcpy(id->nguid, ns->nguid, sizeof(id->nguid));
		memcpy(id->eui64, ns->eui64, sizeof(id->eui64));
		id->has_nguid = memcmp(id->nguid, zero, sizeof(id->nguid));
		id->has_eui64 = memcmp(id->eui64, zero, sizeof(id->eui64));
	}
	kfree(lim);
}
