/* SPDX-License-Identifier: MIT */
/* vhost_user_msg.c - placeholder, being implemented. */
