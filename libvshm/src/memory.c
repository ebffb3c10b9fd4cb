/* SPDX-License-Identifier: MIT */
/* memory.c - placeholder, being implemented. */
