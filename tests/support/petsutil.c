/* Record-level helpers over the pets descriptor (petsutil.h). */
#include "petsutil.h"
#include "testutil.h"

#include <sched.h>
#include <time.h>

user_key kt_put_user(kivis_db *db, const char *name, uint32_t age)
{
    user u = {(char *)name, "x@example.org", age};
    user_key k;
    assert_int_equal(kivis_put(db, PETS_USER, &u, &k), KIVIS_OK);
    return k;
}

size_t kt_users_named(kivis_db *db, const char *name)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    size_t n = 0;
    user u;
    while (kivis_scan_next(s, NULL, &u) == KIVIS_OK) {
        assert_string_equal(u.name, name);
        kivis_record_clear(db, PETS_USER, &u);
        n++;
    }
    kivis_scan_close(s);
    return n;
}

void *kt_hold_read_txn(void *arg)
{
    kt_held_reader *r = arg;
    user_key k = {1};
    user u;
    r->rc = kivis_begin_read(r->db);
    if (r->rc == KIVIS_OK && (r->rc = kivis_get(r->db, PETS_USER, &k, &u)) == KIVIS_OK)
        kivis_record_clear(r->db, PETS_USER, &u);
    __atomic_store_n(&r->holding, 1, __ATOMIC_RELEASE);
    struct timespec ts = {r->hold_ms / 1000, (r->hold_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kivis_abort(r->db);
    return NULL;
}

void kt_wait_holding(kt_held_reader *r)
{
    while (!__atomic_load_n(&r->holding, __ATOMIC_ACQUIRE))
        sched_yield();
}
