/* Descriptor-driven helpers shared by keys and values: enum checks,
 * presence of optional fields, freeing owned members, deep copy, deep
 * equality. */
#include "codec_int.h"

/* Schema enums are nearly always 0, 1, 2 ... in order, so a value that
 * indexes its own slot is found without the scan. */
bool kivis__enum_valid(const kivis_field *f, int64_t v)
{
    if (!kivis__int_fits(v, (unsigned)f->size))
        return false;
    const kivis_enum_desc *e = f->enm;
    if (!e)
        return true; /* a descriptor without a value list restricts nothing */
    if (v >= 0 && v < (int64_t)e->count && e->values[v] == v)
        return true;
    for (uint32_t i = 0; i < e->count; i++)
        if (e->values[i] == v)
            return true;
    return false;
}

int kivis__enum_checked(const kivis_field *f, const uint8_t *p, int64_t *v)
{
    int rc = kivis__enum_load(f, p, v);
    if (rc)
        return rc;
    return kivis__enum_valid(f, *v) ? KIVIS_OK : KIVIS_ERANGE;
}

int kivis__run_of(const kivis_field *f, const uint8_t *p, const void **data,
                  size_t *n)
{
    kivis_bytes bytes;
    const char *s;
    int rc;
    switch (f->kind) {
    case KIVIS_STRING:
        s = kivis__string_load(p);
        *data = s;
        *n = strlen(s);
        break;
    case KIVIS_CHARS:
        if ((rc = kivis__chars_len(f, p, n)) != KIVIS_OK)
            return rc;
        *data = p;
        break;
    default: /* KIVIS_BYTES: any bytes */
        memcpy(&bytes, p, sizeof bytes);
        if (!bytes.data && bytes.len)
            return KIVIS_EINVAL;
        *data = bytes.data;
        *n = bytes.len;
        return KIVIS_OK;
    }
    return kivis__utf8_check(*data, *n);
}

/* ---- optional fields -------------------------------------------------- */

int kivis__field_presence(const kivis_struct_desc *sd, uint32_t i,
                          const void *obj)
{
    const kivis_field *f = &sd->fields[i];
    const uint8_t *p = kivis__field_cptr(f, obj);
    void *ptr;
    if (kivis__absent_by_null(f)) {
        memcpy(&ptr, p, sizeof ptr); /* kivis_bytes starts with its data */
        return ptr != NULL;
    }
    if (!kivis__has_presence_flag(f))
        return 1;
    uint8_t flag = *((const uint8_t *)obj + kivis__presence_offset(sd, i));
    return flag > 1 ? KIVIS_ERANGE : flag;
}

bool kivis__field_present(const kivis_struct_desc *sd, uint32_t i,
                          const void *obj)
{
    return kivis__field_presence(sd, i, obj) != 0;
}

int kivis_field_present(const kivis_struct_desc *sd, uint32_t i, const void *obj)
{
    return kivis__field_present(sd, i, obj);
}

size_t kivis_presence_offset(const kivis_struct_desc *sd, uint32_t i)
{
    return kivis__has_presence_flag(&sd->fields[i]) ? kivis__presence_offset(sd, i)
                                                    : SIZE_MAX;
}

static bool kind_owns_memory(uint32_t kind)
{
    return kind == KIVIS_STRING || kind == KIVIS_BYTES || kind == KIVIS_STRUCT;
}

static void free_owned(const kivis_struct_desc *sd, uint8_t *obj,
                       const kivis_allocator *a);

static void free_elem(const kivis_field *f, uint8_t *p,
                      const kivis_allocator *a)
{
    char *s;
    kivis_bytes v;
    switch (f->kind) {
    case KIVIS_STRING:
        memcpy(&s, p, sizeof s);
        a->free(a->ctx, s);
        break;
    case KIVIS_BYTES:
        memcpy(&v, p, sizeof v);
        a->free(a->ctx, v.data);
        break;
    case KIVIS_STRUCT:
        if (f->type)
            free_owned(f->type, p, a);
        break;
    default:
        break;
    }
}

static void free_field_owned(const kivis_field *f, uint8_t *obj,
                             const kivis_allocator *a)
{
    if (!kind_owns_memory(f->kind))
        return;
    uint8_t *p = kivis__field_ptr(f, obj);
    for (uint32_t i = 0, n = kivis__field_elems(f); i < n; i++, p += f->size)
        free_elem(f, p, a);
}

static void free_owned(const kivis_struct_desc *sd, uint8_t *obj,
                       const kivis_allocator *a)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        free_field_owned(&sd->fields[i], obj, a);
}

void kivis__field_free(const kivis_field *f, void *obj,
                       const kivis_allocator *alloc)
{
    free_field_owned(f, obj, kivis__alloc_or_default(alloc));
    memset(kivis__field_ptr(f, obj), 0, kivis__field_bytes(f));
}

void kivis__struct_free(const kivis_struct_desc *sd, void *obj,
                        const kivis_allocator *alloc)
{
    free_owned(sd, obj, kivis__alloc_or_default(alloc));
    memset(obj, 0, sd->size);
}

/* ---- deep copy ------------------------------------------------------ */

static int copy_owned(const kivis_struct_desc *sd, uint8_t *dst,
                      const kivis_allocator *a);

static int dup_run(const void *src, size_t n, size_t extra,
                   const kivis_allocator *a, void **out)
{
    *out = NULL;
    if (!src || n + extra == 0)
        return KIVIS_OK;
    if (!(*out = a->malloc(a->ctx, n + extra)))
        return KIVIS_ENOMEM;
    memcpy(*out, src, n);
    if (extra)
        ((char *)*out)[n] = '\0';
    return KIVIS_OK;
}

/* Replace the owned member at p, a bitwise copy of the source's, by a copy
 * of its own.  On failure the member is NULL, so the struct stays freeable. */
static int copy_elem(const kivis_field *f, uint8_t *p, const kivis_allocator *a)
{
    char *s;
    void *copy;
    kivis_bytes v;
    int rc = KIVIS_OK;
    switch (f->kind) {
    case KIVIS_STRING:
        memcpy(&s, p, sizeof s);
        rc = dup_run(s, s ? strlen(s) : 0, 1, a, &copy);
        memcpy(p, &copy, sizeof copy);
        break;
    case KIVIS_BYTES:
        memcpy(&v, p, sizeof v);
        /* an optional blob's pointer says it is present, even when empty */
        rc = dup_run(v.data, v.len, kivis__absent_by_null(f) && !v.len, a,
                     &copy);
        v.data = copy;
        if (!copy)
            v.len = 0;
        memcpy(p, &v, sizeof v);
        break;
    case KIVIS_STRUCT:
        if (f->type)
            rc = copy_owned(f->type, p, a);
        break;
    default:
        break;
    }
    return rc;
}

/* Every owned member of dst (a bitwise copy) gets its own memory.  All of
 * them are visited even after a failure, so none stays shared. */
static int copy_owned(const kivis_struct_desc *sd, uint8_t *dst,
                      const kivis_allocator *a)
{
    int rc = KIVIS_OK;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        if (!kind_owns_memory(f->kind))
            continue;
        uint8_t *p = kivis__field_ptr(f, dst);
        for (uint32_t j = 0, n = kivis__field_elems(f); j < n; j++, p += f->size) {
            int erc = copy_elem(f, p, a);
            if (erc)
                rc = erc;
        }
    }
    return rc;
}

int kivis__struct_copy(const kivis_struct_desc *sd, void *dst, const void *src,
                       const kivis_allocator *alloc)
{
    const kivis_allocator *a = kivis__alloc_or_default(alloc);
    memcpy(dst, src, sd->size);
    int rc = copy_owned(sd, dst, a);
    if (rc)
        kivis__struct_free(sd, dst, a);
    return rc;
}

static bool elem_equal(const kivis_field *f, const uint8_t *x,
                       const uint8_t *y)
{
    kivis_bytes bx, by;
    switch (f->kind) {
    case KIVIS_STRING: /* NULL stores as "", so it equals "" */
        return strcmp(kivis__string_load(x), kivis__string_load(y)) == 0;
    case KIVIS_CHARS: /* bytes after the NUL are not part of the value */
        return strncmp((const char *)x, (const char *)y, f->size) == 0;
    case KIVIS_BYTES:
        memcpy(&bx, x, sizeof bx);
        memcpy(&by, y, sizeof by);
        return bx.len == by.len &&
               (bx.len == 0 || memcmp(bx.data, by.data, bx.len) == 0);
    case KIVIS_STRUCT:
        return f->type && kivis__struct_equal(f->type, x, y);
    case KIVIS_ENUM:
        return memcmp(x, y, f->size) == 0;
    default: /* integers, bool, floats: by bits */
        return memcmp(x, y, kivis__kind_width(f->kind)) == 0;
    }
}

bool kivis__struct_equal(const kivis_struct_desc *sd, const void *a,
                         const void *b)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        const uint8_t *x = kivis__field_cptr(f, a), *y = kivis__field_cptr(f, b);
        bool here = kivis__field_present(sd, i, a);
        if (here != kivis__field_present(sd, i, b))
            return false;
        if (!here)
            continue; /* two absent values are equal whatever the bytes */
        for (uint32_t j = 0, n = kivis__field_elems(f); j < n; j++) {
            if (!elem_equal(f, x, y))
                return false;
            x += f->size;
            y += f->size;
        }
    }
    return true;
}

const char *kivis_action_name(uint32_t index_flags)
{
    switch (index_flags & KIVIS_INDEX_ACTION) {
    case KIVIS_INDEX_RESTRICT:
        return "restrict";
    case KIVIS_INDEX_CASCADE:
        return "cascade";
    case KIVIS_INDEX_NULLIFY:
        return "nullify";
    default:
        return NULL;
    }
}
