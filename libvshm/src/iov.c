/* SPDX-License-Identifier: MIT */
/* iov.c - placeholder, being implemented. */
