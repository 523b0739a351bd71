/*
 * gen/diag.c - compiler-style diagnostics:
 *
 *   pets.kvs:14:5: error: unknown type 'uint33_t'
 *       uint33_t age;
 *       ^
 *
 * Errors are buffered and printed in source order when the run ends, so
 * syntax errors (found while parsing) and semantic ones (found afterwards)
 * interleave as the user reads the file.
 */
#include "front.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct kg_mark {
    const char *key; /* NULL: empty slot */
    kg_loc loc;
};

struct kg_note {
    kg_loc loc;
    size_t seq; /* keeps sorting stable */
    char *msg;
};

void kg_diag_init(kg_diag *d, const char *file, const char *src, size_t len,
                  void *err)
{
    memset(d, 0, sizeof *d);
    d->file = file ? file : "<schema>";
    d->src = src ? src : "";
    d->len = src ? len : 0;
    d->out = err;
}

int kg_diag_full(const kg_diag *d)
{
    return d->count >= KG_MAX_ERRORS || d->oom;
}

static size_t line_start_of(const kg_diag *d, kg_loc loc)
{
    size_t pos = 0;
    int line = 1;
    while (line < loc.line && pos < d->len) {
        if (d->src[pos++] == '\n')
            line++;
    }
    return pos;
}

/* The source line, with bytes a terminal would mangle shown as '?'. */
static void print_line(const kg_diag *d, size_t start)
{
    for (size_t i = start; i < d->len && d->src[i] != '\n'; i++) {
        unsigned char c = (unsigned char)d->src[i];
        if (c == '\r' && (i + 1 == d->len || d->src[i + 1] == '\n'))
            break;
        fputc(c == '\t' || (c >= 0x20 && c < 0x7F) ? c : '?', d->out);
    }
    fputc('\n', d->out);
}

/* The caret under column `col`, keeping the line's tabs so it lines up. */
static void print_caret(const kg_diag *d, size_t start, int col)
{
    for (size_t i = 0; i + 1 < (size_t)col; i++) {
        size_t at = start + i;
        fputc(at < d->len && d->src[at] == '\t' ? '\t' : ' ', d->out);
    }
    fputs("^\n", d->out);
}

static void print_note(const kg_diag *d, kg_loc loc, const char *msg)
{
    if (!d->out)
        return;
    fprintf(d->out, "%s:%d:%d: error: %s\n", d->file, loc.line, loc.col,
            msg);
    size_t start = line_start_of(d, loc);
    print_line(d, start);
    print_caret(d, start, loc.col);
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    if (n < 0)
        return NULL;
    char *msg = malloc((size_t)n + 1);
    if (msg)
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
    return msg;
}

static int keep_note(kg_diag *d, kg_loc loc, char *msg)
{
    if (d->nnotes == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        kg_note *n = realloc(d->notes, cap * sizeof *n);
        if (!n)
            return -1;
        d->notes = n;
        d->cap = cap;
    }
    d->notes[d->nnotes] = (kg_note){loc, d->nnotes, msg};
    d->nnotes++;
    return 0;
}

void kg_error(kg_diag *d, kg_loc loc, const char *fmt, ...)
{
    if (kg_diag_full(d))
        return;
    /* A second error at the very same spot is a cascade (say, at EOF). */
    if (d->nnotes && d->notes[d->nnotes - 1].loc.line == loc.line &&
        d->notes[d->nnotes - 1].loc.col == loc.col)
        return;
    d->count++;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (!msg || keep_note(d, loc, msg) < 0) {
        /* Out of memory: say it now rather than lose it. */
        print_note(d, loc, msg ? msg : "out of memory");
        free(msg);
        d->oom = 1;
    }
}

void kg_oom(kg_diag *d)
{
    if (d->oom)
        return;
    kg_error(d, (kg_loc){d->file, 1, 1}, "out of memory");
    d->oom = 1;
}

static size_t mark_slot(const kg_mark *m, size_t cap, const char *key)
{
    size_t i = ((uintptr_t)key >> 4) * 2654435761u & (cap - 1);
    while (m[i].key && m[i].key != key)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow_marks(kg_diag *d)
{
    size_t cap = d->mcap ? d->mcap * 2 : 256;
    kg_mark *m = calloc(cap, sizeof *m);
    if (!m)
        return -1;
    for (size_t i = 0; i < d->mcap; i++)
        if (d->marks[i].key)
            m[mark_slot(m, cap, d->marks[i].key)] = d->marks[i];
    free(d->marks);
    d->marks = m;
    d->mcap = cap;
    return 0;
}

void kg_mark_loc(kg_diag *d, const char *key, kg_loc loc)
{
    if (2 * (d->nmarks + 1) > d->mcap && grow_marks(d) < 0)
        return; /* messages fall back to a nearby position */
    kg_mark *m = &d->marks[mark_slot(d->marks, d->mcap, key)];
    d->nmarks += !m->key;
    *m = (kg_mark){key, loc};
}

kg_loc kg_where(const kg_diag *d, const char *key, kg_loc fallback)
{
    if (!d->mcap || !key)
        return fallback;
    const kg_mark *m = &d->marks[mark_slot(d->marks, d->mcap, key)];
    return m->key ? m->loc : fallback;
}

static int note_cmp(const void *a, const void *b)
{
    const kg_note *x = a, *y = b;
    if (x->loc.line != y->loc.line)
        return x->loc.line < y->loc.line ? -1 : 1;
    if (x->loc.col != y->loc.col)
        return x->loc.col < y->loc.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int kg_diag_finish(kg_diag *d)
{
    if (d->nnotes)
        qsort(d->notes, d->nnotes, sizeof *d->notes, note_cmp);
    for (size_t i = 0; i < d->nnotes; i++) {
        print_note(d, d->notes[i].loc, d->notes[i].msg);
        free(d->notes[i].msg);
    }
    if (d->out && d->count >= KG_MAX_ERRORS)
        fprintf(d->out, "%s: error: too many errors (%d), stopping\n",
                d->file, d->count);
    free(d->notes);
    free(d->marks);
    d->notes = NULL;
    d->marks = NULL;
    d->nnotes = d->cap = d->nmarks = d->mcap = 0;
    return d->count;
}
