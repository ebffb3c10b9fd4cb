/* SPDX-License-Identifier: MIT */
/* event_loop.c - placeholder, being implemented. */
