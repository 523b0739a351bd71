/*
 * An application outside the kivis tree: it only sees the installed
 * headers, library and the code kivis-gen wrote for app.kvs.
 */
#include "notes.kivis.h"

#include <kivis.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <string.h>

static int fail(notes_db *db, const char *what, int rc)
{
    fprintf(stderr, "app: %s: %s (%s)\n", what, kivis_strerror(rc), notes_errmsg(db));
    return 1;
}

int main(void)
{
    kivis_storage *st = NULL;
    notes_db *db = NULL;
    int rc = kivis_memory_open(NULL, &st);
    if (rc != KIVIS_OK)
        return fail(NULL, "kivis_memory_open", rc);
    rc = notes_open(st, NULL, &db);
    if (rc != KIVIS_OK) {
        kivis_storage_close(st);
        return fail(NULL, "kivis_open", rc);
    }

    char title[] = "hello";
    note rec = {0};
    rec.title = title;
    rec.stars = 5;
    note_key key;
    rc = note_put(db, &rec, &key);
    if (rc != KIVIS_OK)
        return fail(db, "note_put", rc);

    note out;
    rc = note_get(db, key, &out);
    if (rc != KIVIS_OK)
        return fail(db, "note_get", rc);
    int same = key.id == 1 && strcmp(out.title, "hello") == 0 && out.stars == 5;
    note_clear(db, &out);

    notes_close(db);
    kivis_storage_close(st);
    if (!same) {
        fprintf(stderr, "app: the record read back differs\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
