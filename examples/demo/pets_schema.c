#include "pets_schema.h"

#include <stddef.h>

#define FIELD(st, member, kind_, cnt, sz, sub, en, fl)                       \
    {#member, kind_, cnt, offsetof(st, member), sz, sub, en, fl}
#define SCALAR(st, member, kind_, fl) \
    FIELD(st, member, kind_, 0, sizeof(((st *)0)->member), NULL, NULL, fl)

static const char *const toy_kind_names[] = {"TOY_BALL", "TOY_MOUSE"};
static const int32_t toy_kind_values[] = {TOY_BALL, TOY_MOUSE};
static const kivis_enum_desc toy_kind_desc = {"toy_kind", 2, toy_kind_names,
                                              toy_kind_values};

static const kivis_field user_key_fields[] = {SCALAR(user_key, id, KIVIS_U64, 0)};
static const kivis_struct_desc user_key_desc = {"user_key", sizeof(user_key), 1,
                                                user_key_fields, NULL};
static const kivis_field user_fields[] = {
    SCALAR(user, name, KIVIS_STRING, 0),
    SCALAR(user, email, KIVIS_STRING, 0),
    SCALAR(user, age, KIVIS_U32, 0),
};
static const kivis_struct_desc user_desc = {"user", sizeof(user), 3, user_fields, NULL};
static const kivis_index_desc user_indexes[] = {{"name", 0, 0}};

static const kivis_field toy_key_fields[] = {
    FIELD(toy_key, kind, KIVIS_ENUM, 0, sizeof(enum toy_kind), NULL, &toy_kind_desc, 0),
    SCALAR(toy_key, color, KIVIS_U8, 0),
};
static const kivis_struct_desc toy_key_desc = {"toy_key", sizeof(toy_key), 2,
                                               toy_key_fields, NULL};
static const kivis_field toy_fields[] = {
    FIELD(toy, kind, KIVIS_ENUM, 0, sizeof(enum toy_kind), NULL, &toy_kind_desc,
          KIVIS_FIELD_KEY),
    SCALAR(toy, color, KIVIS_U8, KIVIS_FIELD_KEY),
};
static const kivis_struct_desc toy_desc = {"toy", sizeof(toy), 2, toy_fields, NULL};
static const uint32_t toy_key_map[] = {0, 1};

static const kivis_field pet_key_fields[] = {SCALAR(pet_key, id, KIVIS_U64, 0)};
static const kivis_struct_desc pet_key_desc = {"pet_key", sizeof(pet_key), 1,
                                               pet_key_fields, NULL};
static const kivis_field pet_fields[] = {
    FIELD(pet, name, KIVIS_CHARS, 0, sizeof(((pet *)0)->name), NULL, NULL, 0),
    FIELD(pet, owner, KIVIS_STRUCT, 0, sizeof(user_key), &user_key_desc, NULL, 0),
    FIELD(pet, favourite_toy, KIVIS_STRUCT, 0, sizeof(toy_key), &toy_key_desc, NULL, 0),
    SCALAR(pet, chip, KIVIS_U64, KIVIS_FIELD_OPTIONAL), /* has_chip just before */
};
_Static_assert(offsetof(pet, has_chip) ==
                   offsetof(pet, favourite_toy) + sizeof(toy_key),
               "the engine finds pet.has_chip right after favourite_toy");
static const kivis_struct_desc pet_desc = {"pet", sizeof(pet), 4, pet_fields, NULL};
static const kivis_index_desc pet_indexes[] = {
    {"favourite_toy", 2, 0},
    {"chip", 3, 0},
    {"owner", 1, KIVIS_INDEX_CASCADE | KIVIS_INDEX_HIDDEN},
};

static const kivis_field blob_key_fields[] = {SCALAR(blob_key, hash, KIVIS_U64, 0)};
static const kivis_struct_desc blob_key_desc = {"blob_key", sizeof(blob_key), 1,
                                                blob_key_fields, NULL};
static const kivis_field blob_fields[] = {SCALAR(blob, data, KIVIS_BYTES, 0)};
static const kivis_struct_desc blob_desc = {"blob", sizeof(blob), 1, blob_fields, NULL};

int blob_derive_key(const void *record, void *key_out)
{
    const blob *b = record;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < b->data.len; i++)
        h = (h ^ b->data.data[i]) * 0x100000001b3ull;
    ((blob_key *)key_out)->hash = h;
    return KIVIS_OK;
}

static const kivis_table_desc pets_tables[] = {
    {"user", &user_desc, &user_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 1, user_indexes},
    {"toy", &toy_desc, &toy_key_desc, KIVIS_KEY_FIELDS, toy_key_map, NULL, 0, NULL},
    {"pet", &pet_desc, &pet_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 3, pet_indexes},
    {"blob", &blob_desc, &blob_key_desc, KIVIS_KEY_DERIVED, NULL, blob_derive_key, 0, NULL},
};

const kivis_schema_desc pets_schema = {"pets", 4, pets_tables, 0, NULL, 0, NULL};
