/* SPDX-License-Identifier: MIT */
/* virtqueue.c - placeholder, being implemented. */
