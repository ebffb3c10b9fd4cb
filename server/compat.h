/* SPDX-License-Identifier: MIT */
/*
 * compat.h - what the blob / shared memory / crosvm options turn into:
 * the host-visible window, which shared memory conventions are offered,
 * and crosvm's --params applied to the device configuration.
 *
 * Choices (docs/compatibility.md):
 *  - the host-visible window defaults to 1 GiB (--host-visible-size,
 *    --params pci-bar-size override it; 0 = no region). crosvm defaults to
 *    8 GiB because its 3D renderers map whole Vulkan heaps there; in 2D
 *    mode the window only holds HOST3D blobs, which are host memory charged
 *    against --max-host-memory (512 MiB by default), so 1 GiB leaves room
 *    for fragmentation while keeping the BAR small enough for guest
 *    firmware with a modest 64-bit MMIO aperture;
 *  - the standard SHMEM bit (22) is offered whenever the window exists;
 *    crosvm's pre-2025-12 bit 31 is offered only on request
 *    (--crosvm-legacy-shmem) or when --params says the VMM is crosvm: it
 *    is not part of the standard and a VMM that does not know it never
 *    acks it.
 */
#ifndef VGS_COMPAT_H
#define VGS_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm/vhost_user.h>

#include "crosvm_params.h"
#include "gpu.h"
#include "options.h"

#define VGS_DEFAULT_HOST_VISIBLE_SIZE (1ull << 30)

struct vgs_compat {
	uint64_t host_visible_size;
	bool crosvm_legacy_shmem;
	bool have_params;
	struct vgs_crosvm_params params;
};

/*
 * Check and combine the options. --params displays also set
 * o->num_scanouts, so everything sized by it (consumers) agrees.
 * 0, or -EINVAL with a one-line message in @err.
 */
int vgs_compat_prepare(struct vgs_options *o, struct vgs_compat *c, char *err, size_t errlen);
/* Apply to the device configuration (after the plain options were applied). */
void vgs_compat_gpu_config(const struct vgs_compat *c, struct vgs_gpu_config *gc);
/* Apply to the engine configuration (after the offered features were set). */
void vgs_compat_vu_config(const struct vgs_compat *c, struct vshm_vu_config *vc);

#endif
