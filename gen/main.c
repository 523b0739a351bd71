/*
 * gen/main.c - the kivis-gen command line.
 *
 *   kivis-gen [-o DIR] [--prefix P] SCHEMA.kvs
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
    "usage: kivis-gen [-o DIR] [--prefix P] SCHEMA.kvs\n"
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
    const char *schema;
} args;

/* @return -1 to run, else the exit status (help, version, bad usage). */
static int parse_args(int argc, char **argv, args *a)
{
    enum { OPT_PREFIX = 256, OPT_VERSION };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"output", required_argument, NULL, 'o'},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    a->dir = ".";
    a->prefix = NULL;
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

int main(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    kg_schema *s = NULL;
    int errors = kg_compile_file(a.schema, stderr, &s);
    if (errors < 0) {
        fprintf(stderr, "kivis-gen: cannot read %s: %s\n", a.schema,
                strerror(errno));
        return EXIT_USAGE;
    }
    if (errors || !s)
        return EXIT_SCHEMA;
    if (a.prefix && kg_prefix(s, a.prefix) != 0) {
        fprintf(stderr, "kivis-gen: out of memory\n");
        kg_schema_free(s);
        return EXIT_USAGE;
    }
    if (make_dirs(a.dir) != 0) {
        fprintf(stderr, "kivis-gen: cannot create %s: %s\n", a.dir,
                strerror(errno));
        kg_schema_free(s);
        return EXIT_USAGE;
    }
    rc = kg_emit(s, a.dir, stderr) == 0 ? 0 : EXIT_USAGE;
    kg_schema_free(s);
    return rc;
}
