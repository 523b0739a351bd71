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

int kivis__utf8_check(const uint8_t *p, size_t n)
{
    if (n == 0)
        return KIVIS_OK; /* p may be NULL */
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !(w & ASCII_MASK))) {
            p += 8;
            continue;
        }
        if (*p < 0x80) {
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
