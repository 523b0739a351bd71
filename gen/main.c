/*
 * gen/main.c - the kivis-gen command line.
 *
 *   kivis-gen [-o DIR] [--prefix P] [--previous OLD.kvs] SCHEMA.kvs
 *
 * Writes DIR/<schema>.kivis.h and DIR/<schema>.kivis.c (DIR defaults to
 * the current directory, and is created with its parents when missing);
 * with a prefix, DIR/<P><schema>.kivis.[hc].  Exit status: 0 success,
 * 1 the schema has errors (diagnostics on stderr), 2 usage or I/O errors.
 */
#include "model.h"

/* Only for KIVIS_VERSION_*: the one version of the project is kivis.h's.
 * kivis-gen links nothing of the runtime; the path is relative because
 * include/ is not on kivis-gen's include path. */
#include "../include/kivis.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KG_STR_(x) #x
#define KG_STR(x) KG_STR_(x)
/* "MAJOR.MINOR.PATCH" from the KIVIS_VERSION_* macros of kivis.h. */
#define KG_VERSION                                                           \
    KG_STR(KIVIS_VERSION_MAJOR) "." KG_STR(KIVIS_VERSION_MINOR) "."          \
        KG_STR(KIVIS_VERSION_PATCH)

enum { EXIT_SCHEMA = 1, EXIT_USAGE = 2 };

static const char usage[] =
    "usage: kivis-gen [-o DIR] [--prefix P] [--previous OLD.kvs] SCHEMA.kvs\n"
    "\n"
    "Compile a Kivis schema into DIR/<schema>.kivis.h and DIR/<schema>.kivis.c\n"
    "(DIR defaults to the current directory).\n"
    "\n"
    "  -o, --output DIR  write the generated files into DIR (created, with its\n"
    "              parents, when missing)\n"
    "  --prefix P  put P before every generated name (types, functions,\n"
    "              constants upper-cased, file names), so that two schemas\n"
    "              with the same record names fit in one program; the names\n"
    "              stored in the database do not change\n"
    "  --previous OLD.kvs  the schema that wrote the stores to open: each\n"
    "              record that changed other than by fields appended gets a\n"
    "              typed migration, the old record as R_old and a function\n"
    "              to write, int R_migrate(const R_old *old, R *out,\n"
    "              void *ctx), which kivis_open calls for every stored record\n"
    "  --help      show this help\n"
    "  --version   show the version\n"
    "\n"
    "Exit status: 0 success, 1 schema errors, 2 usage or I/O errors.\n";

/* Create dir and its missing parents, as mkdir -p does.
 * @return 0 (dir is a directory now) or -1 with errno set. */
static int make_dirs(const char *dir)
{
    char *path = strdup(dir);
    if (!path)
        return -1;
    int rc = 0;
    for (char *p = path + 1; rc == 0; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            rc = -1;
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (rc == 0 && stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
    }
    int saved = errno;
    free(path);
    errno = saved;
    return rc;
}

typedef struct args {
    const char *dir;
    const char *prefix;
    const char *previous;
    const char *schema;
} args;

/* @return -1 to run, else the exit status (help, version, bad usage). */
static int parse_args(int argc, char **argv, args *a)
{
    enum { OPT_PREFIX = 256, OPT_VERSION, OPT_PREVIOUS };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"output", required_argument, NULL, 'o'},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"previous", required_argument, NULL, OPT_PREVIOUS},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    a->dir = ".";
    a->prefix = NULL;
    a->previous = NULL;
    a->schema = NULL;
    opterr = 0; /* our own messages, with the usage */
    int c;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return 0;
        case OPT_VERSION:
            puts("kivis-gen " KG_VERSION);
            return 0;
        case 'o':
            a->dir = optarg;
            break;
        case OPT_PREFIX:
            a->prefix = optarg;
            if (!kg_prefix_valid(a->prefix)) {
                fprintf(stderr, "kivis-gen: the prefix '%s' cannot start a C "
                                "identifier\n", a->prefix);
                return EXIT_USAGE;
            }
            break;
        case OPT_PREVIOUS:
            a->previous = optarg;
            break;
        case ':':
            fprintf(stderr, "kivis-gen: option '%s' needs a value\n%s",
                    argv[optind - 1], usage);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "kivis-gen: unknown option '%s'\n%s",
                    argv[optind - 1], usage);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        a->schema = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "kivis-gen: one schema at a time\n%s", usage);
        return EXIT_USAGE;
    }
    if (!a->schema || !a->schema[0]) {
        fprintf(stderr, "kivis-gen: %s\n%s",
                a->schema ? "the schema is an empty argument: give a .kvs file"
                          : "no schema given",
                usage);
        return EXIT_USAGE;
    }
    return -1;
}

/* Read and compile the schema at path into *out (diagnostics on stderr);
 * *src keeps its text (free it) when src is not NULL.
 * @return 0, or the exit status. */
static int compile_file(const char *path, kg_schema **out, char **src,
                        size_t *len)
{
    size_t n = 0;
    char *text = kg_read_file(path, &n);
    *out = NULL;
    if (!text) {
        fprintf(stderr, "kivis-gen: cannot read %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    int errors = kg_compile(path, text, n, stderr, out);
    if (src) {
        *src = text;
        *len = n;
    } else {
        free(text);
    }
    return errors || !*out ? EXIT_SCHEMA : 0;
}

/* --previous: compile OLD.kvs and plan the typed migrations into s.
 * @return 0, or the exit status. */
static int add_previous(kg_schema *s, const args *a, const char *src,
                        size_t len)
{
    kg_schema *old = NULL;
    int rc = compile_file(a->previous, &old, NULL, NULL);
    if (!rc && kg_previous(s, old, a->schema, src, len, stderr) != 0)
        rc = EXIT_SCHEMA;
    if (rc)
        kg_schema_free(old);
    return rc;
}

int main(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    kg_schema *s = NULL;
    char *src = NULL;
    size_t len = 0;
    rc = compile_file(a.schema, &s, &src, &len);
    if (!rc && a.previous)
        rc = add_previous(s, &a, src, len);
    free(src);
    if (!rc && a.prefix && kg_prefix(s, a.prefix) != 0) {
        fprintf(stderr, "kivis-gen: out of memory\n");
        rc = EXIT_USAGE;
    }
    if (!rc && make_dirs(a.dir) != 0) {
        fprintf(stderr, "kivis-gen: cannot create %s: %s\n", a.dir,
                strerror(errno));
        rc = EXIT_USAGE;
    }
    if (!rc)
        rc = kg_emit(s, a.dir, stderr) == 0 ? 0 : EXIT_USAGE;
    kg_schema_free(s);
    return rc;
}
