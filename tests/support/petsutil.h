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

#endif
