/* Strict UTF-8 validation (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
#include "codec_int.h"

#define ASCII_MASK UINT64_C(0x8080808080808080)

/* Length of the sequence led by c (0 if c cannot lead one) and the range
 * its second byte must fall in, which is where the forbidden forms show. */
static size_t utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            *lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            *hi = 0x9F; /* surrogates */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            *lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            *hi = 0x8F; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* A word of 8 ASCII bytes, none of them NUL when nul_ok is false (the
 * classic test for a zero byte: only one borrows into its high bit). */
static bool ascii_word(uint64_t w, bool nul_ok)
{
    if (w & ASCII_MASK)
        return false;
    return nul_ok || !((w - UINT64_C(0x0101010101010101)) & ASCII_MASK);
}

/* Whether n >= 8 bytes are all ASCII, read a word at a time; the last word
 * overlaps the one before it rather than leaving a tail to loop over. */
static bool all_ascii(const uint8_t *p, size_t n, bool nul_ok)
{
    uint64_t w;
    for (size_t i = 0; i + 8 < n; i += 8)
        if (memcpy(&w, p + i, 8), !ascii_word(w, nul_ok))
            return false;
    memcpy(&w, p + n - 8, 8);
    return ascii_word(w, nul_ok);
}

static int utf8_scan(const uint8_t *p, size_t n, bool nul_ok)
{
    if (n == 0)
        return KIVIS_OK; /* p may be NULL */
    if (n >= 8 && all_ascii(p, n, nul_ok))
        return KIVIS_OK; /* most text; the rest is checked byte by byte */
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), ascii_word(w, nul_ok))) {
            p += 8;
            continue;
        }
        if (*p < 0x80) {
            if (*p == 0 && !nul_ok)
                return KIVIS_EUTF8;
            p++;
            continue;
        }
        uint8_t lo, hi;
        size_t len = utf8_lead(*p, &lo, &hi);
        if (len == 0 || (size_t)(end - p) < len || p[1] < lo || p[1] > hi)
            return KIVIS_EUTF8;
        for (size_t i = 2; i < len; i++)
            if ((p[i] & 0xC0) != 0x80)
                return KIVIS_EUTF8;
        p += len;
    }
    return KIVIS_OK;
}

int kivis__utf8_check(const uint8_t *p, size_t n)
{
    return utf8_scan(p, n, true);
}

int kivis__utf8_check_text(const uint8_t *p, size_t n)
{
    return utf8_scan(p, n, false);
}

int kivis_dec_text(const uint8_t *p, size_t n)
{
    return utf8_scan(p, n, false) ? KIVIS_ECORRUPT : KIVIS_OK;
}

/* Copy the n < 8 bytes while each is ASCII and not NUL (c - 1 wraps for
 * NUL).  Whether they all were. */
static bool copy_short_ascii(char *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)(s[i] - 1) >= 0x7F)
            return false;
        d[i] = (char)s[i];
    }
    return true;
}

/* Copy n >= 8 bytes a word at a time while each word is ASCII without
 * NUL, the last word overlapping the one before as in all_ascii.  Whether
 * they all were. */
static bool copy_ascii_words(char *d, const uint8_t *s, size_t n)
{
    uint64_t w;
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&w, s + i, 8);
        if (!ascii_word(w, false))
            return false;
        memcpy(d + i, &w, 8);
    }
    memcpy(&w, s + n - 8, 8);
    if (!ascii_word(w, false))
        return false;
    memcpy(d + n - 8, &w, 8);
    return true;
}

int kivis_dec_text_copy(char *d, const uint8_t *s, size_t n)
{
    if (n < 8 ? copy_short_ascii(d, s, n) : copy_ascii_words(d, s, n))
        return KIVIS_OK; /* most text: checked as it was copied */
    if (utf8_scan(s, n, false))
        return KIVIS_ECORRUPT;
    memcpy(d, s, n);
    return KIVIS_OK;
}
