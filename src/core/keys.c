/* Storage keys of records and index entries (docs/design.md, "On-disk layout"). */
#include "engine.h"

#include <string.h>

int kivis__table_prefix(kivis_buf *b, const kivis_table_state *ts,
                        uint32_t slot)
{
    return kivis__id_pair(b, ts->id, slot);
}

int kivis__record_key(kivis_db *db, const kivis_table_state *ts,
                      const void *key, kivis_buf *out, size_t *prefix_len)
{
    int rc = kivis__table_prefix(out, ts, KIVIS_SLOT_RECORDS);
    if (prefix_len)
        *prefix_len = out->len;
    if (!rc)
        rc = kivis__key_put_whole(out, ts->desc->key, ts->key_width, key);
    if (rc == KIVIS_EUTF8 || rc == KIVIS_ERANGE || rc == KIVIS_EINVAL)
        return kivis__fail(db, rc, "%s: key: %s", ts->desc->name,
                           kivis_strerror(rc));
    if (!rc)
        rc = kivis__check_key_size(db, ts, out->len);
    return rc;
}

/* Encode a free-standing value of an index's field type: the field
 * descriptor read at offset 0 of `value`, a present value (behind the
 * present tag when the field is optional). */
int kivis__index_value(kivis_buf *b, const kivis_table_desc *td,
                       uint32_t index, const void *value)
{
    kivis_field f = td->record->fields[td->indexes[index].field];
    f.offset = 0;
    int rc = KIVIS_OK;
    if (f.flags & KIVIS_FIELD_OPTIONAL)
        rc = kivis__buf_byte(b, KIVIS_TAG_PRESENT);
    return rc ? rc : kivis__key_put_field(b, &f, value);
}

bool kivis__unindexed(const kivis_table_desc *td, uint32_t index,
                      const void *rec)
{
    return (td->indexes[index].flags & KIVIS_INDEX_UNIQUE) &&
           !kivis__field_present(td->record, td->indexes[index].field, rec);
}

int kivis__prefix_end(const kivis_buf *p, kivis_buf *end, bool *unbounded)
{
    end->len = 0;
    *unbounded = false;
    size_t n = p->len;
    while (n > 0 && p->data[n - 1] == 0xFF)
        n--;
    if (n == 0) {
        *unbounded = true;
        return KIVIS_OK;
    }
    int rc = kivis__buf_append(end, p->data, n);
    if (!rc)
        end->data[n - 1]++;
    return rc;
}

int kivis__check_key_size(kivis_db *db, const kivis_table_state *ts,
                          size_t len)
{
    if (len <= db->max_key)
        return KIVIS_OK;
    return kivis__fail(db, KIVIS_EKEYSIZE,
                       "%s: encoded key of %zu bytes exceeds the %s backend's "
                       "limit of %zu",
                       ts->desc->name, len, db->st->methods->name, db->max_key);
}
