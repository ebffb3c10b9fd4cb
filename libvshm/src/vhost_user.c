/* SPDX-License-Identifier: MIT */
/* vhost_user.c - placeholder, being implemented. */
