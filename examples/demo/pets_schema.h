/*
 * pets_schema.h - the pets schema of examples/pets/pets.kvs, with its
 * descriptor written by hand (what kivis-gen emits).
 */
#ifndef PETS_SCHEMA_H
#define PETS_SCHEMA_H

#include <kivis.h>

#include <stdbool.h>
#include <stdint.h>

enum toy_kind { TOY_BALL, TOY_MOUSE };

typedef struct user_key { uint64_t id; } user_key;
typedef struct user {
    char *name; /* [[index]] */
    char *email;
    uint32_t age;
} user;

typedef struct toy_key {
    enum toy_kind kind;
    uint8_t color;
} toy_key;
typedef struct toy {
    enum toy_kind kind; /* [[key]] */
    uint8_t color;      /* [[key]] */
} toy;

typedef struct pet_key { uint64_t id; } pet_key;
typedef struct pet {
    char name[32];
    user_key owner;        /* [[references(cascade)]] */
    toy_key favourite_toy; /* [[index]] */
    bool has_chip;         /* false: chip is absent */
    uint64_t chip;         /* [[index, optional]] */
} pet;

typedef struct blob_key { uint64_t hash; } blob_key;
typedef struct blob {
    kivis_bytes data;
} blob;

/* Table and index positions in pets_schema. */
enum { PETS_USER, PETS_TOY, PETS_PET, PETS_BLOB };
enum { USER_BY_NAME = 0 };
/* PET_BY_OWNER: the reverse lookup of the cascade, which kivis-gen puts
 * after the declared indexes and does not name in its API. */
enum { PET_BY_FAVOURITE_TOY = 0, PET_BY_CHIP = 1, PET_BY_OWNER = 2 };

extern const kivis_schema_desc pets_schema;

/* FNV-1a of the blob's bytes: its content address. */
int blob_derive_key(const void *record, void *key_out);

#endif
