// SPDX-License-Identifier: GPL-2.0-only
/*
 * The miniature VMM (see minivmm.h). Everything goes through the VFIO uAPI
 * exactly as QEMU uses it: registers through the region's read/write (they
 * trap), doorbells through the mmap of the sparse area, interrupts through
 * MSI-X eventfds, DMA through the type1 container.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "minivmm.h"

#define PAGE		4096u
#define REG_CAP		0x00
#define REG_VS		0x08
#define REG_CC		0x14
#define REG_CSTS	0x1c
#define REG_AQA		0x24
#define REG_ASQ		0x28
#define REG_ACQ		0x30
#define CC_EN		1u
#define CC_IOSQES	(6u << 16)
#define CC_IOCQES	(4u << 20)
#define CSTS_RDY	1u
#define CSTS_CFS	2u

#define ADM_DELETE_SQ	0x00
#define ADM_CREATE_SQ	0x01
#define ADM_DELETE_CQ	0x04
#define ADM_CREATE_CQ	0x05
#define ADM_IDENTIFY	0x06
#define ADM_SET_FEAT	0x09
#define ADM_AER		0x0c
#define ADM_DBBUF	0x7c
#define OACS_DBBUF	(1u << 8)
#define IO_WRITE	0x01
#define IO_READ		0x02

#define BLOCK_MAGIC	0x6d766d6du	/* "mvmm" */

/* The per-slot records of struct mvmm_queue serve the admin queue too. */
_Static_assert(MVMM_ADMIN_Q <= MVMM_QDEPTH, "admin queue deeper than the slot records");

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

int mvmm_attr(const char *bdf, const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	if (attr[0] == '/')
		snprintf(path, sizeof(path), "%s", attr);
	else
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

long long mvmm_attr_ll(const char *bdf, const char *attr)
{
	char buf[64];

	if (mvmm_attr(bdf, attr, buf, sizeof(buf)))
		return -1;
	return strtoll(buf, NULL, 0);
}

uint32_t mvmm_reg_read32(struct mvmm *vm, uint32_t off)
{
	uint32_t v = ~0u;

	if (pread(vm->device, &v, 4, vm->bar0_off + off) != 4)
		return ~0u;
	return v;
}

uint64_t mvmm_reg_read64(struct mvmm *vm, uint32_t off)
{
	/* As Linux does on 32-bit-safe paths: low half first. */
	return mvmm_reg_read32(vm, off) |
	       (uint64_t)mvmm_reg_read32(vm, off + 4) << 32;
}

void mvmm_reg_write32(struct mvmm *vm, uint32_t off, uint32_t val)
{
	if (pwrite(vm->device, &val, 4, vm->bar0_off + off) != 4)
		fprintf(stderr, "# register write 0x%x failed: %s\n", off,
			strerror(errno));
}

static void reg_write64(struct mvmm *vm, uint32_t off, uint64_t val)
{
	mvmm_reg_write32(vm, off, (uint32_t)val);
	mvmm_reg_write32(vm, off + 4, val >> 32);
}

/* The "vCPU" dirty log: what the guest itself wrote, as KVM would log. */
static void guest_dirty(struct mvmm *vm, const void *p, size_t len)
{
	size_t first, last, i;

	if (!vm->gdirty || !len)
		return;
	first = ((const uint8_t *)p - vm->mem) / PAGE;
	last = ((const uint8_t *)p - vm->mem + len - 1) / PAGE;
	for (i = first; i <= last; i++)
		vm->gdirty[i / 64] |= 1ull << (i % 64);
}

static uint64_t mem_alloc(struct mvmm *vm, size_t len, void **va)
{
	uint64_t off = vm->mem_used;

	len = (len + PAGE - 1) & ~(size_t)(PAGE - 1);
	if (off + len > vm->mem_size)
		return 0;
	vm->mem_used += len;
	memset(vm->mem + off, 0, len);
	guest_dirty(vm, vm->mem + off, len);
	*va = vm->mem + off;
	return vm->mem_iova + off;
}

int mvmm_iommu_group(const char *bdf)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;
	char *s;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = 0;
	s = strrchr(link, '/');
	return s ? atoi(s + 1) : -1;
}

static int map_doorbells(struct mvmm *vm)
{
	struct vfio_region_info *ri;
	struct vfio_info_cap_header *hdr;
	struct vfio_region_info_cap_sparse_mmap *sp = NULL;
	size_t sz = sizeof(*ri);
	uint64_t off = 0, len = 0;
	void *p;

	ri = calloc(1, sz);
	ri->argsz = sz;
	ri->index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(vm->device, VFIO_DEVICE_GET_REGION_INFO, ri))
		goto fail;
	if (ri->argsz > sz) {
		sz = ri->argsz;
		ri = realloc(ri, sz);
		memset(ri, 0, sz);
		ri->argsz = sz;
		ri->index = VFIO_PCI_BAR0_REGION_INDEX;
		if (ioctl(vm->device, VFIO_DEVICE_GET_REGION_INFO, ri))
			goto fail;
	}
	vm->bar0_off = ri->offset;
	vm->bar0_size = ri->size;
	if (ri->flags & VFIO_REGION_INFO_FLAG_CAPS && ri->cap_offset) {
		hdr = (void *)((uint8_t *)ri + ri->cap_offset);
		for (;;) {
			if (hdr->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP)
				sp = (void *)hdr;
			if (!hdr->next)
				break;
			hdr = (void *)((uint8_t *)ri + hdr->next);
		}
	}
	if (sp) {
		/* emuhba: the registers page is never offered for mmap. */
		if (sp->nr_areas != 1 || sp->areas[0].offset < PAGE) {
			fprintf(stderr, "# BAR0's mmap area covers the registers\n");
			goto fail;
		}
		off = sp->areas[0].offset;
		len = sp->areas[0].size;
	} else if (ri->flags & VFIO_REGION_INFO_FLAG_MMAP) {
		/* Plain vfio-pci: the whole BAR (registers still via pread). */
		off = 0;
		len = ri->size;
	} else {
		fprintf(stderr, "# BAR0 cannot be mapped\n");
		goto fail;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, vm->device,
		 vm->bar0_off + off);
	if (p == MAP_FAILED)
		goto fail;
	/* Doorbells are addressed from BAR0 offset 0x1000. */
	vm->db = (volatile uint32_t *)((uint8_t *)p + (0x1000 - off));
	vm->db_map = p;
	vm->db_map_len = len;
	free(ri);
	return 0;
fail:
	free(ri);
	return -1;
}

static int enable_msix(struct mvmm *vm, int nvec)
{
	struct vfio_irq_info irq = { .argsz = sizeof(irq),
				     .index = VFIO_PCI_MSIX_IRQ_INDEX };
	size_t sz = sizeof(struct vfio_irq_set) + sizeof(int32_t) * nvec;
	struct vfio_irq_set *set;
	int i, ret;

	if (ioctl(vm->device, VFIO_DEVICE_GET_IRQ_INFO, &irq))
		return -errno;
	if ((int)irq.count < nvec)
		nvec = irq.count;
	set = calloc(1, sz);
	set->argsz = sz;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = nvec;
	for (i = 0; i < nvec; i++) {
		if (vm->efd[i] >= 0)
			close(vm->efd[i]);
		vm->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		((int32_t *)set->data)[i] = vm->efd[i];
	}
	ret = ioctl(vm->device, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
	free(set);
	vm->nr_vectors = nvec;
	return ret;
}

/* As a guest's driver does: memory decode and bus mastering on. */
static int enable_bus_master(struct mvmm *vm)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri),
				       .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t cmd;

	if (ioctl(vm->device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	if (pread(vm->device, &cmd, 2, ri.offset + 4) != 2)
		return -EIO;
	cmd |= 0x6;
	if (pwrite(vm->device, &cmd, 2, ri.offset + 4) != 2)
		return -EIO;
	return 0;
}

int mvmm_open(struct mvmm *vm, const char *bdf, size_t mem_size)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	char path[64];
	int i;

	memset(vm, 0, sizeof(*vm));
	for (i = 0; i <= MVMM_MAX_IOQ; i++)
		vm->efd[i] = -1;
	vm->bdf = bdf;
	vm->container = open("/dev/vfio/vfio", O_RDWR);
	if (vm->container < 0)
		return -errno;
	snprintf(path, sizeof(path), "/dev/vfio/%d", mvmm_iommu_group(bdf));
	vm->group = open(path, O_RDWR);
	if (vm->group < 0)
		return -errno;
	if (ioctl(vm->group, VFIO_GROUP_GET_STATUS, &st) ||
	    !(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EBUSY;
	if (ioctl(vm->group, VFIO_GROUP_SET_CONTAINER, &vm->container) ||
	    ioctl(vm->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -errno;
	vm->device = ioctl(vm->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (vm->device < 0)
		return -errno;

	vm->mem_size = mem_size;
	vm->gdirty = calloc((mem_size / PAGE + 63) / 64, 8);
	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		return -ENOMEM;
	/* Guest physical addresses start at 1 MiB, as a guest's RAM would. */
	vm->mem_iova = 1 << 20;
	map.vaddr = (uintptr_t)vm->mem;
	map.iova = vm->mem_iova;
	map.size = mem_size;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	if (ioctl(vm->container, VFIO_IOMMU_MAP_DMA, &map))
		return -errno;
	if (map_doorbells(vm))
		return -ENXIO;
	return enable_bus_master(vm);
}

void mvmm_close(struct mvmm *vm)
{
	int i;

	if (vm->db_map)
		munmap(vm->db_map, vm->db_map_len);
	vm->db_map = NULL;
	if (vm->device > 0)
		close(vm->device);
	if (vm->group > 0)
		close(vm->group);
	if (vm->container > 0)
		close(vm->container);
	for (i = 0; i <= MVMM_MAX_IOQ; i++)
		if (vm->efd[i] >= 0)
			close(vm->efd[i]);
	if (vm->mem && vm->mem != MAP_FAILED)
		munmap(vm->mem, vm->mem_size);
	free(vm->gen);
	vm->gen = NULL;
	free(vm->ok_gen);
	vm->ok_gen = NULL;
	free(vm->gdirty);
	vm->gdirty = NULL;
}

static int wait_csts(struct mvmm *vm, bool rdy)
{
	uint64_t deadline = now_ms() + 500 * (((vm->cap >> 24) & 0xff) + 1);
	uint32_t csts;

	for (;;) {
		csts = mvmm_reg_read32(vm, REG_CSTS);
		if (csts == ~0u || csts & CSTS_CFS)
			return -EIO;
		if (!!(csts & CSTS_RDY) == rdy)
			return 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

int mvmm_nvme_disable(struct mvmm *vm)
{
	mvmm_reg_write32(vm, REG_CC, 0);
	return wait_csts(vm, false);
}

static volatile uint32_t *sq_db(struct mvmm *vm, uint16_t qid)
{
	return vm->db + (2 * qid) * (1u << vm->dstrd);
}

static volatile uint32_t *cq_db(struct mvmm *vm, uint16_t qid)
{
	return vm->db + (2 * qid + 1) * (1u << vm->dstrd);
}

/* Linux's nvme_dbbuf_need_event(). */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/* Ring a doorbell, through the shadow buffer when one is configured. */
static void ring(struct mvmm *vm, uint16_t qid, bool cq, uint16_t value)
{
	uint32_t idx = (2 * qid + cq) * (1u << vm->dstrd);
	uint16_t old;

	if (vm->dbbuf && qid) {
		old = vm->dbs[idx];
		vm->dbs[idx] = value;
		guest_dirty(vm, &vm->dbs[idx], 4);
		__sync_synchronize();
		if (!need_event(vm->eis[idx], value, old))
			return;
	}
	if (vm->db_pwrite) {
		uint32_t v = value;

		if (pwrite(vm->device, &v, 4, vm->bar0_off + 4096 +
			   (uint64_t)idx * 4) != 4)
			vm->errors++;
		return;
	}
	*(cq ? cq_db(vm, qid) : sq_db(vm, qid)) = value;
}

static void submit(struct mvmm *vm, struct mvmm_queue *q, const uint8_t *sqe)
{
	q->slot_cid[q->sq_tail] = get16(sqe + 2);
	q->slot_out[q->sq_tail] = true;
	memcpy(q->sq + (size_t)q->sq_tail * 64, sqe, 64);
	guest_dirty(vm, q->sq + (size_t)q->sq_tail * 64, 64);
	q->sq_tail = (q->sq_tail + 1) % q->depth;
	__sync_synchronize();
	ring(vm, q->qid, false, q->sq_tail);
}

/* Next completion of q, or NULL. */
static uint8_t *cq_peek(struct mvmm_queue *q)
{
	uint8_t *cqe = q->cq + (size_t)q->cq_head * 16;

	if ((get16(cqe + 14) & 1) != q->phase)
		return NULL;
	__sync_synchronize();
	return cqe;
}

/*
 * The completion entry at q's CQ head names q (SQ Identifier) and says
 * where the controller's fetching stood when it posted it (SQ Head
 * Pointer, NVMe base spec 2.0 sections 3.3.1 and 4.2.4): past the
 * command's own slot, as the controller fetched it, never behind the last
 * SQHD (it fetches in order), never past the tail the guest rang. Counted
 * as "backs" from the tail: the entry's SQHD may lag the tail no more than
 * the last SQHD did, nor more than the slot after the command's. With the
 * newest command the one completing, one value only is right. 0, or
 * -EPROTO for a wrong entry (recorded in vm, the first few printed).
 */
static int cqe_check(struct mvmm *vm, struct mvmm_queue *q)
{
	const uint8_t *cqe = q->cq + (size_t)q->cq_head * 16;
	uint16_t sqhd = get16(cqe + 8), sqid = get16(cqe + 10);
	uint16_t cid = get16(cqe + 12), d = q->depth, tail = q->sq_tail;
	uint16_t most = (uint16_t)(tail - q->sq_head + d) % d, back;
	int i, slot = -1;
	char why[sizeof(vm->cqe_bad_why)];

	/* The oldest command out with that CID: the ring from the tail on. */
	for (i = 0; i < d; i++) {
		uint16_t s = (tail + i) % d;

		if (q->slot_out[s] && q->slot_cid[s] == cid) {
			slot = s;
			break;
		}
	}
	if (slot >= 0) {
		back = (uint16_t)(tail - (slot + 1) + d) % d;
		if (back < most)
			most = back;
		q->slot_out[slot] = false;
	}
	vm->cqe_checked++;
	if (!most)
		vm->cqe_exact++;
	back = (uint16_t)(tail - sqhd + d) % d;
	if (sqid == q->qid && sqhd < d && back <= most) {
		q->sq_head = sqhd;
		return 0;
	}
	snprintf(why, sizeof(why),
		 "queue %u: completion of CID %u (SQ slot %d, status 0x%x) has SQID %u, SQHD %u; want SQID %u, SQHD from %u to tail %u (last SQHD %u)",
		 q->qid, cid, slot, get16(cqe + 14) >> 1, sqid, sqhd, q->qid,
		 (uint16_t)(tail - most + d) % d, tail, q->sq_head);
	if (!vm->cqe_bad++)
		memcpy(vm->cqe_bad_why, why, sizeof(why));
	if (vm->cqe_bad <= 5)
		fprintf(stderr, "# %s: %s\n", vm->bdf, why);
	return -EPROTO;
}

/* Consume the completion at q's CQ head: 0, or -EPROTO (cqe_check()). */
static int cq_pop(struct mvmm *vm, struct mvmm_queue *q)
{
	int ret = cqe_check(vm, q);

	if (++q->cq_head == q->depth) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	ring(vm, q->qid, true, q->cq_head);
	return ret;
}

/* Wait for the queue's interrupt (or poll when it has none). */
static int wait_irq(struct mvmm_queue *q, int timeout_ms)
{
	struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
	uint64_t cnt;

	if (q->efd < 0) {
		usleep(1000);
		return 0;
	}
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	if (read(q->efd, &cnt, sizeof(cnt)) != sizeof(cnt))
		return -EIO;
	return 0;
}

/* Wait for any I/O queue's interrupt. */
static int wait_any(struct mvmm *vm, int timeout_ms)
{
	struct pollfd pfd[MVMM_MAX_IOQ];
	uint64_t cnt;
	int i, n = 0;

	for (i = 0; i < vm->nr_ioq; i++) {
		if (vm->ioq[i].efd < 0)
			continue;
		pfd[n].fd = vm->ioq[i].efd;
		pfd[n].events = POLLIN;
		n++;
	}
	if (!n || poll(pfd, n, timeout_ms) <= 0)
		return -ETIMEDOUT;
	for (i = 0; i < n; i++)
		if (pfd[i].revents & POLLIN &&
		    read(pfd[i].fd, &cnt, sizeof(cnt)) != sizeof(cnt))
			return -EIO;
	return 0;
}

int mvmm_admin(struct mvmm *vm, uint8_t *sqe, uint32_t *result)
{
	struct mvmm_queue *q = &vm->admin;
	uint64_t deadline = now_ms() + 10000;
	uint16_t cid = q->next_cid++ & 0x7fff;
	uint8_t *cqe;
	uint16_t status;
	int bad;

	/* The AER's CID must never be reused by another admin command. */
	if (cid == vm->aer_cid && vm->aer_cid)
		cid = q->next_cid++ & 0x7fff;
	put16(sqe + 2, cid);
	submit(vm, q, sqe);
	for (;;) {
		while ((cqe = cq_peek(q))) {
			uint16_t c = get16(cqe + 12);

			status = get16(cqe + 14) >> 1;
			if (c == cid && result)
				*result = get32(cqe);
			bad = cq_pop(vm, q);
			if (c == cid)
				return bad ? bad : status;
			/* An AER completion: a real driver would re-arm it. */
		}
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		wait_irq(q, 100);
	}
}

static int identify(struct mvmm *vm, uint8_t cns, uint32_t nsid, uint64_t iova)
{
	uint8_t sqe[64] = { ADM_IDENTIFY };

	put32(sqe + 4, nsid);
	put64(sqe + 24, iova);
	put32(sqe + 40, cns);
	return mvmm_admin(vm, sqe, NULL);
}

/*
 * Identify as an interrupt-driven driver sees it: the completion is looked
 * at only once the admin vector's interrupt has arrived, then the data is
 * read. offset places the buffer inside a page so that PRP2 carries the
 * rest, as for a buffer that is not page aligned.
 */
int mvmm_identify(struct mvmm *vm, uint8_t cns, uint32_t nsid,
		  uint8_t *out, unsigned int offset)
{
	struct mvmm_queue *q = &vm->admin;
	uint8_t sqe[64] = { ADM_IDENTIFY };
	struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
	uint64_t deadline = now_ms() + 10000, cnt;
	uint16_t cid, status;
	uint8_t *cqe, *buf;
	void *va;

	if (q->efd < 0 || offset >= PAGE)
		return -EINVAL;
	if (!vm->id_iova) {
		vm->id_iova = mem_alloc(vm, 2 * PAGE, &va);
		if (!vm->id_iova)
			return -ENOMEM;
	}
	/* Guest memory moves with a migration; its IOVA does not. */
	buf = vm->mem + (vm->id_iova - vm->mem_iova);
	/* Interrupts of earlier commands must not be taken for this one. */
	while (poll(&pfd, 1, 0) == 1)
		if (read(q->efd, &cnt, sizeof(cnt)) != sizeof(cnt))
			return -EIO;
	memset(buf, 0xa5, 2 * PAGE);
	guest_dirty(vm, buf, 2 * PAGE);
	cid = q->next_cid++ & 0x7fff;
	if (cid == vm->aer_cid && vm->aer_cid)
		cid = q->next_cid++ & 0x7fff;
	put16(sqe + 2, cid);
	put32(sqe + 4, nsid);
	put64(sqe + 24, vm->id_iova + offset);
	put64(sqe + 32, vm->id_iova + PAGE);
	put32(sqe + 40, cns);
	submit(vm, q, sqe);
	for (;;) {
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		if (wait_irq(q, 1000))
			continue;
		while ((cqe = cq_peek(q))) {
			uint16_t c = get16(cqe + 12);
			int bad;

			status = get16(cqe + 14) >> 1;
			bad = cq_pop(vm, q);
			if (c == cid) {
				memcpy(out, buf + offset, PAGE);
				return bad ? bad : status;
			}
		}
	}
}

static int create_queues(struct mvmm *vm, int idx, int vector)
{
	struct mvmm_queue *q = &vm->ioq[idx];
	uint8_t sqe[64];
	void *va = NULL;
	int ret;

	memset(q, 0, sizeof(*q));
	q->qid = idx + 1;
	q->depth = MVMM_QDEPTH;
	q->phase = 1;
	q->vector = vector;
	q->efd = vector < vm->nr_vectors ? vm->efd[vector] : -1;
	q->cq_iova = mem_alloc(vm, q->depth * 16, &va);
	q->cq = va;
	q->sq_iova = mem_alloc(vm, q->depth * 64, &va);
	q->sq = va;
	if (!q->cq_iova || !q->sq_iova)
		return -ENOMEM;

	memset(sqe, 0, sizeof(sqe));
	sqe[0] = ADM_CREATE_CQ;
	put64(sqe + 24, q->cq_iova);
	put32(sqe + 40, (uint32_t)(q->depth - 1) << 16 | q->qid);
	put32(sqe + 44, (uint32_t)vector << 16 | 0x3);	/* IEN | PC */
	ret = mvmm_admin(vm, sqe, NULL);
	if (ret)
		return ret > 0 ? -EIO : ret;

	memset(sqe, 0, sizeof(sqe));
	sqe[0] = ADM_CREATE_SQ;
	put64(sqe + 24, q->sq_iova);
	put32(sqe + 40, (uint32_t)(q->depth - 1) << 16 | q->qid);
	put32(sqe + 44, (uint32_t)q->qid << 16 | 0x1);	/* CQID | PC */
	ret = mvmm_admin(vm, sqe, NULL);
	return ret > 0 ? -EIO : ret;
}

#define INIT_FAIL(step, err) do { \
	fprintf(stderr, "# nvme init: %s failed (%d)\n", step, (int)(err)); \
	return (err) > 0 ? -EIO : (err); \
} while (0)

const char *mvmm_doorbells_name(const struct mvmm *vm)
{
	return vm->dbbuf ? "shadow" : "mmio";
}

int mvmm_nvme_init(struct mvmm *vm, int nr_ioq, enum mvmm_doorbells db)
{
	uint8_t sqe[64];
	uint32_t result = 0;
	uint8_t *idp;
	void *va = NULL;
	uint64_t idp_iova;
	int i, ret, flbas;

	vm->cap = mvmm_reg_read64(vm, REG_CAP);
	if (vm->cap == ~0ull)
		return -ENODEV;
	vm->dstrd = (vm->cap >> 32) & 0xf;
	ret = vm->no_disable_first ? 0 : mvmm_nvme_disable(vm);
	vm->no_disable_first = false;
	if (ret)
		INIT_FAIL("disable", ret);
	ret = enable_msix(vm, nr_ioq + 1);
	if (ret)
		INIT_FAIL("MSI-X", ret);

	/* A (re-)initialisation starts every queue afresh, as a driver does. */
	memset(&vm->admin, 0, sizeof(vm->admin));
	vm->nr_ioq = 0;
	vm->dbbuf = false;
	vm->dbs_iova = vm->eis_iova = 0;
	vm->dbs = vm->eis = NULL;
	vm->no_dbbuf_why[0] = 0;
	vm->aer_cid = 0;
	vm->admin.qid = 0;
	vm->admin.depth = MVMM_ADMIN_Q;
	vm->admin.phase = 1;
	vm->admin.efd = vm->efd[0];
	vm->admin.next_cid = 1;
	vm->admin.sq_iova = mem_alloc(vm, MVMM_ADMIN_Q * 64, &va);
	vm->admin.sq = va;
	vm->admin.cq_iova = mem_alloc(vm, MVMM_ADMIN_Q * 16, &va);
	vm->admin.cq = va;
	mvmm_reg_write32(vm, REG_AQA, (MVMM_ADMIN_Q - 1) << 16 | (MVMM_ADMIN_Q - 1));
	reg_write64(vm, REG_ASQ, vm->admin.sq_iova);
	reg_write64(vm, REG_ACQ, vm->admin.cq_iova);
	mvmm_reg_write32(vm, REG_CC, CC_EN | CC_IOSQES | CC_IOCQES);
	ret = wait_csts(vm, true);
	if (ret)
		INIT_FAIL("enable", ret);

	idp_iova = mem_alloc(vm, PAGE, &va);
	idp = va;
	ret = identify(vm, 1, 0, idp_iova);
	if (ret)
		INIT_FAIL("identify controller", ret);
	memcpy(vm->sn, idp + 4, 20);
	memcpy(vm->mn, idp + 24, 40);
	vm->cntlid = get16(idp + 78);
	vm->oacs = get16(idp + 256);
	if (!(vm->oacs & OACS_DBBUF))
		snprintf(vm->no_dbbuf_why, sizeof(vm->no_dbbuf_why),
			 "%s has no shadow doorbells: Identify Controller OACS 0x%x, bit 8 (Doorbell Buffer Config) clear",
			 vm->bdf, vm->oacs);
	if (db == MVMM_DB_SHADOW && !(vm->oacs & OACS_DBBUF))
		return -EOPNOTSUPP;
	vm->mdts_bytes = idp[77] ? (PAGE << idp[77]) > 65535 ? 65535 :
			 (PAGE << idp[77]) : 65535;
	ret = identify(vm, 2, 0, idp_iova);
	if (ret)
		INIT_FAIL("identify ns list", ret);
	vm->nsid = get32(idp);
	if (!vm->nsid || identify(vm, 0, vm->nsid, idp_iova))
		return -ENODEV;
	vm->nsze = get64(idp);
	flbas = idp[26] & 0xf;
	vm->lba_shift = idp[128 + 4 * flbas + 2];

	memset(sqe, 0, sizeof(sqe));
	sqe[0] = ADM_SET_FEAT;
	put32(sqe + 40, 0x07);
	put32(sqe + 44, (uint32_t)(nr_ioq - 1) << 16 | (nr_ioq - 1));
	ret = mvmm_admin(vm, sqe, &result);
	if (ret)
		INIT_FAIL("number of queues", ret);
	if ((int)(result & 0xffff) + 1 < nr_ioq)
		nr_ioq = (result & 0xffff) + 1;

	if (db == MVMM_DB_SHADOW || (db == MVMM_DB_LINUX && vm->oacs & OACS_DBBUF)) {
		uint64_t dbs_iova, eis_iova;
		void *dbs = NULL, *eis = NULL;

		dbs_iova = mem_alloc(vm, PAGE, &dbs);
		eis_iova = mem_alloc(vm, PAGE, &eis);
		if (!dbs_iova || !eis_iova)
			INIT_FAIL("doorbell buffer memory", -ENOMEM);
		memset(sqe, 0, sizeof(sqe));
		sqe[0] = ADM_DBBUF;
		put64(sqe + 24, dbs_iova);
		put64(sqe + 32, eis_iova);
		ret = mvmm_admin(vm, sqe, NULL);
		if (ret > 0) {
			/* Linux warns and goes on with MMIO doorbells. */
			snprintf(vm->no_dbbuf_why, sizeof(vm->no_dbbuf_why),
				 "%s refused Doorbell Buffer Config (status 0x%x) though OACS 0x%x has bit 8",
				 vm->bdf, ret, vm->oacs);
			fprintf(stderr, "# nvme init: %s\n", vm->no_dbbuf_why);
			if (db == MVMM_DB_SHADOW)
				return -EOPNOTSUPP;
		} else if (ret) {
			INIT_FAIL("doorbell buffer config", ret);
		} else {
			vm->dbs_iova = dbs_iova;
			vm->dbs = dbs;
			vm->eis_iova = eis_iova;
			vm->eis = eis;
			vm->dbbuf = true;
		}
	}

	if (db == MVMM_DB_LINUX && !vm->dbbuf) {
		static bool said;

		/* Once per process: the tests then run on MMIO doorbells. */
		if (!said)
			fprintf(stderr, "# %s; the guest rings MMIO doorbells\n",
				vm->no_dbbuf_why);
		said = true;
	}

	for (i = 0; i < nr_ioq; i++) {
		ret = create_queues(vm, i, vm->nr_vectors > 1 ?
				    1 + i % (vm->nr_vectors - 1) : 0);
		if (ret)
			INIT_FAIL("create I/O queues", ret);
	}
	vm->nr_ioq = nr_ioq;

	/* Async event configuration and one AER, as Linux keeps outstanding. */
	memset(sqe, 0, sizeof(sqe));
	sqe[0] = ADM_SET_FEAT;
	put32(sqe + 40, 0x0b);
	put32(sqe + 44, 0x100);
	ret = mvmm_admin(vm, sqe, NULL);
	if (ret)
		INIT_FAIL("async event config", ret);
	memset(sqe, 0, sizeof(sqe));
	sqe[0] = ADM_AER;
	vm->aer_cid = vm->admin.next_cid++ & 0x7fff;
	put16(sqe + 2, vm->aer_cid);
	submit(vm, &vm->admin, sqe);

	vm->data_iova = mem_alloc(vm, (size_t)MVMM_MAX_IOQ * MVMM_QDEPTH * PAGE, &va);
	vm->data = va;
	return vm->data_iova ? 0 : -ENOMEM;
}

static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;
	int k;

	while (n--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = c >> 1 ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static uint8_t *slot_buf(struct mvmm *vm, int qi, uint16_t cid)
{
	return vm->data + ((size_t)qi * MVMM_QDEPTH + cid) * PAGE;
}

static uint64_t slot_iova(struct mvmm *vm, int qi, uint16_t cid)
{
	return vm->data_iova + ((size_t)qi * MVMM_QDEPTH + cid) * PAGE;
}

/* A block that says which LBA and generation it is, and checks itself. */
static void fill_block(uint8_t *b, size_t len, uint64_t lba, uint32_t gen)
{
	size_t i;

	put32(b, BLOCK_MAGIC);
	put64(b + 4, lba);
	put32(b + 12, gen);
	for (i = 20; i < len; i++)
		b[i] = (uint8_t)(lba * 31 + gen * 7 + i);
	put32(b + 16, crc32(b + 20, len - 20));
}

/*
 * The generation a block read from lba holds, or 0 with why set when it
 * is no intact block of that LBA.
 */
static uint32_t block_gen(const uint8_t *b, size_t len, uint64_t lba,
			  const char **why)
{
	*why = NULL;
	if (get32(b) != BLOCK_MAGIC)
		*why = "no block header";
	else if (get64(b + 4) != lba)
		*why = "another LBA's block";
	else if (get32(b + 16) != crc32(b + 20, len - 20))
		*why = "a block whose CRC does not match";
	else if (!get32(b + 12))
		*why = "generation 0";
	return *why ? 0 : get32(b + 12);
}

/*
 * Check a read of lba (index from lba_base) that completed with status
 * into b. An LBA never written may hold anything. Otherwise it must hold
 * the last write's generation when that write succeeded; when it failed
 * or was aborted by a reset (ok_gen behind gen), any generation from the
 * last successful write's on, or, before any succeeded, anything.
 * During a read-back (vm->rb) the result is counted there, and a failed
 * read is a difference unless the LBA never took a write successfully.
 */
static void check_read(struct mvmm *vm, uint64_t lba, uint16_t status,
		       const uint8_t *b)
{
	struct mvmm_readback *rb = vm->rb;
	uint32_t want = vm->gen[lba], ok = vm->ok_gen[lba], found = 0;
	bool uncertain = ok != want, pass;
	const char *why = "read failed";

	if (!want)
		return;
	if (rb)
		rb->lbas++;
	if (status) {
		/* Counted in vm->errors; a read-back also counts it here. */
		if (!rb)
			return;
		pass = uncertain && !ok && rb->allow_uncertain;
		if (pass) {
			rb->uncertain++;
			rb->unreadable++;
			return;
		}
	} else {
		found = block_gen(b, (size_t)1 << vm->lba_shift,
				  vm->lba_base + lba, &why);
		if (found == want && !uncertain) {
			if (rb)
				rb->exact++;
			return;
		}
		pass = uncertain && (!ok || (found >= ok && found <= want)) &&
		       (!rb || rb->allow_uncertain);
		if (pass) {
			if (rb)
				rb->uncertain++;
			return;
		}
		if (found == want)
			why = "the last write did not succeed";
	}
	if (rb)
		rb->bad++;
	else
		vm->mismatches++;
	if ((rb ? rb->bad : vm->mismatches) <= 10)
		fprintf(stderr,
			"# %s%s: LBA %llu: want generation %u (last successful write %u), found %u (%s; status 0x%x)\n",
			vm->bdf, rb ? " read-back" : "",
			(unsigned long long)(vm->lba_base + lba), want, ok,
			found, why ? why : "another generation", status);
}

/* busy[] holds lba + 1 with bit 63 set for a read. */
#define BUSY_READ	(1ull << 63)

static void complete_one(struct mvmm *vm, int qi, const uint8_t *cqe)
{
	struct mvmm_queue *q = &vm->ioq[qi];
	uint16_t cid = get16(cqe + 12);
	uint16_t status = get16(cqe + 14) >> 1;
	uint64_t lba, lat;
	bool read;
	int c;

	if (cid >= MVMM_QDEPTH || !q->busy[cid]) {
		vm->duplicates++;
		return;
	}
	lba = (q->busy[cid] & ~BUSY_READ) - 1;
	lat = now_us() - q->sub_us[cid];
	read = !!(q->busy[cid] & BUSY_READ);
	if (lat > vm->max_lat_us[read])
		vm->max_lat_us[read] = lat;
	for (c = 0; c < MVMM_QDEPTH; c++) {
		if (q->busy[c] && q->seq[c] < q->seq[cid]) {
			vm->reordered++;
			break;
		}
	}
	if (status)
		vm->errors++;
	if (read)
		check_read(vm, lba, status, slot_buf(vm, qi, cid));
	else if (!status)
		/* No other command of lba was out: gen[] is this write's. */
		vm->ok_gen[lba] = vm->gen[lba];
	q->busy[cid] = 0;
	q->nr_busy--;
	vm->completions++;
}

/* The reference generations, for nr_lbas (at most 4096) blocks. */
static int ensure_gen(struct mvmm *vm)
{
	uint64_t max;

	if (vm->gen)
		return 0;
	if (vm->lba_base >= vm->nsze)
		return -EINVAL;
	max = vm->nsze - vm->lba_base < 4096 ? vm->nsze - vm->lba_base : 4096;
	if (!vm->nr_lbas || vm->nr_lbas > max)
		vm->nr_lbas = max;
	vm->gen = calloc(vm->nr_lbas, sizeof(*vm->gen));
	vm->ok_gen = calloc(vm->nr_lbas, sizeof(*vm->ok_gen));
	return vm->gen && vm->ok_gen ? 0 : -ENOMEM;
}

static int reap(struct mvmm *vm, int qi)
{
	struct mvmm_queue *q = &vm->ioq[qi];
	uint8_t *cqe;
	int n = 0;

	while ((cqe = cq_peek(q))) {
		if (get16(cqe + 10) != q->qid)
			vm->errors++;
		complete_one(vm, qi, cqe);
		cq_pop(vm, q);
		n++;
	}
	return n;
}

static bool lba_busy(struct mvmm *vm, uint64_t lba)
{
	int qi, c;

	for (qi = 0; qi < vm->nr_ioq; qi++)
		for (c = 0; c < MVMM_QDEPTH; c++)
			if (vm->ioq[qi].busy[c] &&
			    ((vm->ioq[qi].busy[c] & ~BUSY_READ) - 1) == lba)
				return true;
	return false;
}

static void io_submit(struct mvmm *vm, int qi, uint64_t lba, bool read)
{
	struct mvmm_queue *q = &vm->ioq[qi];
	size_t bs = (size_t)1 << vm->lba_shift;
	uint8_t sqe[64] = { 0 };
	uint16_t cid;

	for (cid = 0; q->busy[cid]; cid++)
		;
	if (!read)
		fill_block(slot_buf(vm, qi, cid), bs, vm->lba_base + lba,
			   ++vm->gen[lba]);
	else
		memset(slot_buf(vm, qi, cid), 0, bs);
	guest_dirty(vm, slot_buf(vm, qi, cid), bs);
	q->busy[cid] = (lba + 1) | (read ? BUSY_READ : 0);
	q->nr_busy++;
	q->seq[cid] = vm->next_seq++;
	q->sub_us[cid] = now_us();
	vm->submitted++;
	sqe[0] = read ? IO_READ : IO_WRITE;
	put16(sqe + 2, cid);
	put32(sqe + 4, vm->nsid);
	put64(sqe + 24, slot_iova(vm, qi, cid));
	put64(sqe + 40, vm->lba_base + lba);
	put32(sqe + 48, 0);	/* one block */
	submit(vm, q, sqe);
}

/* Reap every I/O queue until nothing is outstanding, or the deadline. */
static int drain(struct mvmm *vm, uint64_t deadline)
{
	for (;;) {
		uint32_t busy = 0;
		int qi;

		for (qi = 0; qi < vm->nr_ioq; qi++) {
			reap(vm, qi);
			busy += vm->ioq[qi].nr_busy;
		}
		if (!busy)
			return vm->cqe_bad ? -EPROTO : 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		wait_any(vm, 10);
	}
}

int mvmm_read_back(struct mvmm *vm, bool allow_uncertain,
		   struct mvmm_readback *rb)
{
	uint64_t lba = 0, t0 = now_ms(), deadline = t0 + 120000;
	int qi, ret, qd = MVMM_QDEPTH / 2, open = 0;

	memset(rb, 0, sizeof(*rb));
	rb->allow_uncertain = allow_uncertain;
	if (!vm->gen)
		return 0;	/* nothing written; the caller sees lbas 0 */
	ret = drain(vm, now_ms() + 60000);
	if (ret && ret != -EPROTO)
		return ret;
	for (qi = 0; qi < vm->nr_ioq; qi++)
		open += !vm->ioq[qi].hold;
	if (!open)
		return -EINVAL;
	vm->rb = rb;
	for (;;) {
		bool idle = true;
		uint32_t busy = 0;

		for (qi = 0; qi < vm->nr_ioq; qi++) {
			struct mvmm_queue *q = &vm->ioq[qi];

			if (reap(vm, qi))
				idle = false;
			while (!q->hold && q->nr_busy < (uint32_t)qd &&
			       lba < vm->nr_lbas) {
				if (vm->gen[lba]) {
					io_submit(vm, qi, lba, true);
					idle = false;
				}
				lba++;
			}
			busy += q->nr_busy;
		}
		if (lba >= vm->nr_lbas && !busy)
			break;
		if (now_ms() > deadline) {
			vm->rb = NULL;
			return -ETIMEDOUT;
		}
		if (idle)
			wait_any(vm, 10);
	}
	vm->rb = NULL;
	rb->ms = now_ms() - t0;
	if (rb->bad)
		return -EIO;
	return vm->cqe_bad ? -EPROTO : 0;
}

int mvmm_io_run(struct mvmm *vm, uint64_t nr_ios, int qd)
{
	return mvmm_io_run_while(vm, nr_ios, qd, NULL, NULL);
}

int mvmm_io_run_while(struct mvmm *vm, uint64_t nr_ios, int qd,
		      bool (*more)(void *arg), void *arg)
{
	uint64_t submitted = 0, deadline;
	static unsigned int seed = 12345;
	int qi, idle;

	if (!vm->nr_ioq)
		return -EINVAL;
	if (qd > MVMM_QDEPTH - 1)
		qd = MVMM_QDEPTH - 1;
	if (ensure_gen(vm))
		return -ENOMEM;
	deadline = now_ms() + 120000;
	while (submitted < nr_ios || (more && more(arg))) {
		idle = 1;
		for (qi = 0; qi < vm->nr_ioq; qi++) {
			struct mvmm_queue *q = &vm->ioq[qi];

			if (reap(vm, qi))
				idle = 0;
			while (!q->hold && q->nr_busy < (uint32_t)qd &&
			       (submitted < nr_ios || (more && more(arg)))) {
				uint64_t lba = rand_r(&seed) % vm->nr_lbas;

				if (lba_busy(vm, lba))
					break;
				/* Alternate: write a block, later read it back. */
				io_submit(vm, qi, lba, vm->gen[lba] &&
					  (rand_r(&seed) & 1));
				submitted++;
				idle = 0;
			}
		}
		if (submitted >= nr_ios && !(more && more(arg)))
			break;
		if (idle && wait_any(vm, 10) && now_ms() > deadline)
			return -ETIMEDOUT;
	}
	return drain(vm, deadline);
}

struct mvmm_child {
	pid_t pid;
	int status;
	bool done;
};

static bool mvmm_child_running(void *arg)
{
	struct mvmm_child *c = arg;

	if (!c->done && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->done = true;
	return !c->done;
}

int mvmm_exec_during_io(struct mvmm *vm, int qd, bool quiet,
			char *const argv[])
{
	struct mvmm_child c = { 0 };
	int ret;

	c.pid = fork();
	if (c.pid < 0)
		return -errno;
	if (!c.pid) {
		if (quiet && !freopen("/dev/null", "w", stdout))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	ret = mvmm_io_run_while(vm, 0, qd, mvmm_child_running, &c);
	if (ret) {
		kill(c.pid, SIGKILL);
		waitpid(c.pid, NULL, 0);
		return ret;
	}
	return WIFEXITED(c.status) ? WEXITSTATUS(c.status) : 128;
}

/* Fill every I/O queue up to qd commands and return without waiting. */
int mvmm_io_fill(struct mvmm *vm, int qd)
{
	static unsigned int seed = 777;
	int qi, n = 0;

	for (qi = 0; qi < vm->nr_ioq; qi++) {
		struct mvmm_queue *q = &vm->ioq[qi];

		reap(vm, qi);
		while (!q->hold && q->nr_busy < (uint32_t)qd) {
			uint64_t lba = rand_r(&seed) % vm->nr_lbas;

			if (lba_busy(vm, lba))
				break;
			io_submit(vm, qi, lba, vm->gen[lba] && (rand_r(&seed) & 1));
			n++;
		}
	}
	return n;
}

int mvmm_io_submit(struct mvmm *vm, int qi, uint64_t lba, bool read)
{
	if (qi < 0 || qi >= vm->nr_ioq)
		return -EINVAL;
	if (ensure_gen(vm))
		return -ENOMEM;
	if (lba >= vm->nr_lbas)
		return -EINVAL;
	/* One slot stays free: a full SQ has tail + 1 == head. */
	if (vm->ioq[qi].nr_busy >= (uint32_t)vm->ioq[qi].depth - 1 ||
	    lba_busy(vm, lba))
		return -EBUSY;
	io_submit(vm, qi, lba, read);
	return 0;
}

int mvmm_io_reap(struct mvmm *vm)
{
	int qi, n = 0;

	for (qi = 0; qi < vm->nr_ioq; qi++)
		n += reap(vm, qi);
	return n;
}

int mvmm_io_drain(struct mvmm *vm, int timeout_ms)
{
	return drain(vm, now_ms() + timeout_ms);
}

void mvmm_io_forget(struct mvmm *vm)
{
	if (!vm->gen)
		return;
	memset(vm->gen, 0, vm->nr_lbas * sizeof(*vm->gen));
	memset(vm->ok_gen, 0, vm->nr_lbas * sizeof(*vm->ok_gen));
}

uint32_t mvmm_io_outstanding(const struct mvmm *vm)
{
	uint32_t n = 0;
	int qi;

	for (qi = 0; qi < vm->nr_ioq; qi++)
		n += vm->ioq[qi].nr_busy;
	return n;
}

void mvmm_io_dump(const struct mvmm *vm, FILE *f)
{
	uint64_t now = now_us();
	int qi, c, n;

	for (qi = 0; qi < vm->nr_ioq; qi++) {
		const struct mvmm_queue *q = &vm->ioq[qi];

		fprintf(f, "# queue %u: sq_tail %u cq_head %u phase %u%s, %u out",
			q->qid, q->sq_tail, q->cq_head, q->phase,
			q->hold ? " (held)" : "", q->nr_busy);
		for (c = 0, n = 0; c < MVMM_QDEPTH; c++) {
			if (!q->busy[c])
				continue;
			fprintf(f, "%s cid %d %s lba %llu %llu ms", n++ ? "," : ":", c,
				q->busy[c] & BUSY_READ ? "read" : "write",
				(unsigned long long)(q->busy[c] & ~BUSY_READ) - 1,
				(unsigned long long)(now - q->sub_us[c]) / 1000);
		}
		fprintf(f, "\n");
	}
}

static int set_mig_state(int device, uint32_t state, int *data_fd)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_mig_state st;
	} f = { 0 };

	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	f.st.device_state = state;
	f.st.data_fd = -1;
	if (ioctl(device, VFIO_DEVICE_FEATURE, &f.hdr))
		return -errno;
	if (data_fd)
		*data_fd = f.st.data_fd;
	else if (f.st.data_fd >= 0)
		close(f.st.data_fd);
	return 0;
}

/* Read a saving session until its (temporary) end; append to *buf. */
int mvmm_read_stream(int fd, uint8_t **buf, size_t *len)
{
	uint8_t chunk[4096], *nb;
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == 0 || (n < 0 && errno == ENOMSG))
			return 0;
		if (n < 0)
			return -errno;
		nb = realloc(*buf, *len + n);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		memcpy(*buf + *len, chunk, n);
		*len += n;
	}
}

/* Point every guest-memory pointer of vm at a copy of its memory. */
static void rebase(struct mvmm *vm, uint8_t *mem)
{
	ptrdiff_t d = mem - vm->mem;
	int i;

	vm->admin.sq += d;
	vm->admin.cq += d;
	for (i = 0; i < vm->nr_ioq; i++) {
		vm->ioq[i].sq += d;
		vm->ioq[i].cq += d;
	}
	if (vm->dbs) {
		vm->dbs = (uint32_t *)((uint8_t *)vm->dbs + d);
		vm->eis = (uint32_t *)((uint8_t *)vm->eis + d);
	}
	vm->data += d;
	vm->mem = mem;
}

static void stop_tracking(int container)
{
	struct vfio_iommu_type1_dirty_bitmap db = {
		.argsz = sizeof(db),
		.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
	};

	ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &db);
}

/*
 * Add the pages the source container's dirty log reports to the pages
 * still to send (a QEMU "sync"); returns how many it reported.
 */
static long sync_dirty(struct mvmm *vm, uint64_t *to_send)
{
	size_t pages = vm->mem_size / PAGE, i;
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get range;
	} req = { 0 };
	uint64_t *bitmap;
	long n = 0;

	bitmap = calloc((pages + 63) / 64, 8);
	if (!bitmap)
		return -ENOMEM;
	req.db.argsz = sizeof(req);
	req.db.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	req.range.iova = vm->mem_iova;
	req.range.size = vm->mem_size;
	req.range.bitmap.pgsize = PAGE;
	req.range.bitmap.size = (pages + 63) / 64 * 8;
	req.range.bitmap.data = (__u64 *)bitmap;
	if (ioctl(vm->container, VFIO_IOMMU_DIRTY_PAGES, &req)) {
		free(bitmap);
		return -errno;
	}
	for (i = 0; i < (pages + 63) / 64; i++) {
		n += __builtin_popcountll(bitmap[i]);
		to_send[i] |= bitmap[i] | vm->gdirty[i];
		vm->gdirty[i] = 0;
	}
	free(bitmap);
	return n;
}

/* Send (copy) the pages marked in to_send and clear them. */
static void send_pages(struct mvmm *vm, uint8_t *dst, uint64_t *to_send)
{
	size_t pages = vm->mem_size / PAGE, i;

	for (i = 0; i < pages; i++) {
		if (to_send[i / 64] & (1ull << (i % 64))) {
			memcpy(dst + i * PAGE, vm->mem + i * PAGE, PAGE);
			to_send[i / 64] &= ~(1ull << (i % 64));
		}
	}
}

static int restore_msix(struct mvmm *vm, int device, int *efd)
{
	size_t sz = sizeof(struct vfio_irq_set) + sizeof(int32_t) * vm->nr_vectors;
	struct vfio_irq_set *set = calloc(1, sz);
	int i, ret;

	if (!set)
		return -ENOMEM;
	for (i = 0; i < vm->nr_vectors; i++)
		efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	set->argsz = sz;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->count = vm->nr_vectors;
	memcpy(set->data, efd, sizeof(int32_t) * vm->nr_vectors);
	ret = ioctl(device, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
	free(set);
	return ret;
}

/* The guest now takes its interrupts from the destination's eventfds. */
static void switch_eventfds(struct mvmm *vm, int *efd)
{
	int i, j;

	for (i = 0; i < vm->nr_vectors; i++) {
		if (vm->admin.efd == vm->efd[i])
			vm->admin.efd = efd[i];
		for (j = 0; j < vm->nr_ioq; j++)
			if (vm->ioq[j].efd == vm->efd[i])
				vm->ioq[j].efd = efd[i];
	}
	for (i = 0; i < vm->nr_vectors; i++) {
		close(vm->efd[i]);
		vm->efd[i] = efd[i];
		efd[i] = -1;
	}
}

int mvmm_set_mig_state(struct mvmm *vm, uint32_t state, int *data_fd)
{
	return set_mig_state(vm->device, state, data_fd);
}

/* A migration arc made by another thread while the guest runs. */
struct mvmm_arc {
	int device;
	uint32_t state;
	int data_fd;
	int ret;
	bool done;
};

static void *arc_thread(void *arg)
{
	struct mvmm_arc *a = arg;

	a->ret = set_mig_state(a->device, a->state, &a->data_fd);
	__atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool arc_running(void *arg)
{
	return !__atomic_load_n(&((struct mvmm_arc *)arg)->done,
				__ATOMIC_ACQUIRE);
}

/* The arc, with the guest submitting on every queue until it is made. */
static int set_mig_state_during_io(struct mvmm *vm, uint32_t state,
				   int *data_fd)
{
	struct mvmm_arc a = { .device = vm->device, .state = state,
			      .data_fd = -1 };
	pthread_t t;
	int ret;

	if (pthread_create(&t, NULL, arc_thread, &a))
		return -EAGAIN;
	ret = mvmm_io_run_while(vm, 0, vm->io_during_switch, arc_running, &a);
	pthread_join(t, NULL);
	*data_fd = a.data_fd;
	return a.ret ? a.ret : ret;
}

int mvmm_migrate(struct mvmm *vm, const char *dst_bdf, struct mvmm_mig_stats *st)
{
	uint64_t t0 = now_ms(), t_stop, *to_send = NULL;
	uint8_t *stream = NULL;
	int sfd = -1, rfd = -1, ret;
	size_t len = 0, i, sent = 0;
	long n;
	struct mvmm dst;
	ssize_t w;

	memset(st, 0, sizeof(*st));
	/* The destination "host": its own container, VF and guest memory. */
	ret = mvmm_open(&dst, dst_bdf, vm->mem_size);
	if (ret)
		goto out_dst;

	/* As QEMU: dirty tracking first, then the device's pre-copy. */
	{
		struct vfio_iommu_type1_dirty_bitmap db = {
			.argsz = sizeof(db),
			.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
		};

		if (ioctl(vm->container, VFIO_IOMMU_DIRTY_PAGES, &db)) {
			ret = -errno;
			goto out_dst;
		}
	}
	to_send = calloc((vm->mem_size / PAGE + 63) / 64, 8);
	if (!to_send) {
		ret = -ENOMEM;
		goto out_track;
	}
	/*
	 * QEMU syncs once before the device leaves RUNNING, and its first
	 * pass sends all of RAM, but only after that arc.
	 */
	memset(to_send, 0xff, (vm->mem_size / PAGE + 63) / 64 * 8);
	n = sync_dirty(vm, to_send);
	if (n < 0) {
		ret = n;
		goto out_track;
	}
	st->sync0_pages = n;
	if (vm->io_during_switch)
		ret = set_mig_state_during_io(vm, VFIO_DEVICE_STATE_PRE_COPY,
					      &sfd);
	else
		ret = set_mig_state(vm->device, VFIO_DEVICE_STATE_PRE_COPY,
				    &sfd);
	if (!ret)
		ret = mvmm_read_stream(sfd, &stream, &len);
	if (ret)
		goto out_track;
	st->precopy_bytes = len;
	if (vm->precopy_to_dest) {
		/*
		 * As QEMU: the destination resumes from the start and gets
		 * the pre-copy data while the guest still runs, so it can
		 * refuse an image it cannot honour before anything stops.
		 */
		ret = set_mig_state(dst.device, VFIO_DEVICE_STATE_RESUMING,
				    &rfd);
		if (ret)
			goto out_track;
		w = write(rfd, stream, len);
		if (w != (ssize_t)len) {
			ret = w < 0 ? -errno : -EIO;
			st->refused_in_precopy = true;
			goto out_track;
		}
		sent = len;
	}
	if (vm->in_precopy) {
		ret = vm->in_precopy(vm);
		if (ret)
			goto out_track;
	}
	/* The bulk pass, then an iteration. */
	send_pages(vm, dst.mem, to_send);
	n = sync_dirty(vm, to_send);
	if (n < 0) {
		ret = n;
		goto out_track;
	}
	st->dirty_pages = n;
	send_pages(vm, dst.mem, to_send);
	/* The iteration asks the device too, and reads what it has. */
	{
		struct vfio_precopy_info info = { .argsz = sizeof(info) };
		size_t before = len;

		if (ioctl(sfd, VFIO_MIG_GET_PRECOPY_INFO, &info)) {
			ret = -errno;
			goto out_track;
		}
		st->iter_initial_bytes = info.initial_bytes;
		st->iter_dirty_bytes = info.dirty_bytes;
		ret = mvmm_read_stream(sfd, &stream, &len);
		if (ret)
			goto out_track;
		st->iter_bytes = len - before;
	}
	if (vm->precopy_to_dest && len > sent) {
		w = write(rfd, stream + sent, len - sent);
		if (w != (ssize_t)(len - sent)) {
			ret = w < 0 ? -errno : -EIO;
			st->refused_in_precopy = true;
			goto out_track;
		}
		sent = len;
	}

	t_stop = now_ms();
	/*
	 * MMIO doorbells are the device's state: what the guest rang just
	 * before its vCPUs stopped must reach the destination through it.
	 */
	if (vm->fill_at_stop && !vm->dbbuf)
		st->pending_at_stop = mvmm_io_fill(vm, vm->fill_at_stop);
	ret = set_mig_state(vm->device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL);
	if (!ret)
		ret = set_mig_state(vm->device, VFIO_DEVICE_STATE_STOP_COPY, NULL);
	if (!ret)
		ret = mvmm_read_stream(sfd, &stream, &len);
	if (ret)
		goto out_track;
	/*
	 * Shadow doorbells live in guest memory: submissions after the stop
	 * reach the destination with it.
	 */
	if (vm->fill_at_stop && vm->dbbuf)
		st->pending_at_stop = mvmm_io_fill(vm, vm->fill_at_stop);
	n = sync_dirty(vm, to_send);
	if (n < 0) {
		ret = n;
		goto out_track;
	}
	st->dirty_pages += n;
	send_pages(vm, dst.mem, to_send);
	st->state_bytes = len;
	/*
	 * Everything the device wrote must have been in the log: the
	 * destination's memory is now identical to the source's.
	 */
	st->stale_pages = 0;
	for (i = 0; i < vm->mem_size / PAGE; i++)
		if (memcmp(dst.mem + i * PAGE, vm->mem + i * PAGE, PAGE))
			st->stale_pages++;

	if (vm->tamper)
		vm->tamper(stream, &len);
	if (rfd < 0)
		ret = set_mig_state(dst.device, VFIO_DEVICE_STATE_RESUMING, &rfd);
	if (ret)
		goto out_track;
	w = write(rfd, stream + sent, len - sent);
	if (w != (ssize_t)(len - sent)) {
		ret = w < 0 ? -errno : -EIO;
		goto out_track;
	}
	/* MSI-X is restored while resuming. */
	ret = restore_msix(vm, dst.device, dst.efd);
	if (!ret && vm->resume_stop)
		ret = vm->resume_stop(vm, &dst);
	else if (!ret)
		ret = set_mig_state(dst.device, VFIO_DEVICE_STATE_STOP, NULL);
	if (!ret)
		ret = set_mig_state(dst.device, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (ret)
		goto out_track;
	st->downtime_ms = now_ms() - t_stop;
	st->total_ms = now_ms() - t0;

	/* The source "QEMU" exits; the guest lives on at the destination. */
	set_mig_state(vm->device, VFIO_DEVICE_STATE_STOP, NULL);
	close(sfd);
	close(rfd);
	munmap(vm->db_map, vm->db_map_len);
	close(vm->device);
	close(vm->group);
	close(vm->container);
	{
		uint8_t *old = vm->mem;

		rebase(vm, dst.mem);
		munmap(old, vm->mem_size);
	}
	vm->device = dst.device;
	vm->group = dst.group;
	vm->container = dst.container;
	vm->db = dst.db;
	vm->db_map = dst.db_map;
	vm->db_map_len = dst.db_map_len;
	vm->bdf = dst_bdf;
	switch_eventfds(vm, dst.efd);
	free(dst.gdirty);
	free(stream);
	free(to_send);
	return 0;

out_track:
	stop_tracking(vm->container);
	/* The source goes on, as QEMU's failed migration leaves it. */
	if (set_mig_state(vm->device, VFIO_DEVICE_STATE_RUNNING, NULL))
		fprintf(stderr, "# source did not return to RUNNING\n");
out_dst:
	if (sfd >= 0)
		close(sfd);
	if (rfd >= 0)
		close(rfd);
	free(stream);
	free(to_send);
	dst.gen = NULL;
	mvmm_close(&dst);
	return ret;
}

/* Submit reads on queue qi up to qd outstanding, each of an LBA not busy. */
static void bench_fill(struct mvmm *vm, int qi, int qd, unsigned int *seed)
{
	struct mvmm_queue *q = &vm->ioq[qi];
	uint64_t lba;

	while (q->nr_busy < (uint32_t)qd) {
		do
			lba = rand_r(seed) % vm->nr_lbas;
		while (lba_busy(vm, lba));
		io_submit(vm, qi, lba, true);
	}
}

/*
 * Interrupt-driven: sleep in poll() on the queues' MSI-X eventfds and
 * handle a vector when it fires, as a guest's interrupt handler does
 * (clear it, reap its CQ to empty, submit the next commands). The device
 * writes a completion before it signals, so a completion whose interrupt
 * was cleared here is found by the reap that follows. A wait that ends
 * without any vector while a CQ holds a completion is a stall.
 */
static int bench_irq_loop(struct mvmm *vm, int qd, uint64_t end,
			  unsigned int *seed, struct mvmm_bench *b)
{
	struct pollfd pfd[MVMM_MAX_IOQ];
	uint64_t cnt, now;
	int qi, n;

	for (qi = 0; qi < vm->nr_ioq; qi++) {
		if (vm->ioq[qi].efd < 0)
			return -ENOTSUP;
		pfd[qi].fd = vm->ioq[qi].efd;
		pfd[qi].events = POLLIN;
		bench_fill(vm, qi, qd, seed);
	}
	while ((now = now_ms()) < end) {
		n = poll(pfd, vm->nr_ioq, end - now < 1000 ? end - now : 1000);
		if (n < 0)
			return -errno;
		if (!n && now_ms() < end) {
			for (qi = 0; qi < vm->nr_ioq; qi++) {
				if (reap(vm, qi))
					b->stalls++;
				bench_fill(vm, qi, qd, seed);
			}
		}
		if (!n)
			continue;
		b->wakeups++;
		for (qi = 0; qi < vm->nr_ioq; qi++) {
			if (!(pfd[qi].revents & POLLIN))
				continue;
			if (read(pfd[qi].fd, &cnt, sizeof(cnt)) != sizeof(cnt))
				return -EIO;
			b->irqs++;
			reap(vm, qi);
			bench_fill(vm, qi, qd, seed);
		}
	}
	return 0;
}

/* Busy-polling: every queue reaped and refilled in a loop. */
static void bench_poll_loop(struct mvmm *vm, int qd, uint64_t end,
			    unsigned int *seed)
{
	int qi;

	while (now_ms() < end) {
		for (qi = 0; qi < vm->nr_ioq; qi++) {
			reap(vm, qi);
			bench_fill(vm, qi, qd, seed);
		}
	}
}

/* Random 4 KiB-aligned single-block reads at queue depth qd for ms. */
int mvmm_bench_reads(struct mvmm *vm, int qd, unsigned int ms,
		     struct mvmm_bench *b)
{
	uint64_t end = now_ms() + ms, start_done = vm->completions;
	static unsigned int seed = 4242;
	int ret = 0;

	b->ios = 0;
	b->wakeups = 0;
	b->irqs = 0;
	b->stalls = 0;
	if (ensure_gen(vm))
		return -ENOMEM;
	if (qd > MVMM_QDEPTH - 1)
		qd = MVMM_QDEPTH - 1;
	if ((uint64_t)qd * vm->nr_ioq >= vm->nr_lbas)
		return -EINVAL;
	if (b->irq)
		ret = bench_irq_loop(vm, qd, end, &seed, b);
	else
		bench_poll_loop(vm, qd, end, &seed);
	ret = drain(vm, now_ms() + 30000) ?: ret;
	b->ios = vm->completions - start_done;
	if (ret)
		return ret;
	return vm->errors || vm->mismatches ? -EIO : 0;
}

uint64_t mvmm_mem_alloc(struct mvmm *vm, size_t len, void **va)
{
	return mem_alloc(vm, len, va);
}

int mvmm_io_cmd(struct mvmm *vm, int qi, uint8_t *sqe, int timeout_ms)
{
	struct mvmm_queue *q = &vm->ioq[qi];
	uint64_t deadline = now_ms() + timeout_ms;
	uint16_t cid = 0x7000 | (q->next_cid++ & 0xfff);
	uint8_t *cqe;

	put16(sqe + 2, cid);
	submit(vm, q, sqe);
	for (;;) {
		while ((cqe = cq_peek(q))) {
			uint16_t c = get16(cqe + 12);
			int status = get16(cqe + 14) >> 1;
			int bad = cq_pop(vm, q);

			if (c == cid)
				return bad ? bad : status;
			vm->duplicates++;
		}
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		wait_irq(q, 100);
	}
}

int mvmm_flr(struct mvmm *vm)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri),
				       .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint8_t pos = 0, id = 0;
	uint16_t devctl;
	uint32_t devcap;
	int guard;

	if (ioctl(vm->device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	if (pread(vm->device, &pos, 1, ri.offset + 0x34) != 1)
		return -EIO;
	/* The PCI Express capability holds Initiate Function Level Reset. */
	for (guard = 0; pos && guard < 48; guard++) {
		if (pread(vm->device, &id, 1, ri.offset + pos) != 1)
			return -EIO;
		if (id == 0x10)
			break;
		if (pread(vm->device, &pos, 1, ri.offset + pos + 1) != 1)
			return -EIO;
	}
	if (id != 0x10)
		return -ENODEV;
	if (pread(vm->device, &devcap, 4, ri.offset + pos + 4) != 4 ||
	    pread(vm->device, &devctl, 2, ri.offset + pos + 8) != 2)
		return -EIO;
	if (!(devcap & (1u << 28)))
		return -EOPNOTSUPP;
	devctl |= 1u << 15;
	if (pwrite(vm->device, &devctl, 2, ri.offset + pos + 8) != 2)
		return -errno;
	/* The spec gives a function 100 ms to come back from FLR. */
	usleep(100 * 1000);
	return 0;
}

int mvmm_admin_submit(struct mvmm *vm, uint8_t *sqe)
{
	uint16_t cid = vm->admin.next_cid++ & 0x7fff;

	if (cid == vm->aer_cid && vm->aer_cid)
		cid = vm->admin.next_cid++ & 0x7fff;
	put16(sqe + 2, cid);
	submit(vm, &vm->admin, sqe);
	return cid;
}

uint32_t mvmm_get_mig_state(struct mvmm *vm)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_mig_state st;
	} f = { 0 };

	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_GET |
		      VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	if (ioctl(vm->device, VFIO_DEVICE_FEATURE, &f.hdr))
		return ~0u;
	return f.st.device_state;
}

int mvmm_emul_threads(void)
{
	struct dirent *d;
	char path[300], comm[32];
	DIR *dir = opendir("/proc");
	FILE *f;
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "emuhba/", 7))
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}
