/* SPDX-License-Identifier: MIT */
/* log.c - placeholder, being implemented. */
