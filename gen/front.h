/*
 * gen/front.h - private interfaces of the kivis-gen front end: the
 * diagnostics sink, the lexer, the parser and the checker.  Only
 * kg_compile and kg_schema_free (model.h) are public.
 */
#ifndef KIVIS_GEN_FRONT_H
#define KIVIS_GEN_FRONT_H

#include "model.h"

#include <stdint.h>
#include <stdio.h>

/* Stop after this many errors: past it they are mostly noise. */
#define KG_MAX_ERRORS 100

/* Limits of the schema language, see docs/schema.md. */
#define KG_MAX_TABLES 0x7FFEu  /* table ids are 0 .. 0x7FFD */
#define KG_MAX_INDEXES 0x7FFDu /* index slots are id + 2 <= 0x7FFF */
#define KG_MAX_ARRAY 65535u    /* N of T name[N] and char name[N] */
#define KG_MAX_NESTING 16      /* embedded struct / key nesting depth (the
                                  runtime's descriptor check allows 16) */
#define KG_MAX_TYPE_BYTES (16u << 20) /* a struct or record's C size, about */

typedef struct kg_note kg_note;
typedef struct kg_mark kg_mark;

struct kg_diag {
    const char *file;
    const char *src;
    size_t len;
    FILE *out;        /* NULL: count only */
    int count;        /* errors reported */
    int lost_decls;   /* a declaration was dropped by a syntax error */
    int oom;
    kg_note *notes;   /* buffered, printed sorted by position */
    size_t nnotes, cap;
    kg_mark *marks;   /* positions the model has no room for, see kg_mark */
    size_t nmarks, mcap;
};

void kg_diag_init(kg_diag *d, const char *file, const char *src, size_t len,
                  void *err);
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void kg_error(kg_diag *d, kg_loc loc, const char *fmt, ...);
void kg_oom(kg_diag *d);
int kg_diag_full(const kg_diag *d);
/*
 * Remember where the model string `key` (a type name as written, an
 * enumerator) appears, for messages about it; kg_where finds it again,
 * or returns `fallback`.  Keys are the strings' addresses: they never move.
 */
void kg_mark_loc(kg_diag *d, const char *key, kg_loc loc);
kg_loc kg_where(const kg_diag *d, const char *key, kg_loc fallback);
/* Print every buffered error in source order; @return the error count. */
int kg_diag_finish(kg_diag *d);

typedef enum kg_tok_kind {
    KG_TOK_EOF,
    KG_TOK_IDENT,
    KG_TOK_INT,
    KG_TOK_SEMI,
    KG_TOK_COMMA,
    KG_TOK_LBRACE,
    KG_TOK_RBRACE,
    KG_TOK_LPAREN,
    KG_TOK_RPAREN,
    KG_TOK_LBRACKET,
    KG_TOK_RBRACKET,
    KG_TOK_EQUALS,
    KG_TOK_STAR,
    KG_TOK_MINUS
} kg_tok_kind;

typedef struct kg_token {
    kg_tok_kind kind;
    kg_loc loc;
    const char *text; /* into the source */
    size_t len;
    uint64_t value;   /* KG_TOK_INT */
    int bad;          /* KG_TOK_INT already reported as malformed */
} kg_token;

typedef struct kg_lexer {
    kg_diag *diag;
    size_t pos;
    int line;
    size_t line_start;
} kg_lexer;

void kg_lex_init(kg_lexer *lx, kg_diag *d);
kg_token kg_lex_next(kg_lexer *lx);
/* "';'", "'name'" or "end of file", for messages */
void kg_tok_describe(const kg_token *t, char *buf, size_t size);

/* Parse the whole source; NULL only when out of memory. */
kg_schema *kg_parse(kg_diag *d);
/* Resolve and check a parsed schema, reporting to d. */
void kg_check(kg_schema *s, kg_diag *d);

#endif /* KIVIS_GEN_FRONT_H */
