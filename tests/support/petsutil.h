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

/* pets_schema over `tables` (filled with a copy of its four tables) less
 * the cascade of pet.owner: the hidden owner index that carries it is
 * dropped, so a pet may name a user that does not exist.  For tests about
 * something else that write such pets, or rename the user table. */
kivis_schema_desc kt_pets_without_cascade(kivis_table_desc tables[4]);

/* Store user {name, "x@example.org", age} under the next id; its key. */
user_key kt_put_user(kivis_db *db, const char *name, uint32_t age);

/* How many users the name index holds under `name` (each checked). */
size_t kt_users_named(kivis_db *db, const char *name);

/* One read-modify-write of user k's age through the record engine
 * (begin, get, age + 1, insert, commit).  KIVIS_OK, or the first failure
 * (KIVIS_ECONFLICT from any step: run it again). */
int kt_increment(kivis_db *db, user_key k);

/* n kt_increment, each run again on KIVIS_ECONFLICT.  KIVIS_OK, or the
 * first other failure (printed to stderr with the db's message). */
int kt_increments(kivis_db *db, user_key k, int n);

/* `procs` processes, each with a storage of its own from open_store(arg)
 * (NULL: the child fails) and a db over it, doing kt_increments(n); waits
 * for them and fails the test unless each one exits 0.  Call it with no
 * storage open in the parent, so that the children inherit none. */
void kt_increments_in_processes(kivis_storage *(*open_store)(void *arg), void *arg,
                                user_key k, int procs, int n);

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
