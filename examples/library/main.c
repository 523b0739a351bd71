/*
 * examples/library/main.c - the program of docs/tutorial.md, which quotes
 * it piece by piece: a small library catalogue of authors and books.
 *
 *   library DIR        an LMDB store in DIR (created if missing; run it
 *                      twice: the second run finds what the first stored)
 *   library --memory   the in-memory B+tree, gone at exit
 */
#include "library.kivis.h"

#include <kivis/lmdb.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Report a failed call with its code and the handle's detail, and exit. */
static void check(library_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "library: %s: %s (%s)\n", what, kivis_strerror(rc),
            library_errmsg(db));
    exit(1);
}

/* A cursor ends with KIVIS_NOTFOUND; anything else is an error. */
static void check_end(library_db *db, int rc, const char *what)
{
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, what);
}

static library_db *open_library(int argc, char **argv, kivis_storage **st)
{
    int rc;
    if (argc > 1 && strcmp(argv[1], "--memory") == 0)
        rc = kivis_memory_open(NULL, st);
    else
        rc = kivis_lmdb_open(argc > 1 ? argv[1] : "library.db", NULL, st);
    if (rc != KIVIS_OK) {
        fprintf(stderr, "library: storage: %s\n", kivis_strerror(rc));
        exit(1);
    }
    char why[256] = "";
    kivis_options opts = {0};
    opts.errbuf = why; /* library_open has no handle to carry the detail */
    opts.errbuf_size = sizeof why;
    library_db *db;
    rc = library_open(*st, &opts, &db);
    if (rc != KIVIS_OK) {
        fprintf(stderr, "library: open: %s (%s)\n", kivis_strerror(rc), why);
        kivis_storage_close(*st);
        exit(1);
    }
    return db;
}

/* The key of the author called `name`: KIVIS_OK, or KIVIS_NOTFOUND. */
static int find_author(library_db *db, const char *name, author_key *key)
{
    author_cursor cur;
    check(db, author_by_name(db, name, 0, &cur), "author_by_name");
    int rc = author_next(&cur, key, NULL); /* NULL: the key is enough */
    author_close(&cur);
    return rc;
}

/* The author called `name`, stored first if the library lacks them. */
static author_key add_author(library_db *db, const char *name, uint16_t born)
{
    author_key key;
    int rc = find_author(db, name, &key);
    if (rc == KIVIS_NOTFOUND) {
        author a = {name, born};
        rc = author_put(db, &a, &key); /* key.id: 1, 2, ... */
    }
    check(db, rc, "add_author");
    return key;
}

static void add_books(library_db *db)
{
    author_key le_guin = add_author(db, "Ursula K. Le Guin", 1929);
    author_key calvino = add_author(db, "Italo Calvino", 1923);
    book books[] = {
        {"9780441478125", "The Left Hand of Darkness", le_guin, 1969, NOVEL},
        {"9780060512750", "The Dispossessed", le_guin, 1974, NOVEL},
        {"9780156453806", "Invisible Cities", calvino, 1972, NOVEL},
        {"9780679742371", "Six Memos for the Next Millennium", calvino, 1988,
         ESSAY},
    };
    for (size_t i = 0; i < sizeof books / sizeof books[0]; i++)
        check(db, book_put(db, &books[i], NULL), "book_put");
}

static void show_book(library_db *db, book_key key)
{
    book b;
    int rc = book_get(db, key, &b);
    if (rc == KIVIS_NOTFOUND) {
        printf("no book %s\n", key.isbn);
        return;
    }
    check(db, rc, "book_get");
    author a;
    check(db, library_get(db, b.author, &a), "library_get"); /* author_get */
    printf("%s: %s by %s, %u\n", key.isbn, b.title, a.name, (unsigned)b.year);
    author_clear(db, &a); /* frees a.name, allocated by the get */
    book_clear(db, &b);
}

static void list_books(library_db *db)
{
    book_cursor cur;
    book_key key;
    book b;
    int rc;
    check(db, book_scan(db, NULL, NULL, 0, &cur), "book_scan");
    while ((rc = book_next(&cur, &key, &b)) == KIVIS_OK) {
        printf("  %s %s\n", key.isbn, b.title);
        book_clear(db, &b);
    }
    book_close(&cur);
    check_end(db, rc, "book_next");
}

static void books_by(library_db *db, const char *name)
{
    author_key who;
    check(db, find_author(db, name, &who), "find_author");
    book_cursor cur;
    book b;
    int rc;
    printf("books by %s:\n", name);
    check(db, book_by_author(db, who, 0, &cur), "book_by_author");
    while ((rc = book_next(&cur, NULL, &b)) == KIVIS_OK) {
        printf("  %u %s\n", (unsigned)b.year, b.title);
        book_clear(db, &b);
    }
    book_close(&cur);
    check_end(db, rc, "book_next");
}

/* Titles of the books from [from, to): no allocation, strings in buf. */
static void books_between(library_db *db, uint16_t from, uint16_t to)
{
    char buf[512];
    book_cursor cur;
    book b;
    int rc;
    printf("books from %u to %u:\n", (unsigned)from, (unsigned)to - 1);
    check(db, book_by_year_range(db, &from, &to, 0, &cur),
          "book_by_year_range");
    while ((rc = book_next_into(&cur, NULL, &b, buf, sizeof buf)) == KIVIS_OK)
        printf("  %u %s\n", (unsigned)b.year, b.title); /* no book_clear */
    book_close(&cur);
    check_end(db, rc, "book_next_into");
}

/* An author and their book land together or not at all. */
static void add_author_with_book(library_db *db)
{
    check(db, library_begin(db), "begin");
    author_key borges = add_author(db, "Jorge Luis Borges", 1899);
    book b = {"9780811200127", "Labyrinths", borges, 1962, ESSAY};
    check(db, book_put(db, &b, NULL), "book_put");
    check(db, library_commit(db), "commit");
}

/* A second author of the same name breaks the [[unique]] index. */
static void add_duplicate(library_db *db)
{
    author dup = {"Italo Calvino", 1985};
    int rc = author_put(db, &dup, NULL);
    printf("author_put(\"Italo Calvino\") again: %s\n  %s\n",
           kivis_errname(rc), library_errmsg(db));
}

/* Count both tables in one read transaction: one consistent state. */
static void count(library_db *db)
{
    size_t authors = 0, books = 0;
    author_cursor ac;
    book_cursor bc;
    int rc;
    check(db, library_begin_read(db), "begin_read");
    check(db, author_scan(db, NULL, NULL, 0, &ac), "author_scan");
    while ((rc = author_next(&ac, NULL, NULL)) == KIVIS_OK)
        authors++;
    author_close(&ac);
    check_end(db, rc, "author_next");
    check(db, book_scan(db, NULL, NULL, 0, &bc), "book_scan");
    while ((rc = book_next(&bc, NULL, NULL)) == KIVIS_OK)
        books++;
    book_close(&bc);
    check_end(db, rc, "book_next");
    check(db, library_commit(db), "commit"); /* ends a read transaction */
    printf("%zu authors, %zu books\n", authors, books);
}

int main(int argc, char **argv)
{
    kivis_storage *st;
    library_db *db = open_library(argc, argv, &st);

    add_books(db);
    show_book(db, (book_key){"9780156453806"});
    show_book(db, (book_key){"9780000000000"});
    printf("every book, by ISBN:\n");
    list_books(db);
    books_by(db, "Ursula K. Le Guin");
    books_between(db, 1970, 1990);
    add_author_with_book(db);
    add_duplicate(db);
    count(db);

    library_close(db);
    check(NULL, kivis_storage_close(st), "close");
    return 0;
}
