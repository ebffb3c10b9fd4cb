/* SPDX-License-Identifier: MIT */
/* conn.c - placeholder, being implemented. */
