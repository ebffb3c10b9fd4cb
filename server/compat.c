/* SPDX-License-Identifier: MIT */
/*
 * compat.c - blob window and crosvm options -> device and engine config.
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <vshm/log.h>

int vgs_compat_prepare(struct vgs_options *o, struct vgs_compat *c, char *err, size_t errlen)
{
	long ps = sysconf(_SC_PAGESIZE);
	int r;

	memset(c, 0, sizeof(*c));
	c->host_visible_size = VGS_DEFAULT_HOST_VISIBLE_SIZE;
	c->crosvm_legacy_shmem = o->crosvm_legacy_shmem;
	if (o->crosvm_params) {
		r = vgs_crosvm_params_parse(o->crosvm_params, &c->params, err, errlen);
		if (r < 0)
			return -EINVAL;
		c->have_params = true;
		/* --params is only ever written for crosvm: speak its older convention too. */
		c->crosvm_legacy_shmem = true;
		if (c->params.pci_bar_size)
			c->host_visible_size = c->params.pci_bar_size;
		if (c->params.num_displays && o->mode_mask) {
			snprintf(err, errlen,
			         "--params displays and --mode both set display modes");
			return -EINVAL;
		}
		if (c->params.num_displays)
			o->num_scanouts = c->params.num_displays;
	}
	if (o->host_visible_set)
		c->host_visible_size = o->host_visible_size;
	if (ps > 0 && c->host_visible_size % (uint64_t)ps) {
		snprintf(err, errlen,
		         "the host-visible window (%llu bytes) is not a multiple of "
		         "the %ld-byte page size",
		         (unsigned long long)c->host_visible_size, ps);
		return -EINVAL;
	}
	return 0;
}

void vgs_compat_gpu_config(const struct vgs_compat *c, struct vgs_gpu_config *gc)
{
	const struct vgs_crosvm_params *p = &c->params;

	gc->host_visible_size = c->host_visible_size;
	if (!c->have_params)
		return;
	gc->udmabuf = p->udmabuf;
	if (p->num_displays) {
		gc->num_scanouts = p->num_displays;
		gc->enabled_mask = 0;
		for (uint32_t i = 0; i < p->num_displays; i++) {
			gc->width[i] = p->displays[i].width;
			gc->height[i] = p->displays[i].height;
			if (!p->displays[i].hidden)
				gc->enabled_mask |= 1u << i;
		}
	} else if (p->width || p->height) {
		/* Legacy single display; crosvm's default fills a missing half. */
		gc->width[0] = p->width ? p->width : 1280;
		gc->height[0] = p->height ? p->height : 1024;
	}
}

void vgs_compat_vu_config(const struct vgs_compat *c, struct vshm_vu_config *vc)
{
	if (c->host_visible_size) {
		vc->protocol_features |= VSHM_VU_PF_SHMEM;
		vc->shmem_crosvm_legacy = c->crosvm_legacy_shmem;
		vshm_log(VSHM_LOG_INFO,
		         "host-visible window %llu MiB; shared memory: standard SHMEM (bit 22)%s",
		         (unsigned long long)(c->host_visible_size >> 20),
		         c->crosvm_legacy_shmem ? " and crosvm legacy (bit 31)" : "");
	} else {
		vc->protocol_features &= ~VSHM_VU_PF_SHMEM;
		vc->shmem_crosvm_legacy = false;
		vshm_log(VSHM_LOG_INFO, "no host-visible window: guest blobs only");
	}
}
