/* SPDX-License-Identifier: MIT */
/*
 * The engine on libvshm's own epoll loop (the other tests use a plain
 * poll() loop): proof that it only relies on struct vshm_loop.
 */
#include <string.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/virtqueue.h>

#include "test-runner.h"
#include "vu-test.h"

static void pump(struct vshm_event_loop *l)
{
	while (vshm_event_loop_dispatch(l, 20) > 0)
		;
}

TEST(bring_up_on_epoll_loop)
{
	struct vshm_event_loop *l;
	struct vshm_loop iface;
	struct fe fe;
	uint64_t f, pf;
	uint32_t req, flags, en[2] = { 0, 1 };
	uint64_t v;

	CHECK_OK(vshm_event_loop_new(&l));
	iface = vshm_event_loop_iface(l);
	fe_init_loop(&fe, NULL, &iface);

	CHECK_OK(fe_send(&fe, REQ_GET_FEATURES, F_V1, NULL, 0, NULL, 0));
	pump(l);
	CHECK_EQ(fe_recv(&fe, &req, &flags, &f, 8), 8);
	CHECK(f & VSHM_VU_F_PROTOCOL_FEATURES);
	pf = VSHM_VU_PF_REPLY_ACK;
	CHECK_OK(fe_send(&fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &pf, 8, NULL, 0));
	CHECK_OK(fe_send(&fe, REQ_SET_FEATURES, F_V1 | F_NEED_REPLY, &f, 8, NULL, 0));
	pump(l);
	CHECK_EQ(fe_recv(&fe, &req, &flags, &v, 8), 8);
	CHECK_EQ(req, REQ_SET_FEATURES);
	CHECK_EQ(v, 0);

	/* fe_set_mem/fe_setup_ring pump nothing themselves on a foreign loop. */
	fe_set_mem_nowait(&fe);
	pump(l);
	fe_setup_ring(&fe, 0, 16);
	CHECK_OK(fe_send(&fe, REQ_SET_VRING_ENABLE, F_V1, en, 8, NULL, 0));
	pump(l);
	CHECK_EQ(fe.td.started[0], 1);
	fe_post_buffer(&fe, 0, 0, 32);
	fe_kick(&fe, 0);
	pump(l);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);
	CHECK(fe.td.kicks[0] >= 1);

	/* EOF on the epoll loop: disconnect path. */
	close(fe.sock);
	fe.sock = -1;
	pump(l);
	CHECK_EQ(fe.td.disconnects, 1);
	CHECK_EQ(fe.td.stopped[0], 1);
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
	vshm_event_loop_destroy(l);
}
