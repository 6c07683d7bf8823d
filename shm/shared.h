/*
 * shared.h — CKR_SHARED marks an internal function of libckring that its
 * sister library libckring-store calls (the flusher engine reads lanes,
 * the store judges identities). It is exported under the version node
 * CKRING_PRIVATE_* (packaging/libckring.map), never documented as API, and
 * tests/test_symbols.sh checks that the set is exactly what libckring-store
 * needs. Applications must not call these.
 */
#ifndef CKR_SHARED_H
#define CKR_SHARED_H

#if defined(__GNUC__)
#define CKR_SHARED __attribute__((visibility("default")))
#else
#define CKR_SHARED
#endif

#endif /* CKR_SHARED_H */
