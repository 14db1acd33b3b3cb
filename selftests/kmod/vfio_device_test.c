// SPDX-License-Identifier: GPL-2.0-only
/*
 * An emuhba-bound VF seen through the VFIO group/container API exactly as
 * QEMU sees it: identity, regions, interrupts and the migration features;
 * and a function emuhba cannot model (a PF) bound to it, as libvirt's
 * alias lookup would bind it, which must be plain vfio-pci passthrough.
 *
 * Usage: vfio_device_test -f vf      (EMUHBA_VF=<bdf> in the environment)
 *        vfio_device_test -f plain   (EMUHBA_PLAIN=<bdf>)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

/* Whether the running kernel was built with CONFIG_IOMMUFD_DRIVER. */
static bool kernel_has_iova_bitmap(void)
{
	char path[PATH_MAX], line[256];
	struct utsname u;
	bool found = false;
	FILE *f;

	uname(&u);
	snprintf(path, sizeof(path), "/boot/config-%s", u.release);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strcmp(line, "CONFIG_IOMMUFD_DRIVER=y\n"))
			found = true;
	fclose(f);
	return found;
}

FIXTURE(vf) {
	const char *bdf;
	int container;
	int group;
	int device;
	struct vfio_device_info info;
};

/* Container, group and device of the function ENV names, as QEMU opens them. */
static void open_function(struct __test_metadata *_metadata, const char *env,
			  const char **bdf, int *container, int *group,
			  int *device, struct vfio_device_info *info)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	int nr;

	*container = *group = *device = -1;
	*bdf = getenv(env);
	ASSERT_NE(NULL, *bdf) TH_LOG("set %s to the function's address", env);

	*container = open("/dev/vfio/vfio", O_RDWR);
	ASSERT_LE(0, *container) TH_LOG("open /dev/vfio/vfio: %s", strerror(errno));
	ASSERT_EQ(VFIO_API_VERSION, ioctl(*container, VFIO_GET_API_VERSION));
	ASSERT_EQ(1, ioctl(*container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));

	nr = mvmm_iommu_group(*bdf);
	ASSERT_LE(0, nr) TH_LOG("%s has no IOMMU group", *bdf);
	snprintf(path, sizeof(path), "/dev/vfio/%d", nr);
	*group = open(path, O_RDWR);
	ASSERT_LE(0, *group) TH_LOG("open %s: %s", path, strerror(errno));
	ASSERT_EQ(0, ioctl(*group, VFIO_GROUP_GET_STATUS, &status));
	ASSERT_TRUE(status.flags & VFIO_GROUP_FLAGS_VIABLE);
	ASSERT_EQ(0, ioctl(*group, VFIO_GROUP_SET_CONTAINER, container));
	ASSERT_EQ(0, ioctl(*container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	*device = ioctl(*group, VFIO_GROUP_GET_DEVICE_FD, *bdf);
	ASSERT_LE(0, *device) TH_LOG("GET_DEVICE_FD %s: %s", *bdf, strerror(errno));
	info->argsz = sizeof(*info);
	ASSERT_EQ(0, ioctl(*device, VFIO_DEVICE_GET_INFO, info));
}

static void close_function(int container, int group, int device)
{
	if (device >= 0)
		close(device);
	if (group >= 0)
		close(group);
	if (container >= 0)
		close(container);
}

FIXTURE_SETUP(vf)
{
	open_function(_metadata, "EMUHBA_VF", &self->bdf, &self->container,
		      &self->group, &self->device, &self->info);
}

FIXTURE_TEARDOWN(vf)
{
	close_function(self->container, self->group, self->device);
}

static uint64_t region_offset(struct __test_metadata *_metadata, int device,
			      unsigned int index, uint64_t *size, uint32_t *flags)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };

	EXPECT_EQ(0, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri));
	if (size)
		*size = ri.size;
	if (flags)
		*flags = ri.flags;
	return ri.offset;
}

static uint32_t cfg_read(int device, uint64_t cfg_off, unsigned int reg, int len)
{
	uint32_t v = 0;

	if (pread(device, &v, len, cfg_off + reg) != len)
		return UINT32_MAX;
	return v;
}

TEST_F(vf, device_info)
{
	EXPECT_TRUE(self->info.flags & VFIO_DEVICE_FLAGS_PCI);
	EXPECT_TRUE(self->info.flags & VFIO_DEVICE_FLAGS_RESET)
		TH_LOG("a VF with FLR must advertise reset");
	EXPECT_LE(VFIO_PCI_NUM_REGIONS, self->info.num_regions);
	EXPECT_LE(VFIO_PCI_NUM_IRQS, self->info.num_irqs);
}

TEST_F(vf, config_space_ids)
{
	uint64_t off = region_offset(_metadata, self->device,
				     VFIO_PCI_CONFIG_REGION_INDEX, NULL, NULL);
	uint32_t class = cfg_read(self->device, off, PCI_CLASS_REVISION, 4) >> 8;

	EXPECT_EQ(mvmm_attr_ll(self->bdf, "vendor"),
		  cfg_read(self->device, off, PCI_VENDOR_ID, 2));
	EXPECT_EQ(mvmm_attr_ll(self->bdf, "device"),
		  cfg_read(self->device, off, PCI_DEVICE_ID, 2));
	EXPECT_EQ(0x010802, class) TH_LOG("class 0x%06x is not NVMe", class);
	EXPECT_EQ(mvmm_attr_ll(self->bdf, "class"), class);
}

TEST_F(vf, bar0_region)
{
	uint32_t flags = 0, cap_lo = 0, vs = 0;
	uint64_t size = 0, off;
	char path[PATH_MAX];
	unsigned long long start, end;
	FILE *f;

	off = region_offset(_metadata, self->device, VFIO_PCI_BAR0_REGION_INDEX,
			    &size, &flags);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", self->bdf);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	ASSERT_EQ(2, fscanf(f, "%llx %llx", &start, &end));
	fclose(f);
	EXPECT_EQ(end - start + 1, size);
	EXPECT_TRUE(flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(flags & VFIO_REGION_INFO_FLAG_WRITE);
	EXPECT_TRUE(flags & VFIO_REGION_INFO_FLAG_MMAP);

	/* Memory decode must be on for BAR access through the region. */
	ASSERT_EQ(4, pread(self->device, &cap_lo, 4, off + 0x0)) TH_LOG("CAP read");
	ASSERT_EQ(4, pread(self->device, &vs, 4, off + 0x8)) TH_LOG("VS read");
	EXPECT_NE(0, cap_lo & 0xffff) TH_LOG("CAP.MQES is 0");
	EXPECT_LE(0x10000, vs) TH_LOG("VS 0x%x is not NVMe 1.x or later", vs);
}

/* Offset of the MSI-X capability in config space, or 0. */
static unsigned int msix_cap(int device, uint64_t cfg)
{
	unsigned int pos = cfg_read(device, cfg, PCI_CAPABILITY_LIST, 1), n;

	for (n = 0; pos && n < 48; n++) {
		if (cfg_read(device, cfg, pos, 1) == PCI_CAP_ID_MSIX)
			return pos;
		pos = cfg_read(device, cfg, pos + 1, 1);
	}
	return 0;
}

/*
 * What QEMU may map of BAR0: whole pages after the registers page, none of
 * them holding the MSI-X table or PBA (QEMU emulates those; a mapping split
 * at sub-page edges around them breaks type1 dirty tracking), and BAR0 is
 * not MSIX_MAPPABLE.
 */
TEST_F(vf, bar0_mmap_areas)
{
	uint8_t buf[4096] = { 0 };
	struct vfio_region_info *ri = (void *)buf;
	struct vfio_info_cap_header *h;
	struct vfio_region_info_cap_sparse_mmap *sp = NULL;
	uint64_t cfg, tbl_lo, tbl_hi, pba_lo, pba_hi, page = 4096;
	unsigned int cap, i, nvec, hops = 0;
	uint32_t tbl, pba;
	bool msix_mappable = false;
	void *m;

	cfg = region_offset(_metadata, self->device,
			    VFIO_PCI_CONFIG_REGION_INDEX, NULL, NULL);
	ri->argsz = sizeof(buf);
	ri->index = VFIO_PCI_BAR0_REGION_INDEX;
	ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, ri));
	ASSERT_TRUE(ri->flags & VFIO_REGION_INFO_FLAG_CAPS);
	for (i = ri->cap_offset; i && i < sizeof(buf) && hops++ < 16; i = h->next) {
		h = (void *)(buf + i);
		if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP)
			sp = (void *)h;
		if (h->id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE)
			msix_mappable = true;
	}
	ASSERT_NE(NULL, sp);
	EXPECT_FALSE(msix_mappable);

	cap = msix_cap(self->device, cfg);
	ASSERT_NE(0, cap);
	nvec = (cfg_read(self->device, cfg, cap + PCI_MSIX_FLAGS, 2) &
		PCI_MSIX_FLAGS_QSIZE) + 1;
	tbl = cfg_read(self->device, cfg, cap + PCI_MSIX_TABLE, 4);
	pba = cfg_read(self->device, cfg, cap + PCI_MSIX_PBA, 4);
	tbl_lo = (tbl & PCI_MSIX_TABLE_OFFSET) & ~(page - 1);
	tbl_hi = (tbl & PCI_MSIX_TABLE_OFFSET) + nvec * 16;
	pba_lo = (pba & PCI_MSIX_PBA_OFFSET) & ~(page - 1);
	pba_hi = (pba & PCI_MSIX_PBA_OFFSET) + (nvec + 63) / 64 * 8;
	ASSERT_LT(0, sp->nr_areas);
	for (i = 0; i < sp->nr_areas; i++) {
		uint64_t lo = sp->areas[i].offset, hi = lo + sp->areas[i].size;

		EXPECT_LE(page, lo) TH_LOG("area %u maps the registers page", i);
		EXPECT_EQ(0, lo % page);
		EXPECT_EQ(0, hi % page);
		if ((tbl & PCI_MSIX_TABLE_BIR) == 0)
			EXPECT_TRUE(hi <= tbl_lo || lo >= tbl_hi)
				TH_LOG("area %u [%#llx, %#llx) covers the MSI-X table",
				       i, (unsigned long long)lo,
				       (unsigned long long)hi);
		if ((pba & PCI_MSIX_PBA_BIR) == 0)
			EXPECT_TRUE(hi <= pba_lo || lo >= pba_hi)
				TH_LOG("area %u covers the PBA", i);
	}
	/* Nor can the MSI-X table page be mapped by asking directly. */
	if ((tbl & PCI_MSIX_TABLE_BIR) == 0) {
		m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->device, ri->offset + tbl_lo);
		EXPECT_EQ(MAP_FAILED, m);
		if (m != MAP_FAILED)
			munmap(m, page);
	}
}

TEST_F(vf, msix_vectors)
{
	struct vfio_irq_info irq = { .argsz = sizeof(irq),
				     .index = VFIO_PCI_MSIX_IRQ_INDEX };
	uint64_t off = region_offset(_metadata, self->device,
				     VFIO_PCI_CONFIG_REGION_INDEX, NULL, NULL);
	unsigned int pos, table_size = 0, guard = 0;

	ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	/* Walk the capability list for MSI-X to know what to expect. */
	pos = cfg_read(self->device, off, PCI_CAPABILITY_LIST, 1);
	while (pos && guard++ < 48) {
		if (cfg_read(self->device, off, pos, 1) == PCI_CAP_ID_MSIX) {
			table_size = (cfg_read(self->device, off,
					       pos + PCI_MSIX_FLAGS, 2) &
				      PCI_MSIX_FLAGS_QSIZE) + 1;
			break;
		}
		pos = cfg_read(self->device, off, pos + 1, 1);
	}
	ASSERT_NE(0, table_size) TH_LOG("no MSI-X capability");
	EXPECT_EQ(table_size, irq.count);
	EXPECT_TRUE(irq.flags & VFIO_IRQ_INFO_EVENTFD);
}

TEST_F(vf, migration_features)
{
	struct {
		struct vfio_device_feature hdr;
		union {
			struct vfio_device_feature_migration mig;
			struct vfio_device_feature_mig_state state;
		};
	} f;

	memset(&f, 0, sizeof(f));
	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
	ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_FEATURE, &f.hdr))
		TH_LOG("FEATURE_MIGRATION: %s", strerror(errno));
	EXPECT_TRUE(f.mig.flags & VFIO_MIGRATION_STOP_COPY);
	EXPECT_TRUE(f.mig.flags & VFIO_MIGRATION_P2P);
	EXPECT_TRUE(f.mig.flags & VFIO_MIGRATION_PRE_COPY);

	memset(&f, 0, sizeof(f));
	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_FEATURE, &f.hdr));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, f.state.device_state);

	/*
	 * Device DMA logging is advertised exactly when the kernel can report
	 * it (IOMMUFD_DRIVER gives the VFIO core its iova_bitmap); otherwise
	 * QEMU must use the type1 container's dirty tracking.
	 */
	memset(&f, 0, sizeof(f));
	f.hdr.argsz = sizeof(f.hdr);
	f.hdr.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		      VFIO_DEVICE_FEATURE_DMA_LOGGING_START;
	if (kernel_has_iova_bitmap()) {
		EXPECT_EQ(0, ioctl(self->device, VFIO_DEVICE_FEATURE, &f.hdr))
			TH_LOG("DMA logging probe: %s", strerror(errno));
	} else {
		EXPECT_EQ(-1, ioctl(self->device, VFIO_DEVICE_FEATURE, &f.hdr))
			TH_LOG("DMA logging advertised but this kernel cannot report it");
	}
}

TEST_F(vf, dma_map_unmap)
{
	size_t len = 2 << 20;
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.iova = 1 << 30, .size = len,
	};
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap), .iova = 1 << 30, .size = len,
	};

	ASSERT_NE(MAP_FAILED, mem);
	map.vaddr = (uintptr_t)mem;
	EXPECT_EQ(0, ioctl(self->container, VFIO_IOMMU_MAP_DMA, &map))
		TH_LOG("MAP_DMA: %s", strerror(errno));
	EXPECT_EQ(0, ioctl(self->container, VFIO_IOMMU_UNMAP_DMA, &unmap));
	EXPECT_EQ(len, unmap.size);
	munmap(mem, len);
}

TEST_F(vf, device_reset)
{
	EXPECT_EQ(0, ioctl(self->device, VFIO_DEVICE_RESET))
		TH_LOG("VFIO_DEVICE_RESET: %s", strerror(errno));
}

FIXTURE(plain) {
	const char *bdf;
	int container;
	int group;
	int device;
	struct vfio_device_info info;
};

FIXTURE_SETUP(plain)
{
	open_function(_metadata, "EMUHBA_PLAIN", &self->bdf, &self->container,
		      &self->group, &self->device, &self->info);
}

FIXTURE_TEARDOWN(plain)
{
	close_function(self->container, self->group, self->device);
}

/* What QEMU's vfio-pci needs of any function: regions, BAR 0, config space. */
TEST_F(plain, passthrough_works)
{
	uint64_t cfg, bar0, size;
	uint32_t flags, cap_lo;

	EXPECT_TRUE(self->info.flags & VFIO_DEVICE_FLAGS_PCI);
	EXPECT_LE(VFIO_PCI_NUM_REGIONS, self->info.num_regions);
	cfg = region_offset(_metadata, self->device, VFIO_PCI_CONFIG_REGION_INDEX,
			    NULL, NULL);
	EXPECT_EQ(0x010802, cfg_read(self->device, cfg, PCI_CLASS_REVISION, 4) >> 8);
	bar0 = region_offset(_metadata, self->device, VFIO_PCI_BAR0_REGION_INDEX,
			     &size, &flags);
	ASSERT_LE(0x1000, size);
	EXPECT_TRUE(flags & VFIO_REGION_INFO_FLAG_MMAP);
	/* CAP.MQES is at least 1 on any controller (NVMe 2.0, 3.1.4.1). */
	ASSERT_EQ(4, pread(self->device, &cap_lo, 4, bar0));
	EXPECT_NE(0, cap_lo & 0xffff) TH_LOG("CAP reads 0x%x", cap_lo);
	EXPECT_EQ(0, ioctl(self->device, VFIO_DEVICE_RESET))
		TH_LOG("VFIO_DEVICE_RESET: %s", strerror(errno));
}

/* No migration: QEMU must see what it sees on vfio-pci and block it. */
TEST_F(plain, no_migration)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_migration mig;
	} f;

	memset(&f, 0, sizeof(f));
	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
	EXPECT_EQ(-1, ioctl(self->device, VFIO_DEVICE_FEATURE, &f.hdr));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_HARNESS_MAIN
