// The generated pets API from C++17: string literals fill a record's
// const char * members without casts, the typed handle and the cursors
// work as in C.  Compiled only (-fsyntax-only): tests/gen/CMakeLists.txt.
#include "pets.kivis.h"

int use_pets(kivis_storage *st);
int use_pets(kivis_storage *st)
{
    pets_db *db = nullptr;
    int rc = pets_open(st, nullptr, &db);
    if (rc != KIVIS_OK)
        return rc;
    user u = {"alice", "alice@example.org", 34};
    user_key alice;
    rc = user_put(db, &u, &alice);
    user_cursor cur;
    if (rc == KIVIS_OK && (rc = user_by_name(db, "alice", 0, &cur)) == KIVIS_OK) {
        user got;
        while (user_next(&cur, &alice, &got) == KIVIS_OK)
            user_clear(db, &got);
        user_close(&cur);
    }
    pets_close(db);
    return rc;
}
