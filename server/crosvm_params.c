/* SPDX-License-Identifier: MIT */
/*
 * crosvm_params.c - crosvm's GpuParameters JSON (`--params`), see the header.
 *
 * Written from the key list in protocols.md §3.3 (kebab-case names, the
 * types and defaults crosvm documents); no crosvm code is used.
 */
#include "crosvm_params.h"
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef VSHM_HAVE_JSONC
#include <json-c/json.h>
#endif

#ifndef VSHM_HAVE_JSONC

int vgs_crosvm_params_parse(const char *json, struct vgs_crosvm_params *out, char *err,
                            size_t errlen)
{
	(void)json;
	memset(out, 0, sizeof(*out));
	vgs_option_error(err, errlen, "--params: this vshm-gpu was built without json-c");
	return -ENOTSUP;
}

#else

/* Context types crosvm knows (rutabaga capset names, protocols.md §3.5). */
static const char *const crosvm_context_types[] = {
	"virgl", "virgl2",         "gfxstream-vulkan",   "venus", "cross-domain", "drm",
	"magma", "gfxstream-gles", "gfxstream-composer",
};

/* Keys with no meaning without a renderer: type-checked, then ignored. */
struct ignored_key {
	const char *name;
	enum json_type type;
};
static const struct ignored_key ignored_keys[] = {
	{ "egl", json_type_boolean },
	{ "gles", json_type_boolean },
	{ "glx", json_type_boolean },
	{ "surfaceless", json_type_boolean },
	{ "vulkan", json_type_boolean },
	{ "external-blob", json_type_boolean },
	{ "system-blob", json_type_boolean },
	{ "fixed-blob-mapping", json_type_boolean },
	{ "implicit-render-server", json_type_boolean },
	{ "cache-path", json_type_string },
	{ "cache-size", json_type_string },
	{ "renderer-features", json_type_string },
	{ "pci-address", json_type_string },
	{ "snapshot-scratch-path", json_type_string },
};

static const char *type_name(enum json_type t)
{
	switch (t) {
	case json_type_boolean:
		return "a boolean";
	case json_type_string:
		return "a string";
	case json_type_int:
		return "an integer";
	case json_type_array:
		return "an array";
	case json_type_object:
		return "an object";
	default:
		return "something else";
	}
}

/* An integer in [min, max]; JSON numbers with a fraction or beyond int64/uint64 fail. */
static int get_uint(json_object *v, const char *what, uint64_t min, uint64_t max, uint64_t *out,
                    char *err, size_t errlen)
{
	int64_t s;
	uint64_t u;

	if (!json_object_is_type(v, json_type_int))
		return vgs_option_error(err, errlen, "--params: '%s' must be an integer, not %s",
		                        what, type_name(json_object_get_type(v)));
	errno = 0;
	s = json_object_get_int64(v);
	if (s < 0)
		return vgs_option_error(err, errlen, "--params: '%s' must not be negative", what);
	u = json_object_get_uint64(v);
	if (errno || u < min || u > max)
		return vgs_option_error(err, errlen, "--params: '%s' = %s is outside %llu..%llu",
		                        what, json_object_to_json_string(v),
		                        (unsigned long long)min, (unsigned long long)max);
	*out = u;
	return 0;
}

static int get_dim(json_object *v, const char *what, uint32_t *out, char *err, size_t errlen)
{
	uint64_t u;
	int r = get_uint(v, what, 1, VGS_CROSVM_MAX_DIM, &u, err, errlen);

	if (r == 0)
		*out = (uint32_t)u;
	return r;
}

static int check_type(json_object *v, const char *what, enum json_type t, char *err, size_t errlen)
{
	if (!json_object_is_type(v, t))
		return vgs_option_error(err, errlen, "--params: '%s' must be %s, not %s", what,
		                        type_name(t), type_name(json_object_get_type(v)));
	return 0;
}

/* [a, b] of two integers within [min, max]. */
static int get_pair(json_object *v, const char *what, uint64_t min, uint64_t max, uint32_t out[2],
                    char *err, size_t errlen)
{
	uint64_t u;

	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2)
		return vgs_option_error(err, errlen,
		                        "--params: '%s' must be an array of two integers", what);
	for (size_t i = 0; i < 2; i++) {
		if (get_uint(json_object_array_get_idx(v, i), what, min, max, &u, err, errlen) < 0)
			return -EINVAL;
		out[i] = (uint32_t)u;
	}
	return 0;
}

static int parse_display(json_object *o, size_t idx, struct vgs_crosvm_display *d, char *err,
                         size_t errlen)
{
	uint64_t u;

	d->width = 1280;
	d->height = 1024;
	d->refresh_rate = 60;
	d->dpi[0] = d->dpi[1] = 320;
	if (!json_object_is_type(o, json_type_object))
		return vgs_option_error(err, errlen, "--params: displays[%zu] must be an object",
		                        idx);
	json_object_object_foreach(o, key, v)
	{
		if (!strcmp(key, "mode")) {
			json_object *w;
			uint32_t wh[2];
			if (!json_object_is_type(v, json_type_object) ||
			    json_object_object_length(v) != 1 ||
			    !json_object_object_get_ex(v, "windowed", &w))
				return vgs_option_error(err, errlen,
				                        "--params: displays[%zu].mode must be "
				                        "{\"windowed\": [WIDTH, HEIGHT]}",
				                        idx);
			if (get_pair(w, "displays[].mode.windowed", 1, VGS_CROSVM_MAX_DIM, wh, err,
			             errlen) < 0)
				return -EINVAL;
			d->width = wh[0];
			d->height = wh[1];
		} else if (!strcmp(key, "refresh-rate")) {
			if (get_uint(v, "displays[].refresh-rate", 1, 1000, &u, err, errlen) < 0)
				return -EINVAL;
			d->refresh_rate = (uint32_t)u;
		} else if (!strcmp(key, "hidden")) {
			if (check_type(v, "displays[].hidden", json_type_boolean, err, errlen) < 0)
				return -EINVAL;
			d->hidden = json_object_get_boolean(v);
		} else if (!strcmp(key, "dpi")) {
			if (get_pair(v, "displays[].dpi", 1, 100000, d->dpi, err, errlen) < 0)
				return -EINVAL;
		} else {
			return vgs_option_error(
			        err, errlen,
			        "--params: unknown key '%s' in displays[%zu] (known: mode, "
			        "refresh-rate, hidden, dpi)",
			        key, idx);
		}
	}
	return 0;
}

static int parse_context_types(const char *s, char *err, size_t errlen)
{
	size_t n = strcspn(s, ":");
	bool known = false;

	/* "" = no context types: the only value that 2D mode can honour. */
	if (*s == '\0')
		return 0;
	for (size_t i = 0; i < sizeof(crosvm_context_types) / sizeof(*crosvm_context_types); i++)
		known |= strlen(crosvm_context_types[i]) == n &&
		         !strncmp(s, crosvm_context_types[i], n);
	if (known)
		return vgs_option_error(
		        err, errlen,
		        "--params: context type '%.*s' needs a 3D renderer, which this "
		        "vshm-gpu does not have; supported context types: none (use "
		        "\"context-types\": \"\")",
		        (int)(n > 64 ? 64 : n), s);
	return vgs_option_error(
	        err, errlen, "--params: unknown context type '%.*s'; supported context types: none",
	        (int)(n > 64 ? 64 : n), s);
}

static int parse_backend(const char *s, char *err, size_t errlen)
{
	if (!strcmp(s, "2d") || !strcmp(s, "2D"))
		return 0;
	if (!strcmp(s, "virglrenderer") || !strcmp(s, "3d") || !strcmp(s, "3D") ||
	    !strcmp(s, "gfxstream"))
		return vgs_option_error(
		        err, errlen,
		        "--params: backend '%s': 3D rendering is not supported by this build "
		        "yet; use \"2d\" (or leave it out)",
		        s);
	return vgs_option_error(err, errlen, "--params: unknown backend '%s' (supported: \"2d\")",
	                        s);
}

static int parse_key(const char *key, json_object *v, struct vgs_crosvm_params *out, char *err,
                     size_t errlen)
{
	uint64_t u;

	if (!strcmp(key, "context-types")) {
		if (check_type(v, key, json_type_string, err, errlen) < 0)
			return -EINVAL;
		return parse_context_types(json_object_get_string(v), err, errlen);
	}
	if (!strcmp(key, "backend")) {
		if (check_type(v, key, json_type_string, err, errlen) < 0)
			return -EINVAL;
		return parse_backend(json_object_get_string(v), err, errlen);
	}
	if (!strcmp(key, "displays")) {
		size_t n;
		if (check_type(v, key, json_type_array, err, errlen) < 0)
			return -EINVAL;
		n = json_object_array_length(v);
		if (n > VGS_MAX_SCANOUTS)
			return vgs_option_error(err, errlen, "--params: %zu displays, at most %d",
			                        n, VGS_MAX_SCANOUTS);
		for (size_t i = 0; i < n; i++)
			if (parse_display(json_object_array_get_idx(v, i), i, &out->displays[i],
			                  err, errlen) < 0)
				return -EINVAL;
		out->num_displays = (uint32_t)n;
		return 0;
	}
	if (!strcmp(key, "width"))
		return get_dim(v, key, &out->width, err, errlen);
	if (!strcmp(key, "height"))
		return get_dim(v, key, &out->height, err, errlen);
	if (!strcmp(key, "max-num-displays")) {
		if (get_uint(v, key, 1, VGS_MAX_SCANOUTS, &u, err, errlen) < 0)
			return -EINVAL;
		out->max_num_displays = (uint32_t)u;
		return 0;
	}
	if (!strcmp(key, "pci-bar-size")) {
		if (get_uint(v, key, VGS_CROSVM_MIN_BAR_SIZE, VGS_CROSVM_MAX_BAR_SIZE, &u, err,
		             errlen) < 0)
			return -EINVAL;
		/* A PCI BAR is a power of two (which also makes it a page multiple). */
		if (u & (u - 1))
			return vgs_option_error(
			        err, errlen, "--params: 'pci-bar-size' %llu is not a power of two",
			        (unsigned long long)u);
		out->pci_bar_size = u;
		return 0;
	}
	if (!strcmp(key, "udmabuf")) {
		if (check_type(v, key, json_type_boolean, err, errlen) < 0)
			return -EINVAL;
		out->udmabuf = json_object_get_boolean(v);
		return 0;
	}
	if (!strcmp(key, "wsi")) {
		const char *s;
		if (check_type(v, key, json_type_string, err, errlen) < 0)
			return -EINVAL;
		s = json_object_get_string(v);
		if (strcmp(s, "vulkan") && strcmp(s, "vk"))
			return vgs_option_error(err, errlen,
			                        "--params: unknown wsi '%s' (\"vk\" or \"vulkan\")",
			                        s);
		return 0;
	}
	if (!strcmp(key, "audio-device-mode")) {
		const char *s;
		if (check_type(v, key, json_type_string, err, errlen) < 0)
			return -EINVAL;
		s = json_object_get_string(v);
		if (strcmp(s, "per-surface") && strcmp(s, "one-global"))
			return vgs_option_error(err, errlen,
			                        "--params: unknown audio-device-mode '%s'", s);
		return 0;
	}
	for (size_t i = 0; i < sizeof(ignored_keys) / sizeof(*ignored_keys); i++)
		if (!strcmp(key, ignored_keys[i].name))
			return check_type(v, key, ignored_keys[i].type, err, errlen);
	return vgs_option_error(
	        err, errlen,
	        "--params: unknown key '%s' (vshm-gpu accepts crosvm's GpuParameters keys: "
	        "backend, context-types, displays, width, height, max-num-displays, "
	        "pci-bar-size, udmabuf and the renderer options)",
	        key);
}

int vgs_crosvm_params_parse(const char *json, struct vgs_crosvm_params *out, char *err,
                            size_t errlen)
{
	struct json_tokener *tok;
	json_object *root;
	size_t len = json ? strlen(json) : 0;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!json || len == 0)
		return vgs_option_error(err, errlen, "--params: empty JSON");
	if (len > VGS_CROSVM_MAX_JSON_BYTES)
		return vgs_option_error(err, errlen, "--params: JSON longer than %u bytes",
		                        VGS_CROSVM_MAX_JSON_BYTES);
	tok = json_tokener_new_ex(16); /* nesting depth: displays[].mode.windowed is 4 */
	if (!tok)
		return vgs_option_error(err, errlen, "--params: out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		r = vgs_option_error(err, errlen, "--params: not valid JSON (%s)",
		                     json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		r = vgs_option_error(err, errlen, "--params: the JSON must be an object");
		goto out;
	}
	json_object_object_foreach(root, key, v)
	{
		r = parse_key(key, v, out, err, errlen);
		if (r < 0)
			goto out;
	}
	if (out->max_num_displays && out->num_displays > out->max_num_displays)
		r = vgs_option_error(err, errlen,
		                     "--params: %u displays but max-num-displays is %u",
		                     out->num_displays, out->max_num_displays);
out:
	json_object_put(root);
	json_tokener_free(tok);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

#endif
