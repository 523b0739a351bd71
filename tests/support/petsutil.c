/* Record-level helpers over the pets descriptor (petsutil.h). */
#include "petsutil.h"
#include "testutil.h"

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
