/* SPDX-License-Identifier: MIT */
/*
 * kivis/exact.h - compile-time checks of lookup arguments, for the headers
 * kivis-gen writes (C11 and later; C++ has no _Generic, and generated
 * headers leave these out under __cplusplus).
 *
 * A generated lookup such as user_by_age(db, value, flags, cur) takes its
 * value as the field's C type, and C converts silently into it: a double
 * or a uint64_t would be cut to a uint32_t and find another record.  Each
 * generated lookup is therefore also a macro of the same name that passes
 * the value through one of these checks.  A check is a static assertion on
 * the argument's type (nothing is evaluated twice, nothing runs) and yields
 * the argument unchanged.  What each accepts is what converts without
 * loss, plus `int`, the type of integer constants and enum constants:
 *
 *   KIVIS_EXACT_UINT_(v, n)    an unsigned integer of at most n bytes, int
 *   KIVIS_EXACT_SINT_(v, n)    a signed integer of at most n bytes, an
 *                              unsigned one of fewer, int
 *   KIVIS_EXACT_BOOL_(v)       bool, int
 *   KIVIS_EXACT_FLOAT_(v, n)   float (n = 4); float or double (n = 8); int
 *   KIVIS_EXACT_ENUM_(v)       an integer no wider than int (an enum value
 *                              or constant; undeclared values are refused
 *                              at run time with KIVIS_ERANGE)
 *   KIVIS_EXACT_ARRAY_(v, T, n) an array of exactly n elements of T (not
 *                              a pointer, not a shorter array)
 *
 * A negative int passed for an unsigned field still converts, as do int
 * constants too large for a narrow field: C gives no compile-time handle on
 * an int's value.  docs/api.md lists these.
 */
#ifndef KIVIS_EXACT_H
#define KIVIS_EXACT_H

#ifndef __cplusplus

/* 1 when v's type is one of the kind, 0 otherwise: integer constant
 * expressions, since _Generic does not evaluate v. */
#define KIVIS_IS_UNSIGNED_(v)                                                  \
    _Generic((v), _Bool: 1, unsigned char: 1, unsigned short: 1,              \
             unsigned int: 1, unsigned long: 1, unsigned long long: 1,        \
             default: 0)
#define KIVIS_IS_SIGNED_(v)                                                    \
    _Generic((v), signed char: 1, short: 1, int: 1, long: 1, long long: 1,    \
             default: 0)
#define KIVIS_IS_INT_(v) _Generic((v), int: 1, default: 0)

/* v, after a static assertion that cond holds (msg names the call). */
#define KIVIS_REQUIRE_(cond, msg, v)                                           \
    ((void)sizeof(struct { _Static_assert(cond, msg); int kivis_; }), (v))

#define KIVIS_EXACT_UINT_(v, n, msg)                                           \
    KIVIS_REQUIRE_(KIVIS_IS_INT_(v) ||                                         \
                       (KIVIS_IS_UNSIGNED_(v) && sizeof(v) <= (n)),            \
                   msg, v)
#define KIVIS_EXACT_SINT_(v, n, msg)                                           \
    KIVIS_REQUIRE_(KIVIS_IS_INT_(v) ||                                         \
                       (KIVIS_IS_SIGNED_(v) && sizeof(v) <= (n)) ||            \
                       (KIVIS_IS_UNSIGNED_(v) && sizeof(v) < (n)),             \
                   msg, v)
#define KIVIS_EXACT_BOOL_(v, msg)                                              \
    KIVIS_REQUIRE_(_Generic((v), _Bool: 1, int: 1, default: 0), msg, v)
#define KIVIS_EXACT_FLOAT_(v, n, msg)                                          \
    KIVIS_REQUIRE_(_Generic((v), float: 1, int: 1,                             \
                            double: (n) == 8, default: 0),                     \
                   msg, v)
#define KIVIS_EXACT_ENUM_(v, msg)                                              \
    KIVIS_REQUIRE_((KIVIS_IS_SIGNED_(v) || KIVIS_IS_UNSIGNED_(v)) &&           \
                       sizeof(v) <= sizeof(int),                               \
                   msg, v)
#define KIVIS_EXACT_ARRAY_(v, T, n, msg)                                       \
    KIVIS_REQUIRE_(_Generic(&(v), T(*)[n]: 1, const T(*)[n]: 1, default: 0),  \
                   msg, v)

#endif /* __cplusplus */

#endif /* KIVIS_EXACT_H */
