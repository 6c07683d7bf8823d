/*
 * client.h — internals of the executor API shared by client/ files and the
 * tests. The API itself is in include/ckring.h.
 */
#ifndef CKR_CLIENT_H
#define CKR_CLIENT_H

#include <stdint.h>

#include "ckring.h"
#include "shm/segment.h"

/* The owner token (pid + start time) of the client's process. */
uint64_t ckr_client_token(const ckr_client *c);

/* The client's segment handle (read-only use). */
const ckr_segment *ckr_client_segment(const ckr_client *c);

/* 0 if the client may be used by this process; CKR_EFORKED in a forked
 * child; -EINVAL for NULL. */
int ckr_client_check(const ckr_client *c);

#endif /* CKR_CLIENT_H */
