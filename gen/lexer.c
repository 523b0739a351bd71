/*
 * gen/lexer.c - tokens of the schema language.
 *
 * Identifiers, decimal and hexadecimal integers, single-character
 * punctuation, and comments in both C forms.  `[[` and `]]` are two
 * bracket tokens each (as in C23), which keeps `x[N]]` unambiguous; the
 * parser pairs them.  Columns count bytes from 1.
 */
#include "front.h"

#include <limits.h>
#include <string.h>

void kg_lex_init(kg_lexer *lx, kg_diag *d)
{
    memset(lx, 0, sizeof *lx);
    lx->diag = d;
    lx->line = 1;
}

static int at(const kg_lexer *lx, size_t off)
{
    size_t i = lx->pos + off;
    return i < lx->diag->len ? (unsigned char)lx->diag->src[i] : -1;
}

static kg_loc here(const kg_lexer *lx)
{
    size_t col = lx->pos - lx->line_start + 1;
    return (kg_loc){lx->diag->file, lx->line,
                    col < INT_MAX / 2 ? (int)col : INT_MAX / 2};
}

static void advance(kg_lexer *lx)
{
    if (at(lx, 0) == '\n') {
        lx->line++;
        lx->line_start = lx->pos + 1;
    }
    lx->pos++;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static int is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c);
}

static int hex_value(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* @return 0, or -1 after reporting an unterminated block comment */
static int skip_block_comment(kg_lexer *lx)
{
    kg_loc start = here(lx);
    advance(lx);
    advance(lx);
    while (at(lx, 0) >= 0) {
        if (at(lx, 0) == '*' && at(lx, 1) == '/') {
            advance(lx);
            advance(lx);
            return 0;
        }
        advance(lx);
    }
    kg_error(lx->diag, start, "unterminated /* comment");
    return -1;
}

/* @return 0 at a token, -1 at the end of input */
static int skip_blanks(kg_lexer *lx)
{
    for (;;) {
        int c = at(lx, 0);
        if (is_space(c)) {
            advance(lx);
        } else if (c == '/' && at(lx, 1) == '/') {
            while (at(lx, 0) >= 0 && at(lx, 0) != '\n')
                advance(lx);
        } else if (c == '/' && at(lx, 1) == '*') {
            if (skip_block_comment(lx) < 0)
                return -1;
        } else {
            return c < 0 ? -1 : 0;
        }
    }
}

/* Accumulate one digit, saturating: the caller reports the overflow. */
static uint64_t add_digit(uint64_t v, unsigned base, int digit, int *over)
{
    if (v > (UINT64_MAX - (uint64_t)digit) / base) {
        *over = 1;
        return UINT64_MAX;
    }
    return v * base + (uint64_t)digit;
}

static void lex_number(kg_lexer *lx, kg_token *t)
{
    int over = 0, hex = at(lx, 0) == '0' && (at(lx, 1) | 0x20) == 'x';
    int leading_zero = at(lx, 0) == '0' && is_digit(at(lx, 1));
    size_t digits = 0;
    if (hex) {
        advance(lx);
        advance(lx);
        for (int h; (h = hex_value(at(lx, 0))) >= 0; digits++, advance(lx))
            t->value = add_digit(t->value, 16, h, &over);
    } else {
        for (; is_digit(at(lx, 0)); digits++, advance(lx))
            t->value = add_digit(t->value, 10, at(lx, 0) - '0', &over);
    }
    int suffix = is_ident_char(at(lx, 0));
    while (is_ident_char(at(lx, 0)))
        advance(lx);
    t->len = lx->pos - (size_t)(t->text - lx->diag->src);
    t->bad = 1;
    if (hex && digits == 0)
        kg_error(lx->diag, t->loc, "expected hexadecimal digits after '0x'");
    else if (suffix)
        kg_error(lx->diag, t->loc, "invalid integer '%.*s'",
                 (int)(t->len > 40 ? 40 : t->len), t->text);
    else if (leading_zero)
        kg_error(lx->diag, t->loc,
                 "integer with a leading zero: octal is not supported");
    else if (over)
        kg_error(lx->diag, t->loc, "integer is too large");
    else
        t->bad = 0;
}

static kg_tok_kind punct_kind(int c)
{
    switch (c) {
    case ';': return KG_TOK_SEMI;
    case ',': return KG_TOK_COMMA;
    case '{': return KG_TOK_LBRACE;
    case '}': return KG_TOK_RBRACE;
    case '(': return KG_TOK_LPAREN;
    case ')': return KG_TOK_RPAREN;
    case '[': return KG_TOK_LBRACKET;
    case ']': return KG_TOK_RBRACKET;
    case '=': return KG_TOK_EQUALS;
    case '*': return KG_TOK_STAR;
    case '-': return KG_TOK_MINUS;
    default: return KG_TOK_EOF;
    }
}

static int starts_token(kg_lexer *lx)
{
    int c = at(lx, 0);
    return c < 0 || is_space(c) || is_ident_char(c) ||
           punct_kind(c) != KG_TOK_EOF ||
           (c == '/' && (at(lx, 1) == '/' || at(lx, 1) == '*'));
}

/* One error for a whole run of stray bytes (a UTF-8 letter is several). */
static void skip_stray(kg_lexer *lx)
{
    kg_loc loc = here(lx);
    int c = at(lx, 0);
    if (c > 0x20 && c < 0x7F)
        kg_error(lx->diag, loc, "unexpected character '%c'", c);
    else
        kg_error(lx->diag, loc,
                 "unexpected byte 0x%02X: only ASCII is allowed outside "
                 "comments", (unsigned)c);
    do
        advance(lx);
    while (!starts_token(lx));
}

kg_token kg_lex_next(kg_lexer *lx)
{
    kg_token t;
    for (;;) {
        memset(&t, 0, sizeof t);
        if (kg_diag_full(lx->diag) || skip_blanks(lx) < 0) {
            t.kind = KG_TOK_EOF;
            t.loc = here(lx);
            return t;
        }
        t.loc = here(lx);
        t.text = lx->diag->src + lx->pos;
        int c = at(lx, 0);
        if (is_ident_start(c)) {
            while (is_ident_char(at(lx, 0)))
                advance(lx);
            t.kind = KG_TOK_IDENT;
            t.len = lx->pos - (size_t)(t.text - lx->diag->src);
            return t;
        }
        if (is_digit(c)) {
            t.kind = KG_TOK_INT;
            lex_number(lx, &t);
            return t;
        }
        if ((t.kind = punct_kind(c)) != KG_TOK_EOF) {
            advance(lx);
            t.len = 1;
            return t;
        }
        skip_stray(lx);
    }
}

void kg_tok_describe(const kg_token *t, char *buf, size_t size)
{
    if (t->kind == KG_TOK_EOF)
        snprintf(buf, size, "end of file");
    else if (t->len > 32)
        snprintf(buf, size, "'%.32s...'", t->text);
    else
        snprintf(buf, size, "'%.*s'", (int)t->len, t->text);
}
