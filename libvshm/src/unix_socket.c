/* SPDX-License-Identifier: MIT */
/* unix_socket.c - placeholder, being implemented. */
