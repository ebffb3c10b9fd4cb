/* SPDX-License-Identifier: MIT */
/*
 * vhost_user_msg.c - the pure validation layer for vhost-user requests.
 *
 * Each request id has an exact payload size (or a size derived from a
 * count inside the payload) and an exact fd count. Checking all of that in
 * one table-driven place keeps the engine's handlers free of length
 * arithmetic and lets the fuzzer hit the parser without sockets.
 */
#include "vhost_user_msg.h"

#include <stddef.h>
#include <string.h>

/* Payload size rule of a request. */
enum size_rule {
	SZ_ANY,       /* not checked here (device or unsupported requests) */
	SZ_FIXED,     /* exactly .size bytes */
	SZ_MEM_TABLE, /* 8 + 32 * nregions, nregions <= 8 */
	SZ_CONFIG,    /* 12 + config size, config size <= 256 */
};

/* fd rule of a request. */
enum fd_rule {
	FD_ANY,   /* up to VU_MAX_FDS; the receiver closes what it does not keep */
	FD_NONE,  /* no fds */
	FD_ONE,   /* exactly one */
	FD_OPT,   /* zero or one (REM_MEM_REG: some front-ends send the region fd) */
	FD_VRING, /* one unless the u64 has VU_VRING_NOFD set, then none */
	FD_TABLE, /* one per memory region */
};

struct req_entry {
	struct vu_req_info info;
	enum size_rule size_rule;
	uint32_t size;
	enum fd_rule fd_rule;
};

#define HANDLED(n, sr, sz, fr, reply)                                                              \
	{                                                                                          \
		.info = { .name = (n), .kind = VU_KIND_HANDLED, .has_reply = (reply) },            \
		.size_rule = (sr), .size = (sz), .fd_rule = (fr)                                   \
	}
#define UNSUPPORTED(n)                                                                             \
	{                                                                                          \
		.info = { .name = (n), .kind = VU_KIND_UNSUPPORTED, .has_reply = false },          \
		.size_rule = SZ_ANY, .size = 0, .fd_rule = FD_ANY                                  \
	}

/*
 * Requests gated on protocol features the engine never offers are
 * UNSUPPORTED: the front-end cannot have negotiated them, so a reply body
 * is never owed and an error (plus closing any fds) is the right answer.
 */
static const struct req_entry req_table[VU_REQ_MAX] = {
	[VU_REQ_GET_FEATURES] = HANDLED("GET_FEATURES", SZ_FIXED, 0, FD_NONE, true),
	[VU_REQ_SET_FEATURES] = HANDLED("SET_FEATURES", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_SET_OWNER] = HANDLED("SET_OWNER", SZ_FIXED, 0, FD_NONE, false),
	[VU_REQ_RESET_OWNER] = HANDLED("RESET_OWNER", SZ_FIXED, 0, FD_NONE, false),
	[VU_REQ_SET_MEM_TABLE] = HANDLED("SET_MEM_TABLE", SZ_MEM_TABLE, 0, FD_TABLE, false),
	[VU_REQ_SET_LOG_BASE] = UNSUPPORTED("SET_LOG_BASE"),
	[VU_REQ_SET_LOG_FD] = UNSUPPORTED("SET_LOG_FD"),
	[VU_REQ_SET_VRING_NUM] = HANDLED("SET_VRING_NUM", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_SET_VRING_ADDR] = HANDLED("SET_VRING_ADDR", SZ_FIXED, 40, FD_NONE, false),
	[VU_REQ_SET_VRING_BASE] = HANDLED("SET_VRING_BASE", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_GET_VRING_BASE] = HANDLED("GET_VRING_BASE", SZ_FIXED, 8, FD_NONE, true),
	[VU_REQ_SET_VRING_KICK] = HANDLED("SET_VRING_KICK", SZ_FIXED, 8, FD_VRING, false),
	[VU_REQ_SET_VRING_CALL] = HANDLED("SET_VRING_CALL", SZ_FIXED, 8, FD_VRING, false),
	[VU_REQ_SET_VRING_ERR] = HANDLED("SET_VRING_ERR", SZ_FIXED, 8, FD_VRING, false),
	[VU_REQ_GET_PROTOCOL_FEATURES] =
	        HANDLED("GET_PROTOCOL_FEATURES", SZ_FIXED, 0, FD_NONE, true),
	[VU_REQ_SET_PROTOCOL_FEATURES] =
	        HANDLED("SET_PROTOCOL_FEATURES", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_GET_QUEUE_NUM] = HANDLED("GET_QUEUE_NUM", SZ_FIXED, 0, FD_NONE, true),
	[VU_REQ_SET_VRING_ENABLE] = HANDLED("SET_VRING_ENABLE", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_SEND_RARP] = UNSUPPORTED("SEND_RARP"),
	[VU_REQ_NET_SET_MTU] = UNSUPPORTED("NET_SET_MTU"),
	[VU_REQ_SET_BACKEND_REQ_FD] = HANDLED("SET_BACKEND_REQ_FD", SZ_FIXED, 0, FD_ONE, false),
	[VU_REQ_IOTLB_MSG] = UNSUPPORTED("IOTLB_MSG"),
	[VU_REQ_SET_VRING_ENDIAN] = UNSUPPORTED("SET_VRING_ENDIAN"),
	[VU_REQ_GET_CONFIG] = HANDLED("GET_CONFIG", SZ_CONFIG, 0, FD_NONE, true),
	[VU_REQ_SET_CONFIG] = HANDLED("SET_CONFIG", SZ_CONFIG, 0, FD_NONE, false),
	[VU_REQ_CREATE_CRYPTO_SESSION] = UNSUPPORTED("CREATE_CRYPTO_SESSION"),
	[VU_REQ_CLOSE_CRYPTO_SESSION] = UNSUPPORTED("CLOSE_CRYPTO_SESSION"),
	[VU_REQ_POSTCOPY_ADVISE] = UNSUPPORTED("POSTCOPY_ADVISE"),
	[VU_REQ_POSTCOPY_LISTEN] = UNSUPPORTED("POSTCOPY_LISTEN"),
	[VU_REQ_POSTCOPY_END] = UNSUPPORTED("POSTCOPY_END"),
	[VU_REQ_GET_INFLIGHT_FD] = UNSUPPORTED("GET_INFLIGHT_FD"),
	[VU_REQ_SET_INFLIGHT_FD] = UNSUPPORTED("SET_INFLIGHT_FD"),
	/* 33 (GPU_SET_SOCKET) is left zeroed: a device request. */
	[VU_REQ_RESET_DEVICE] = HANDLED("RESET_DEVICE", SZ_FIXED, 0, FD_NONE, false),
	[VU_REQ_VRING_KICK] = UNSUPPORTED("VRING_KICK"),
	[VU_REQ_GET_MAX_MEM_SLOTS] = HANDLED("GET_MAX_MEM_SLOTS", SZ_FIXED, 0, FD_NONE, true),
	[VU_REQ_ADD_MEM_REG] = HANDLED("ADD_MEM_REG", SZ_FIXED, 40, FD_ONE, false),
	[VU_REQ_REM_MEM_REG] = HANDLED("REM_MEM_REG", SZ_FIXED, 40, FD_OPT, false),
	[VU_REQ_SET_STATUS] = HANDLED("SET_STATUS", SZ_FIXED, 8, FD_NONE, false),
	[VU_REQ_GET_STATUS] = HANDLED("GET_STATUS", SZ_FIXED, 0, FD_NONE, true),
	[VU_REQ_GET_SHARED_OBJECT] = UNSUPPORTED("GET_SHARED_OBJECT"),
	[VU_REQ_SET_DEVICE_STATE_FD] = UNSUPPORTED("SET_DEVICE_STATE_FD"),
	[VU_REQ_CHECK_DEVICE_STATE] = UNSUPPORTED("CHECK_DEVICE_STATE"),
	[VU_REQ_GET_SHMEM_CONFIG] = HANDLED("GET_SHMEM_CONFIG", SZ_FIXED, 0, FD_NONE, true),
};

static const struct req_entry device_entry = {
	.info = { .name = "device request", .kind = VU_KIND_DEVICE, .has_reply = false },
	.size_rule = SZ_ANY,
	.fd_rule = FD_ANY,
};

static const struct req_entry *lookup(uint32_t request)
{
	if (request < VU_REQ_MAX && req_table[request].info.name)
		return &req_table[request];
	return &device_entry;
}

const struct vu_req_info *vu_req_info(uint32_t request)
{
	return &lookup(request)->info;
}

uint32_t vu_load_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t vu_load_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

const char *vu_parse_error_str(enum vu_parse_error e)
{
	switch (e) {
	case VU_PARSE_OK:
		return "ok";
	case VU_PARSE_BAD_VERSION:
		return "bad version";
	case VU_PARSE_BAD_FLAGS:
		return "bad flags";
	case VU_PARSE_BAD_SIZE:
		return "bad payload size";
	case VU_PARSE_BAD_FDS:
		return "unexpected fd count";
	case VU_PARSE_BAD_VALUE:
		return "bad value";
	}
	return "?";
}

static enum vu_parse_error check_size(const struct req_entry *e, const uint8_t *payload,
                                      uint32_t size)
{
	uint32_t n;

	switch (e->size_rule) {
	case SZ_ANY:
		return VU_PARSE_OK;
	case SZ_FIXED:
		return size == e->size ? VU_PARSE_OK : VU_PARSE_BAD_SIZE;
	case SZ_MEM_TABLE:
		if (size < sizeof(struct vu_mem_table_hdr))
			return VU_PARSE_BAD_SIZE;
		n = vu_load_u32(payload);
		if (n > VU_MAX_MEM_REGIONS)
			return VU_PARSE_BAD_SIZE;
		/* n <= 8 keeps this far from overflow. */
		if (size != sizeof(struct vu_mem_table_hdr) + n * sizeof(struct vu_mem_region))
			return VU_PARSE_BAD_SIZE;
		return VU_PARSE_OK;
	case SZ_CONFIG:
		if (size < sizeof(struct vu_config_hdr))
			return VU_PARSE_BAD_SIZE;
		n = vu_load_u32(payload + offsetof(struct vu_config_hdr, size));
		if (n > VU_MAX_CONFIG_SIZE)
			return VU_PARSE_BAD_SIZE;
		if (size != sizeof(struct vu_config_hdr) + n)
			return VU_PARSE_BAD_SIZE;
		return VU_PARSE_OK;
	}
	return VU_PARSE_BAD_SIZE;
}

static enum vu_parse_error check_fds(const struct req_entry *e, const uint8_t *payload,
                                     unsigned nfds)
{
	uint64_t v;

	switch (e->fd_rule) {
	case FD_ANY:
		return nfds <= VU_MAX_FDS ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	case FD_NONE:
		return nfds == 0 ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	case FD_ONE:
		return nfds == 1 ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	case FD_OPT:
		return nfds <= 1 ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	case FD_VRING:
		/* Size was checked first, so the u64 is there. */
		v = vu_load_u64(payload);
		if (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD))
			return VU_PARSE_BAD_VALUE;
		return nfds == ((v & VU_VRING_NOFD) ? 0u : 1u) ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	case FD_TABLE:
		return nfds == vu_load_u32(payload) ? VU_PARSE_OK : VU_PARSE_BAD_FDS;
	}
	return VU_PARSE_BAD_FDS;
}

enum vu_parse_error vu_msg_parse(const uint8_t *hdr, const uint8_t *payload, uint32_t size,
                                 unsigned nfds, struct vu_msg *out)
{
	const struct req_entry *e;
	enum vu_parse_error err;

	memset(out, 0, sizeof(*out));
	out->request = vu_load_u32(hdr + offsetof(struct vu_hdr, request));
	out->flags = vu_load_u32(hdr + offsetof(struct vu_hdr, flags));
	out->size = size;
	out->payload = payload;
	out->nfds = nfds;
	e = lookup(out->request);
	out->info = &e->info;

	if ((out->flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION)
		return VU_PARSE_BAD_VERSION;
	/* A front-end never sends replies on this socket. */
	if ((out->flags & ~VU_FLAG_KNOWN) || (out->flags & VU_FLAG_REPLY))
		return VU_PARSE_BAD_FLAGS;
	if (vu_load_u32(hdr + offsetof(struct vu_hdr, size)) != size)
		return VU_PARSE_BAD_SIZE;
	err = check_size(e, payload, size);
	if (err != VU_PARSE_OK)
		return err;
	return check_fds(e, payload, nfds);
}
