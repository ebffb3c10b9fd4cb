/* SPDX-License-Identifier: MIT */
/*
 * crosvm_params.h - crosvm's `crosvm device gpu --params JSON`
 * (GpuParameters, protocols.md §3.3) for vshm-gpu.
 *
 * crosvm rejects unknown keys (serde deny_unknown_fields) and so does this
 * parser, naming the key. Keys that describe the virtual display and the
 * shared memory window are applied; renderer tuning keys (egl, gles, glx,
 * surfaceless, vulkan, wsi, caches, ...) are type-checked and ignored,
 * because 2D mode has no renderer; asking for a 3D backend or for a
 * context type fails with an explanation, like --virgl. Depends on libc
 * and json-c only; never prints or exits.
 */
#ifndef VGS_CROSVM_PARAMS_H
#define VGS_CROSVM_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "display.h"

/* Bounds enforced on hostile input. */
#define VGS_CROSVM_MAX_DIM        16384u
#define VGS_CROSVM_MIN_BAR_SIZE   (1ull << 20)
#define VGS_CROSVM_MAX_BAR_SIZE   (1ull << 40)
#define VGS_CROSVM_MAX_JSON_BYTES (64u << 10)

struct vgs_crosvm_display {
	uint32_t width, height; /* mode.windowed (default 1280x1024) */
	uint32_t refresh_rate;  /* Hz (default 60) */
	uint32_t dpi[2];        /* (default 320x320) */
	bool hidden;
};

struct vgs_crosvm_params {
	/* "displays": when num_displays > 0 they define the scanouts. */
	uint32_t num_displays;
	struct vgs_crosvm_display displays[VGS_MAX_SCANOUTS];
	/* "width"/"height": the legacy single-display size (0 = absent). */
	uint32_t width, height;
	uint32_t max_num_displays; /* 0 = absent */
	uint64_t pci_bar_size;     /* host-visible region; 0 = absent */
	bool udmabuf;              /* share scattered guest blobs through udmabuf */
};

/*
 * Parse @json into @out. 0, or -EINVAL with a one-line reason in @err
 * (unknown key, wrong type, value out of range, unsupported backend or
 * context type). -ENOTSUP when built without json-c.
 */
int vgs_crosvm_params_parse(const char *json, struct vgs_crosvm_params *out, char *err,
                            size_t errlen);

#endif
