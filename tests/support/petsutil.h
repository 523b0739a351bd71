/*
 * tests/support/petsutil.h - record-level helpers over the hand-written
 * pets descriptor (examples/demo/pets_schema.h), shared by the backend
 * tests that run the record engine end to end.  Each fails the test on an
 * unexpected status.
 */
#ifndef KIVIS_PETSUTIL_H
#define KIVIS_PETSUTIL_H

#include "pets_schema.h"

#include <stddef.h>
#include <stdint.h>

/* Store user {name, "x@example.org", age} under the next id; its key. */
user_key kt_put_user(kivis_db *db, const char *name, uint32_t age);

/* How many users the name index holds under `name` (each checked). */
size_t kt_users_named(kivis_db *db, const char *name);

/* A reader thread that keeps a read transaction open while another thread
 * does something that must wait for it (a map growth). */
typedef struct kt_held_reader {
    kivis_db *db;  /* its own db, on the storage under test */
    long hold_ms;  /* how long the transaction stays open */
    int holding;   /* atomic: set once the transaction is open and has read */
    int rc;        /* the first failure, or KIVIS_OK */
} kt_held_reader;

/* pthread_create body: kivis_begin_read, a get of user 1 (which must
 * exist), hold_ms asleep, kivis_abort.  Use kt_wait_holding to wait. */
void *kt_hold_read_txn(void *arg);

/* Spin (yielding) until r->holding. */
void kt_wait_holding(kt_held_reader *r);

#endif
