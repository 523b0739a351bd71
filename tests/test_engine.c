/*
 * The record engine over the memory backend (wrapped in the faulty backend
 * so that any test can inject failures): keys of every strategy, indexes,
 * scans, transactions, the stored schema, and every bad input.
 */
#include "testutil.h"
#include "pets_schema.h"

#include <kivis.h>
#include <kivis/faulty.h>
#include <kivis/memory.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a second schema: string keys, unique and second indexes ---------- */

typedef struct point { int32_t x, y; } point;
typedef struct account_key { char *login; } account_key;
typedef struct account {
    char *login;     /* [[key]] */
    char *email;     /* [[unique]] [[index]] */
    int32_t balance; /* [[index]] */
    double score;
    bool active;
    uint8_t tags[4];
    point pos;
} account;

#define F(st, m, k, cnt, sz, sub, fl) {#m, k, cnt, offsetof(st, m), sz, sub, NULL, fl}
static const kivis_field point_fields[] = {
    F(point, x, KIVIS_I32, 0, 4, NULL, 0), F(point, y, KIVIS_I32, 0, 4, NULL, 0)};
static const kivis_struct_desc point_desc = {"point", sizeof(point), 2, point_fields, NULL};
static const kivis_field account_key_fields[] = {
    F(account_key, login, KIVIS_STRING, 0, sizeof(char *), NULL, 0)};
static const kivis_struct_desc account_key_desc = {"account_key", sizeof(account_key),
                                                   1, account_key_fields, NULL};
static const kivis_field account_fields[] = {
    F(account, login, KIVIS_STRING, 0, sizeof(char *), NULL, KIVIS_FIELD_KEY),
    F(account, email, KIVIS_STRING, 0, sizeof(char *), NULL, 0),
    F(account, balance, KIVIS_I32, 0, 4, NULL, 0),
    F(account, score, KIVIS_F64, 0, 8, NULL, 0),
    F(account, active, KIVIS_BOOL, 0, sizeof(bool), NULL, 0),
    F(account, tags, KIVIS_U8, 4, 1, NULL, 0),
    F(account, pos, KIVIS_STRUCT, 0, sizeof(point), &point_desc, 0),
};
static const kivis_struct_desc account_desc = {"account", sizeof(account), 7,
                                               account_fields, NULL};
static const uint32_t account_key_map[] = {0};
static const kivis_index_desc account_indexes[] = {
    {"email", 1, KIVIS_INDEX_UNIQUE}, {"balance", 2, 0}};
static const kivis_table_desc bank_tables[] = {
    {"account", &account_desc, &account_key_desc, KIVIS_KEY_FIELDS, account_key_map,
     NULL, 2, account_indexes}};
static const kivis_schema_desc bank_schema = {"bank", 1, bank_tables, 0, NULL, 0, NULL};
enum { ACCOUNT_BY_EMAIL = 0, ACCOUNT_BY_BALANCE = 1 };

/* ---- a third schema: arrays of strings and of nested structs ------------ */

typedef struct label { char *text; bool on; } label;
typedef struct note_key { uint64_t id; } note_key;
typedef struct note {
    char *tags[3];
    label labels[2];
} note;

static const kivis_field label_fields[] = {
    F(label, text, KIVIS_STRING, 0, sizeof(char *), NULL, 0),
    F(label, on, KIVIS_BOOL, 0, sizeof(bool), NULL, 0)};
static const kivis_struct_desc label_desc = {"label", sizeof(label), 2, label_fields, NULL};
static const kivis_field note_key_fields[] = {
    F(note_key, id, KIVIS_U64, 0, 8, NULL, 0)};
static const kivis_struct_desc note_key_desc = {"note_key", sizeof(note_key), 1,
                                                note_key_fields, NULL};
static const kivis_field note_fields[] = {
    F(note, tags, KIVIS_STRING, 3, sizeof(char *), NULL, 0),
    F(note, labels, KIVIS_STRUCT, 2, sizeof(label), &label_desc, 0)};
static const kivis_struct_desc note_desc = {"note", sizeof(note), 2, note_fields, NULL};
static const kivis_table_desc notes_tables[] = {
    {"note", &note_desc, &note_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 0, NULL}};
static const kivis_schema_desc notes_schema = {"notes", 1, notes_tables, 0, NULL, 0, NULL};

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
    kt_alloc a;
    kivis_storage *st; /* faulty over memory */
    kivis_db *db;
} fx;

static fx *fx_new(const kivis_schema_desc *schema, size_t max_key)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_alloc_init(&f->a);
    kivis_memory_options mo = {.allocator = &f->a.iface, .max_key_size = max_key};
    kivis_storage *mem;
    assert_int_equal(kivis_memory_open(&mo, &mem), KIVIS_OK);
    assert_int_equal(kivis_faulty_open(mem, &f->a.iface, &f->st), KIVIS_OK);
    kivis_options o = {&f->a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, schema, &o, &f->db), KIVIS_OK);
    return f;
}

static void fx_reopen(fx *f, const kivis_schema_desc *schema)
{
    kivis_close(f->db);
    kivis_options o = {&f->a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, schema, &o, &f->db), KIVIS_OK);
}

static void fx_free(fx *f)
{
    kivis_close(f->db);
    kivis_storage_close(f->st);
    assert_int_equal(f->a.live_blocks, 0); /* no leak */
    free(f);
}

static int setup_pets(void **state)
{
    *state = fx_new(&pets_schema, 0);
    return 0;
}

static int setup_bank(void **state)
{
    *state = fx_new(&bank_schema, 0);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static user_key put_user(kivis_db *db, const char *name, const char *email,
                         uint32_t age)
{
    user u = {(char *)name, (char *)email, age};
    user_key k;
    assert_int_equal(kivis_put(db, PETS_USER, &u, &k), KIVIS_OK);
    return k;
}

static void put_account(kivis_db *db, const char *login, const char *email,
                        int32_t balance)
{
    account a = {(char *)login, (char *)email, balance, balance * 0.5, true,
                 {1, 2, 3, 4}, {balance, -balance}};
    assert_int_equal(kivis_put(db, 0, &a, NULL), KIVIS_OK);
}

/* Collect the ids an index or key scan yields, for table `t` with u64 keys. */
static size_t scan_ids(kivis_db *db, const kivis_query *q, uint64_t *ids, size_t max)
{
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, q, &s), KIVIS_OK);
    size_t n = 0;
    user_key k;
    int rc;
    while ((rc = kivis_scan_next(s, &k, NULL)) == KIVIS_OK) {
        assert_true(n < max);
        ids[n++] = k.id;
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_scan_close(s);
    return n;
}

static size_t count_by_name(kivis_db *db, const char *name)
{
    uint64_t ids[64];
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL, 0, 0};
    return scan_ids(db, &q, ids, 64);
}

/* ---- keys ------------------------------------------------------------------ */

static void test_auto_increment(void **state)
{
    fx *f = *state;
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(put_user(f->db, "ann", "a@x", 30).id, i);
    user u;
    user_key k = {2};
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "ann");
    assert_string_equal(u.email, "a@x");
    assert_int_equal(u.age, 30);
    kivis_record_clear(f->db, PETS_USER, &u);
    assert_null(u.name);
}

static void test_auto_increment_continues_by_reverse_seek(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 500; i++)
        put_user(f->db, "bob", "b@x", (uint32_t)i);
    user_key k = {200};
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_OK);
    fx_reopen(f, &pets_schema);
    unsigned long reads = kivis_faulty_count(f->st, KIVIS_FAULT_READ);
    assert_int_equal(put_user(f->db, "bob", "b@x", 1).id, 501);
    /* One reverse seek, one read of the (absent) old record: no scan. */
    assert_true(kivis_faulty_count(f->st, KIVIS_FAULT_READ) - reads < 8);
}

static void test_composite_key(void **state)
{
    fx *f = *state;
    toy t = {TOY_MOUSE, 7};
    toy_key k;
    assert_int_equal(kivis_put(f->db, PETS_TOY, &t, &k), KIVIS_OK);
    assert_int_equal(k.kind, TOY_MOUSE);
    assert_int_equal(k.color, 7);
    toy got;
    assert_int_equal(kivis_get(f->db, PETS_TOY, &k, &got), KIVIS_OK);
    assert_int_equal(got.kind, TOY_MOUSE);
    assert_int_equal(got.color, 7);
    toy_key other = {TOY_BALL, 7};
    assert_int_equal(kivis_get(f->db, PETS_TOY, &other, &got), KIVIS_NOTFOUND);
    /* An explicit key must match the record's own key fields. */
    assert_int_equal(kivis_insert(f->db, PETS_TOY, &other, &t), KIVIS_EINVAL);
    assert_int_equal(kivis_insert(f->db, PETS_TOY, &k, &t), KIVIS_OK);
}

static void test_derived_key(void **state)
{
    fx *f = *state;
    uint8_t bytes[] = {0, 1, 2, 0, 255};
    blob b = {{bytes, sizeof bytes}};
    blob_key k, want;
    blob_derive_key(&b, &want);
    assert_int_equal(kivis_put(f->db, PETS_BLOB, &b, &k), KIVIS_OK);
    assert_int_equal(k.hash, want.hash);
    blob got;
    assert_int_equal(kivis_get(f->db, PETS_BLOB, &k, &got), KIVIS_OK);
    assert_int_equal(got.data.len, sizeof bytes);
    assert_memory_equal(got.data.data, bytes, sizeof bytes);
    kivis_record_clear(f->db, PETS_BLOB, &got);
    /* Same content, same key: a second put overwrites. */
    assert_int_equal(kivis_put(f->db, PETS_BLOB, &b, &k), KIVIS_OK);
    kivis_query q = {PETS_BLOB, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    uint64_t ids[4];
    assert_int_equal(scan_ids(f->db, &q, ids, 4), 1);
}

static void test_foreign_key_and_index_on_key_type(void **state)
{
    fx *f = *state;
    user_key owner = put_user(f->db, "carol", "c@x", 41);
    pet p = {"rex", owner, {TOY_BALL, 3}, false, 0};
    pet_key pk;
    assert_int_equal(kivis_put(f->db, PETS_PET, &p, &pk), KIVIS_OK);
    pet q2 = {"tom", owner, {TOY_MOUSE, 1}, false, 0};
    assert_int_equal(kivis_put(f->db, PETS_PET, &q2, NULL), KIVIS_OK);
    pet got;
    assert_int_equal(kivis_get(f->db, PETS_PET, &pk, &got), KIVIS_OK);
    assert_string_equal(got.name, "rex");
    user u;
    assert_int_equal(kivis_get(f->db, PETS_USER, &got.owner, &u), KIVIS_OK);
    assert_string_equal(u.name, "carol");
    kivis_record_clear(f->db, PETS_USER, &u);
    toy_key ball = {TOY_BALL, 3};
    kivis_query q = {PETS_PET, PET_BY_FAVOURITE_TOY, KIVIS_Q_EQ, &ball, NULL, NULL, 0, 0};
    uint64_t ids[4];
    assert_int_equal(scan_ids(f->db, &q, ids, 4), 1);
    assert_int_equal(ids[0], pk.id);
}

/* ---- indexes ----------------------------------------------------------- */

static void test_overwrite_leaves_no_stale_entries(void **state)
{
    fx *f = *state;
    user_key k = put_user(f->db, "dave", "d@x", 20);
    put_user(f->db, "erin", "e@x", 21);
    size_t entries = kt_count(f->st);
    user u = {"zed", "d@x", 22};
    assert_int_equal(kivis_insert(f->db, PETS_USER, &k, &u), KIVIS_OK);
    assert_int_equal(count_by_name(f->db, "dave"), 0);
    assert_int_equal(count_by_name(f->db, "zed"), 1);
    assert_int_equal(kt_count(f->st), entries);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_OK);
    assert_int_equal(count_by_name(f->db, "zed"), 0);
    assert_int_equal(kt_count(f->st), entries - 2);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_NOTFOUND);
}

static void test_index_exact_prefix_range(void **state)
{
    fx *f = *state;
    const char *names[] = {"al", "bea", "bee", "ben", "bo", "cy", "bee"};
    for (int i = 0; i < 7; i++)
        put_user(f->db, names[i], "m@x", (uint32_t)i);
    assert_int_equal(count_by_name(f->db, "bee"), 2);
    uint64_t ids[16];
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_PREFIX, NULL, NULL, "be", 2, 0};
    assert_int_equal(scan_ids(f->db, &q, ids, 16), 4); /* bea bee bee ben */
    assert_int_equal(ids[0], 2);
    const char *lo = "bee", *hi = "bo";
    kivis_query r = {PETS_USER, USER_BY_NAME, KIVIS_Q_RANGE, &lo, &hi, NULL, 0, 0};
    assert_int_equal(scan_ids(f->db, &r, ids, 16), 3); /* bee bee ben */
    r.flags = KIVIS_REVERSE;
    assert_int_equal(scan_ids(f->db, &r, ids, 16), 3);
    assert_int_equal(ids[0], 4); /* ben first */
    /* Index scans can fetch records too. */
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    user u;
    user_key k;
    assert_int_equal(kivis_scan_next(s, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "bea");
    kivis_record_clear(f->db, PETS_USER, &u);
    kivis_scan_close(s);
}

static void test_unique_index(void **state)
{
    fx *f = *state;
    put_account(f->db, "ann", "ann@x", 10);
    put_account(f->db, "bob", "bob@x", 20);
    char *before = kt_dump(f->st);
    account dup = {"carl", "ann@x", 5, 0, false, {0}, {0, 0}};
    assert_int_equal(kivis_put(f->db, 0, &dup, NULL), KIVIS_ECONSTRAINT);
    assert_non_null(strstr(kivis_errmsg(f->db), "email"));
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    /* Overwriting a record with its own unique value is fine. */
    put_account(f->db, "ann", "ann@x", 11);
    /* In a transaction the violation writes nothing and does not poison. */
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, 0, &dup, NULL), KIVIS_ECONSTRAINT);
    put_account(f->db, "dora", "dora@x", 30);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    account_key k = {"dora"};
    account got;
    assert_int_equal(kivis_get(f->db, 0, &k, &got), KIVIS_OK);
    kivis_record_clear(f->db, 0, &got);
    free(before);
}

static void test_all_field_types_round_trip(void **state)
{
    fx *f = *state;
    account a = {"ünïcode", "u@x", -7, -0.0, true, {9, 8, 7, 6}, {-3, 4}};
    assert_int_equal(kivis_put(f->db, 0, &a, NULL), KIVIS_OK);
    account_key k = {"ünïcode"};
    account got;
    assert_int_equal(kivis_get(f->db, 0, &k, &got), KIVIS_OK);
    assert_string_equal(got.login, a.login);
    assert_string_equal(got.email, a.email);
    assert_int_equal(got.balance, -7);
    assert_true(got.score == 0.0 && signbit(got.score));
    assert_true(got.active);
    assert_memory_equal(got.tags, a.tags, 4);
    assert_int_equal(got.pos.x, -3);
    assert_int_equal(got.pos.y, 4);
    kivis_record_clear(f->db, 0, &got);
}

/* ---- scans ------------------------------------------------------------- */

static void test_scans_by_key(void **state)
{
    fx *f = *state;
    const char *logins[] = {"dan", "al", "ali", "bo", "alf", "a"};
    for (int i = 0; i < 6; i++)
        put_account(f->db, logins[i], logins[i], i);
    kivis_query q = {0, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    const char *fwd[] = {"a", "al", "alf", "ali", "bo", "dan"};
    for (int rev = 0; rev < 2; rev++) {
        q.flags = rev ? KIVIS_REVERSE : 0;
        kivis_scan *s;
        assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
        account_key k;
        account rec;
        for (int i = 0; i < 6; i++) {
            assert_int_equal(kivis_scan_next(s, &k, &rec), KIVIS_OK);
            assert_string_equal(k.login, fwd[rev ? 5 - i : i]);
            assert_string_equal(rec.login, k.login);
            kivis_key_clear(f->db, 0, &k);
            kivis_record_clear(f->db, 0, &rec);
        }
        assert_int_equal(kivis_scan_next(s, &k, &rec), KIVIS_NOTFOUND);
        kivis_scan_close(s);
    }
    /* Prefix "al" finds al, alf, ali; a range [alf, bo) finds alf, ali. */
    kivis_query p = {0, -1, KIVIS_Q_PREFIX, NULL, NULL, "al", 2, 0};
    kivis_scan *s;
    int n = 0;
    assert_int_equal(kivis_scan_open(f->db, &p, &s), KIVIS_OK);
    while (kivis_scan_next(s, NULL, NULL) == KIVIS_OK)
        n++;
    kivis_scan_close(s);
    assert_int_equal(n, 3);
    account_key lo = {"alf"}, hi = {"bo"};
    kivis_query r = {0, -1, KIVIS_Q_RANGE, &lo, &hi, NULL, 0, 0};
    n = 0;
    assert_int_equal(kivis_scan_open(f->db, &r, &s), KIVIS_OK);
    while (kivis_scan_next(s, NULL, NULL) == KIVIS_OK)
        n++;
    kivis_scan_close(s);
    assert_int_equal(n, 2);
    /* A prefix query on a non-string key field is refused. */
    kivis_query bad = {0, ACCOUNT_BY_BALANCE, KIVIS_Q_PREFIX, NULL, NULL, "x", 1, 0};
    assert_int_equal(kivis_scan_open(f->db, &bad, &s), KIVIS_EINVAL);
    assert_null(s);
}

static void test_index_range_on_signed(void **state)
{
    fx *f = *state;
    int32_t balances[] = {-5, 3, -1, 0, 12, 3};
    char login[8];
    for (int i = 0; i < 6; i++) {
        snprintf(login, sizeof login, "u%d", i);
        put_account(f->db, login, login, balances[i]);
    }
    int32_t lo = -1, hi = 4;
    kivis_query q = {0, ACCOUNT_BY_BALANCE, KIVIS_Q_RANGE, &lo, &hi, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    account rec;
    int32_t seen[8];
    int n = 0;
    while (kivis_scan_next(s, NULL, &rec) == KIVIS_OK) {
        seen[n++] = rec.balance;
        kivis_record_clear(f->db, 0, &rec);
    }
    kivis_scan_close(s);
    assert_int_equal(n, 4);
    assert_int_equal(seen[0], -1);
    assert_int_equal(seen[1], 0);
    assert_int_equal(seen[2], 3);
    assert_int_equal(seen[3], 3);
}

/* ---- transactions --------------------------------------------------------- */

static void test_transaction_reads_own_writes_and_aborts(void **state)
{
    fx *f = *state;
    put_user(f->db, "pre", "p@x", 1);
    char *before = kt_dump(f->st);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_begin(f->db), KIVIS_EINVAL);
    user_key a = put_user(f->db, "tx", "t@x", 2);
    user_key b = put_user(f->db, "tx", "t@x", 3);
    assert_int_equal(a.id, 2);
    assert_int_equal(b.id, 3);
    assert_int_equal(count_by_name(f->db, "tx"), 2);
    user u;
    assert_int_equal(kivis_get(f->db, PETS_USER, &b, &u), KIVIS_OK);
    kivis_record_clear(f->db, PETS_USER, &u);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &a), KIVIS_OK);
    assert_int_equal(count_by_name(f->db, "tx"), 1);
    kivis_abort(f->db);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(kivis_commit(f->db), KIVIS_EINVAL);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    put_user(f->db, "tx", "t@x", 2);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(count_by_name(f->db, "tx"), 1);
    free(before);
}

static void test_error_poisons_transaction(void **state)
{
    fx *f = *state;
    char *before = kt_dump(f->st);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    put_user(f->db, "a", "a@x", 1);
    kivis_faulty_fail(f->st, KIVIS_FAULT_WRITE, 2, KIVIS_EIO);
    user u = {"b", "b@x", 2};
    assert_int_equal(kivis_put(f->db, PETS_USER, &u, NULL), KIVIS_EIO);
    assert_non_null(strstr(kivis_errmsg(f->db), "user"));
    assert_int_equal(kivis_put(f->db, PETS_USER, &u, NULL), KIVIS_EBADTXN);
    user_key k = {1};
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, &u), KIVIS_EBADTXN);
    assert_int_equal(kivis_commit(f->db), KIVIS_EBADTXN);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    put_user(f->db, "c", "c@x", 3); /* the handle works again */
}

static void test_scan_ends_with_its_transaction(void **state)
{
    fx *f = *state;
    put_user(f->db, "s1", "s@x", 1);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s, *t;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    put_user(f->db, "s2", "s@x", 2);
    /* A scan sees the transaction's writes made before it opened, and
     * visits only the keys there at its open. */
    assert_int_equal(kivis_scan_open(f->db, &q, &t), KIVIS_OK);
    user_key k;
    assert_int_equal(kivis_scan_next(t, &k, NULL), KIVIS_OK);
    assert_int_equal(kivis_scan_next(t, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, 2);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, 1);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_NOTFOUND);
    kivis_scan_close(t);
    kivis_abort(f->db);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_EINVAL);
    kivis_scan_close(s);
    /* A scan outside any transaction is its own reader. */
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    put_user(f->db, "s3", "s@x", 3);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_OK);
    kivis_scan_close(s);
}

/* ---- fault injection ------------------------------------------------------ */

/* The sweep: a transaction writing 3 records with 2 indexes each
 * fails at every write position in turn; the store never changes. */
static void test_fault_every_write_position_in_transaction(void **state)
{
    fx *f = *state;
    put_account(f->db, "old", "old@x", 1);
    char *before = kt_dump(f->st);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        kivis_faulty_fail(f->st, KIVIS_FAULT_WRITE, n, KIVIS_EIO);
        int rc = kivis_begin(f->db);
        const char *logins[] = {"x1", "x2", "old"};
        for (int i = 0; i < 3 && rc == KIVIS_OK; i++) {
            char email[16];
            snprintf(email, sizeof email, "%s@new", logins[i]);
            account a = {(char *)logins[i], email, 100 + i, 0, true, {0}, {0, 0}};
            rc = kivis_put(f->db, 0, &a, NULL);
        }
        if (rc == KIVIS_OK)
            rc = kivis_commit(f->db);
        else
            kivis_abort(f->db);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_EIO);
        char *after = kt_dump(f->st);
        assert_string_equal(before, after);
        free(after);
        failures++;
    }
    kivis_faulty_fail(f->st, KIVIS_FAULT_WRITE, 0, 0);
    /* 2 new records x 3 writes + an overwrite (2 index swaps + record) + commit */
    assert_true(failures >= 11);
    assert_int_equal(kt_count(f->st), 1 + 3 * 3); /* schema + 3 x (record, 2 entries) */
    free(before);
}

static void test_fault_every_write_position_in_overwrite(void **state)
{
    fx *f = *state;
    put_account(f->db, "ann", "ann@x", 10);
    account a = {"ann", "ann@y", 99, 1.5, false, {0}, {0, 0}};
    char *before = kt_dump(f->st);
    unsigned long n;
    for (n = 1;; n++) {
        kivis_faulty_fail(f->st, KIVIS_FAULT_WRITE, n, KIVIS_EIO);
        int rc = kivis_put(f->db, 0, &a, NULL);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_EIO);
        char *after = kt_dump(f->st);
        assert_string_equal(before, after);
        free(after);
    }
    /* 6 write positions fail in turn: 2 x (del old entry, put new entry),
     * the record, the commit; the 7th attempt succeeds. */
    assert_int_equal(n, 7);
    const char *email = "ann@x";
    kivis_query q = {0, ACCOUNT_BY_EMAIL, KIVIS_Q_EQ, &email, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, NULL, NULL), KIVIS_NOTFOUND);
    kivis_scan_close(s);
    free(before);
}

static void test_read_faults(void **state)
{
    fx *f = *state;
    user_key k = put_user(f->db, "r", "r@x", 1);
    user u;
    kivis_faulty_fail(f->st, KIVIS_FAULT_READ, 1, KIVIS_EIO);
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, &u), KIVIS_EIO);
    assert_null(u.name);
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    kivis_faulty_fail(f->st, KIVIS_FAULT_READ, 1, KIVIS_EIO);
    assert_int_equal(kivis_scan_next(s, NULL, &u), KIVIS_EIO);
    kivis_scan_close(s);
}

/* ---- out of memory --------------------------------------------------------- */

/* Run op with the n-th allocation failing, n = 1, 2, ... until it succeeds;
 * each failure must be KIVIS_ENOMEM, leak nothing, change nothing. */
typedef int (*op_fn)(fx *f, int attempt);

static void oom_sweep(fx *f, op_fn op)
{
    int done = 0;
    for (unsigned long n = 1; !done; n++) {
        char *before = kt_dump(f->st);
        long blocks = f->a.live_blocks;
        kt_alloc_fail_at(&f->a, n);
        int rc = op(f, (int)n);
        kt_alloc_fail_at(&f->a, 0);
        if (rc == KIVIS_OK) {
            done = 1;
        } else {
            assert_int_equal(rc, KIVIS_ENOMEM);
            assert_int_equal(f->a.live_blocks, blocks);
            char *after = kt_dump(f->st);
            assert_string_equal(before, after);
            free(after);
        }
        free(before);
        assert_true(n < 10000);
    }
}

static int oom_put(fx *f, int attempt)
{
    (void)attempt;
    user u = {"oom-a-long-name-to-grow-buffers", "oom@example.org", 5};
    return kivis_put(f->db, PETS_USER, &u, NULL);
}

static int oom_get(fx *f, int attempt)
{
    (void)attempt;
    user_key k = {1};
    user u;
    int rc = kivis_get(f->db, PETS_USER, &k, &u);
    if (rc == KIVIS_OK) {
        assert_string_equal(u.name, "seed");
        kivis_record_clear(f->db, PETS_USER, &u);
    } else {
        assert_null(u.name);
    }
    return rc;
}

static int oom_commit(fx *f, int attempt)
{
    (void)attempt;
    /* Build the transaction without faults, then fail inside commit. */
    unsigned long fail_at = f->a.fail_at;
    kt_alloc_fail_at(&f->a, 0);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    for (int i = 0; i < 20; i++)
        put_user(f->db, "batch", "b@x", (uint32_t)i);
    kt_alloc_fail_at(&f->a, fail_at);
    return kivis_commit(f->db);
}

static void test_oom_put_get_commit(void **state)
{
    fx *f = *state;
    put_user(f->db, "seed", "s@x", 1);
    oom_sweep(f, oom_put);
    oom_sweep(f, oom_get);
    oom_sweep(f, oom_commit);
    assert_int_equal(count_by_name(f->db, "batch"), 20);
    assert_true(f->a.failures > 3);
}

static void test_oom_open(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_memory_options mo = {.allocator = &a.iface};
    kivis_storage *st;
    assert_int_equal(kivis_memory_open(&mo, &st), KIVIS_OK);
    kivis_options o = {&a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    long blocks = a.live_blocks;
    kivis_db *db = NULL;
    int rc;
    for (unsigned long n = 1;; n++) {
        kt_alloc_fail_at(&a, n);
        rc = kivis_open(st, &pets_schema, &o, &db);
        kt_alloc_fail_at(&a, 0);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_ENOMEM);
        assert_null(db);
        assert_int_equal(a.live_blocks, blocks);
        assert_int_equal(kt_count(st), 0);
    }
    kivis_close(db);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
}

/* ---- bad input --------------------------------------------------------------- */

static void test_key_too_long(void **state)
{
    (void)state;
    fx *f = fx_new(&bank_schema, 64);
    char login[100];
    memset(login, 'k', sizeof login - 1);
    login[sizeof login - 1] = '\0';
    char *before = kt_dump(f->st);
    account a = {login, "k@x", 1, 0, true, {0}, {0, 0}};
    assert_int_equal(kivis_put(f->db, 0, &a, NULL), KIVIS_EKEYSIZE);
    assert_non_null(strstr(kivis_errmsg(f->db), "account"));
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    /* The indexed value alone can be too long as well. */
    char email[80];
    memset(email, 'e', sizeof email - 1);
    email[sizeof email - 1] = '\0';
    account b = {"short", email, 1, 0, true, {0}, {0, 0}};
    assert_int_equal(kivis_put(f->db, 0, &b, NULL), KIVIS_EKEYSIZE);
    free(after);
    after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    fx_free(f);
}

/* Overwrite the stored bytes of user 1 directly in the storage. */
static void corrupt_user_one(fx *f, const void *bytes, size_t n)
{
    kivis_storage_txn *txn;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(f->st, 0, &txn), KIVIS_OK);
    /* Table 1 (user), slot 0, key 1: 01 00 00..01 */
    uint8_t key[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(kivis_txn_get(txn, kivis_slice_make(key, sizeof key), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_put(txn, kivis_slice_make(key, sizeof key),
                                   kivis_slice_make(bytes, n)),
                     KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);
}

static void test_corrupt_stored_value(void **state)
{
    fx *f = *state;
    user_key k = put_user(f->db, "vic", "v@x", 9);
    assert_int_equal(k.id, 1);
    const uint8_t garbage[] = {0x01, 0x01, 0x03, 0xFF, 0xFF};
    corrupt_user_one(f, garbage, sizeof garbage);
    user u;
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, &u), KIVIS_ECORRUPT);
    assert_null(u.name);
    assert_non_null(strstr(kivis_errmsg(f->db), "corrupt"));
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, NULL, &u), KIVIS_ECORRUPT);
    kivis_scan_close(s);
    /* Its old index entries cannot be found, so an overwrite is refused. */
    char *before = kt_dump(f->st);
    user nu = {"new", "n@x", 1};
    assert_int_equal(kivis_insert(f->db, PETS_USER, &k, &nu), KIVIS_ECORRUPT);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_ECORRUPT);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

/* A stored account key with a byte after its last field: decoding the
 * string login succeeds, then the trailing byte makes it corrupt, and the
 * login decoded so far must be freed (teardown counts live blocks). */
static void test_corrupt_key_with_trailing_byte(void **state)
{
    fx *f = *state;
    put_account(f->db, "amy", "a@x", 5);
    kivis_storage_txn *txn;
    kivis_storage_cursor *c;
    kivis_slice k, v;
    assert_int_equal(kivis_storage_begin(f->st, 0, &txn), KIVIS_OK);
    const uint8_t records[] = {1, 0}; /* table 1 (account), slot 0 */
    assert_int_equal(kivis_txn_cursor(txn, kivis_slice_make(records, 2),
                                      kivis_slice_make((const uint8_t[]){1, 1}, 2), &c),
                     KIVIS_OK);
    assert_int_equal(kivis_cursor_get(c, KIVIS_FIRST, &k, &v), KIVIS_OK);
    uint8_t key[64], val[256];
    assert_true(k.len < sizeof key && v.len <= sizeof val);
    memcpy(key, k.data, k.len);
    memcpy(val, v.data, v.len);
    size_t klen = k.len, vlen = v.len;
    kivis_cursor_close(c);
    assert_int_equal(kivis_txn_del(txn, kivis_slice_make(key, klen)), KIVIS_OK);
    key[klen++] = 0x7A;
    assert_int_equal(kivis_txn_put(txn, kivis_slice_make(key, klen),
                                   kivis_slice_make(val, vlen)),
                     KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);

    kivis_query q = {0, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    account_key ak;
    account a;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, &ak, &a), KIVIS_ECORRUPT);
    assert_null(ak.login);
    assert_non_null(strstr(kivis_errmsg(f->db), "undecodable stored key"));
    kivis_scan_close(s);
}

static const kivis_field user_fields_changed[] = {
    {"name", KIVIS_STRING, 0, offsetof(user, name), sizeof(char *), NULL, NULL, 0},
    {"email", KIVIS_STRING, 0, offsetof(user, email), sizeof(char *), NULL, NULL, 0},
    {"age", KIVIS_U16, 0, offsetof(user, age), 2, NULL, NULL, 0}, /* was u32 */
};

static void test_wrong_schema_on_open(void **state)
{
    fx *f = *state;
    put_user(f->db, "keep", "k@x", 1);
    char *before = kt_dump(f->st);
    /* The pets schema with user.age retyped. */
    kivis_struct_desc ud = *pets_schema.tables[PETS_USER].record;
    ud.fields = user_fields_changed;
    kivis_table_desc tables[4];
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].record = &ud;
    kivis_schema_desc changed = {"pets", 4, tables, 0, NULL, 0, NULL};
    kivis_db *db2 = (kivis_db *)1;
    kivis_options o = {&f->a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, &changed, &o, &db2), KIVIS_ESCHEMA);
    assert_null(db2);
    /* A key strategy change is refused as well. */
    tables[PETS_USER].record = pets_schema.tables[PETS_USER].record;
    tables[PETS_TOY].key_kind = KIVIS_KEY_DERIVED;
    tables[PETS_TOY].derive_key = blob_derive_key;
    assert_int_equal(kivis_open(f->st, &changed, &o, &db2), KIVIS_ESCHEMA);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void test_schema_message_names_table_and_field(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *st;
    kivis_memory_options mo = {.allocator = &a.iface};
    assert_int_equal(kivis_memory_open(&mo, &st), KIVIS_OK);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    kivis_close(db);
    kivis_struct_desc ud = *pets_schema.tables[PETS_USER].record;
    ud.fields = user_fields_changed;
    kivis_table_desc tables[4];
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].record = &ud;
    kivis_schema_desc changed = {"pets", 4, tables, 0, NULL, 0, NULL};
    char msg[200];
    kivis_options o = {&a.iface, KIVIS_SYNC, msg, sizeof msg, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(st, &changed, &o, &db), KIVIS_ESCHEMA);
    assert_non_null(strstr(msg, "table user"));
    assert_non_null(strstr(msg, "'age'"));
    /* A removed field is named too. */
    ud.nfields = 2;
    assert_int_equal(kivis_open(st, &changed, &o, &db), KIVIS_ESCHEMA);
    assert_non_null(strstr(msg, "'age'"));
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
}

static void test_schema_additions_are_applied(void **state)
{
    fx *f = *state;
    put_user(f->db, "ann", "a@x", 30);
    put_user(f->db, "bob", "b@x", 40);
    /* Add an index on user.age and drop the pet index. */
    static const kivis_index_desc idx[] = {{"name", 0, 0}, {"age", 2, 0}};
    kivis_table_desc tables[4];
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].nindexes = 2;
    tables[PETS_USER].indexes = idx;
    tables[PETS_PET].nindexes = 0;
    kivis_schema_desc more = {"pets", 4, tables, 0, NULL, 0, NULL};
    fx_reopen(f, &more);
    uint32_t lo = 35;
    kivis_query q = {PETS_USER, 1, KIVIS_Q_RANGE, &lo, NULL, NULL, 0, 0};
    uint64_t ids[4];
    assert_int_equal(scan_ids(f->db, &q, ids, 4), 1); /* built on open */
    assert_int_equal(ids[0], 2);
    put_user(f->db, "cy", "c@x", 50);
    assert_int_equal(scan_ids(f->db, &q, ids, 4), 2);
    /* Back to the original: the age index is dropped with its entries. */
    size_t with_age = kt_count(f->st);
    fx_reopen(f, &pets_schema);
    assert_int_equal(kt_count(f->st), with_age - 3);
}

static void test_null_arguments(void **state)
{
    fx *f = *state;
    kivis_db *db = (kivis_db *)1;
    user u = {"n", "n@x", 1};
    user_key k = {1};
    assert_int_equal(kivis_open(NULL, &pets_schema, NULL, &db), KIVIS_EINVAL);
    assert_null(db);
    assert_int_equal(kivis_open(f->st, NULL, NULL, &db), KIVIS_EINVAL);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_put(NULL, PETS_USER, &u, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_put(f->db, PETS_USER, NULL, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_put(f->db, 99, &u, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_insert(f->db, PETS_USER, NULL, &u), KIVIS_EINVAL);
    assert_int_equal(kivis_get(f->db, PETS_USER, NULL, &u), KIVIS_EINVAL);
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_remove(f->db, PETS_USER, NULL), KIVIS_EINVAL);
    kivis_scan *s = (kivis_scan *)1;
    assert_int_equal(kivis_scan_open(f->db, NULL, &s), KIVIS_EINVAL);
    assert_null(s);
    kivis_query q = {PETS_USER, 5, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_EINVAL);
    q.index = USER_BY_NAME;
    q.mode = KIVIS_Q_EQ;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_EINVAL);
    assert_int_equal(kivis_scan_next(NULL, NULL, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_begin(NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_commit(NULL), KIVIS_EINVAL);
    kivis_abort(NULL);
    kivis_close(NULL);
    kivis_scan_close(NULL);
    assert_string_equal(kivis_errmsg(NULL), "");
    assert_int_equal(kt_count(f->st), 1); /* only the schema */
}

static void test_auto_increment_overflow(void **state)
{
    fx *f = *state;
    user u = {"max", "m@x", 1};
    user_key last = {UINT64_MAX};
    assert_int_equal(kivis_insert(f->db, PETS_USER, &last, &u), KIVIS_OK);
    char *before = kt_dump(f->st);
    user_key k = {7};
    assert_int_equal(kivis_put(f->db, PETS_USER, &u, &k), KIVIS_EOVERFLOW);
    assert_int_equal(k.id, 0);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* UINT64_MAX was issued: removing its record does not free it. */
    assert_int_equal(kivis_remove(f->db, PETS_USER, &last), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, PETS_USER, &u, &k), KIVIS_EOVERFLOW);
    /* Inside a transaction too, after an explicit insert just below. */
    pet p;
    memset(&p, 0, sizeof p);
    p.owner = (user_key){1}; /* the owner must exist */
    assert_int_equal(kivis_insert(f->db, PETS_USER, &p.owner, &u), KIVIS_OK);
    pet_key below = {UINT64_MAX - 1}, pk;
    assert_int_equal(kivis_insert(f->db, PETS_PET, &below, &p), KIVIS_OK);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, PETS_PET, &p, &pk), KIVIS_OK);
    assert_int_equal(pk.id, UINT64_MAX);
    assert_int_equal(kivis_put(f->db, PETS_PET, &p, &pk), KIVIS_EOVERFLOW);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
}

static void test_bad_field_values(void **state)
{
    fx *f = *state;
    char *before = kt_dump(f->st);
    user bad_utf8 = {"\xC3\x28", "x@x", 1};
    assert_int_equal(kivis_put(f->db, PETS_USER, &bad_utf8, NULL), KIVIS_EUTF8);
    toy bad_enum = {(enum toy_kind)7, 1};
    assert_int_equal(kivis_put(f->db, PETS_TOY, &bad_enum, NULL), KIVIS_ERANGE);
    pet unterminated;
    memset(&unterminated, 0, sizeof unterminated);
    memset(unterminated.name, 'x', sizeof unterminated.name);
    assert_int_equal(kivis_put(f->db, PETS_PET, &unterminated, NULL), KIVIS_ERANGE);
    blob nulldata = {{NULL, 3}};
    assert_int_equal(kivis_put(f->db, PETS_BLOB, &nulldata, NULL), KIVIS_EINVAL);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void assert_errmsg(kivis_db *db, const char *want)
{
    if (strcmp(kivis_errmsg(db), want))
        fail_msg("errmsg \"%s\", want \"%s\"", kivis_errmsg(db), want);
}

/* Each field error names the record and the field. */
static void test_field_errors_name_the_field(void **state)
{
    fx *f = *state;
    user bad_utf8 = {"ann", "\xC3\x28", 1};
    assert_int_equal(kivis_put(f->db, PETS_USER, &bad_utf8, NULL), KIVIS_EUTF8);
    assert_errmsg(f->db, "user.email: string is not valid UTF-8");
    toy bad_enum = {(enum toy_kind)7, 1};
    assert_int_equal(kivis_put(f->db, PETS_TOY, &bad_enum, NULL), KIVIS_ERANGE);
    assert_errmsg(f->db, "toy.kind: value out of range for its field");
    pet unterminated;
    memset(&unterminated, 0, sizeof unterminated);
    memset(unterminated.name, 'x', sizeof unterminated.name);
    assert_int_equal(kivis_put(f->db, PETS_PET, &unterminated, NULL), KIVIS_ERANGE);
    assert_errmsg(f->db, "pet.name: value out of range for its field");
    blob nulldata = {{NULL, 3}};
    assert_int_equal(kivis_put(f->db, PETS_BLOB, &nulldata, NULL), KIVIS_EINVAL);
    assert_errmsg(f->db, "blob.data: invalid argument");
}

/* Array elements and nested struct fields, on put and update. */
static void test_field_errors_name_element_and_nested_field(void **state)
{
    (void)state;
    fx *f = fx_new(&notes_schema, 0);
    note n = {{"a", "b", "\xFF"}, {{"x", true}, {"y", false}}};
    assert_int_equal(kivis_put(f->db, 0, &n, NULL), KIVIS_EUTF8);
    assert_errmsg(f->db, "note.tags[2]: string is not valid UTF-8");
    n.tags[2] = "c";
    n.labels[1].text = "\xC0\xAF";
    assert_int_equal(kivis_put(f->db, 0, &n, NULL), KIVIS_EUTF8);
    assert_errmsg(f->db, "note.labels[1].text: string is not valid UTF-8");
    n.labels[1].text = "y";
    note_key k;
    assert_int_equal(kivis_put(f->db, 0, &n, &k), KIVIS_OK);
    memset(&n.labels[0].on, 2, 1);
    assert_int_equal(kivis_update(f->db, 0, &k, &n), KIVIS_ERANGE);
    assert_errmsg(f->db, "note.labels[0].on: value out of range for its field");
    fx_free(f);
}

static void test_status_names(void **state)
{
    (void)state;
    int codes[] = {
#define CODE(name, value, msg) value,
        KIVIS_STATUS_MAP(CODE)
#undef CODE
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(kivis_strerror(codes[i]), "unknown status");
        assert_int_equal(strncmp(kivis_errname(codes[i]), "KIVIS_", 6), 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(kivis_strerror(codes[i]),
                                    kivis_strerror(codes[j]));
    }
    assert_string_equal(kivis_errname(KIVIS_ECONSTRAINT), "KIVIS_ECONSTRAINT");
    assert_string_equal(kivis_strerror(12345), "unknown status");
}

/* A read-only transaction: reads work and see one state, writes are
 * refused without poisoning it, and commit or abort ends it. */
static void test_read_only_transaction(void **state)
{
    fx *f = *state;
    user_key k = put_user(f->db, "ro", "ro@x", 5);
    assert_int_equal(kivis_begin_read(f->db), KIVIS_OK);
    assert_int_equal(kivis_begin_read(f->db), KIVIS_EINVAL);
    assert_int_equal(kivis_begin(f->db), KIVIS_EINVAL);
    user u;
    assert_int_equal(kivis_get(f->db, PETS_USER, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "ro");
    kivis_record_clear(f->db, PETS_USER, &u);
    char *before = kt_dump(f->st);
    user nu = {"new", "n@x", 1};
    user_key nk;
    assert_int_equal(kivis_put(f->db, PETS_USER, &nu, &nk), KIVIS_EINVAL);
    assert_non_null(strstr(kivis_errmsg(f->db), "read-only"));
    assert_int_equal(kivis_insert(f->db, PETS_USER, &k, &nu), KIVIS_EINVAL);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_EINVAL);
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &(const char *){"ro"},
                     NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, NULL, &u), KIVIS_OK); /* still usable */
    assert_string_equal(u.email, "ro@x");
    kivis_record_clear(f->db, PETS_USER, &u);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, NULL, NULL), KIVIS_EINVAL); /* detached */
    kivis_scan_close(s);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    assert_int_equal(kivis_begin_read(f->db), KIVIS_OK);
    kivis_abort(f->db);
    assert_int_equal(kivis_put(f->db, PETS_USER, &nu, &nk), KIVIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auto_increment, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_auto_increment_continues_by_reverse_seek,
                                        setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_composite_key, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_derived_key, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_key_and_index_on_key_type,
                                        setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_leaves_no_stale_entries,
                                        setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_index_exact_prefix_range, setup_pets,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unique_index, setup_bank, teardown),
        cmocka_unit_test_setup_teardown(test_all_field_types_round_trip, setup_bank,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scans_by_key, setup_bank, teardown),
        cmocka_unit_test_setup_teardown(test_index_range_on_signed, setup_bank,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transaction_reads_own_writes_and_aborts,
                                        setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_error_poisons_transaction, setup_pets,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scan_ends_with_its_transaction,
                                        setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_fault_every_write_position_in_transaction,
                                        setup_bank, teardown),
        cmocka_unit_test_setup_teardown(test_fault_every_write_position_in_overwrite,
                                        setup_bank, teardown),
        cmocka_unit_test_setup_teardown(test_read_faults, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_oom_put_get_commit, setup_pets, teardown),
        cmocka_unit_test(test_oom_open),
        cmocka_unit_test(test_key_too_long),
        cmocka_unit_test_setup_teardown(test_corrupt_stored_value, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_key_with_trailing_byte, setup_bank,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_only_transaction, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_schema_on_open, setup_pets, teardown),
        cmocka_unit_test(test_schema_message_names_table_and_field),
        cmocka_unit_test_setup_teardown(test_schema_additions_are_applied, setup_pets,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_arguments, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_auto_increment_overflow, setup_pets,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_field_values, setup_pets, teardown),
        cmocka_unit_test_setup_teardown(test_field_errors_name_the_field, setup_pets,
                                        teardown),
        cmocka_unit_test(test_field_errors_name_element_and_nested_field),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
