/* SPDX-License-Identifier: MIT */
/* util.c - placeholder, being implemented. */
