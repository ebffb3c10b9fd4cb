/* SPDX-License-Identifier: MIT */
/* vhost_user_backend_req.c - placeholder, being implemented. */
