#!/bin/sh
# check_compile.sh ok|fail CC ARGS... SOURCE
#   ok:   SOURCE must compile (syntax and semantics) under -Werror.
#   fail: SOURCE must NOT compile, and the diagnostics must match every
#         "expect: REGEX" line in SOURCE (grep -E), so that a case fails
#         for the reason it was written for and not by accident.
set -u
mode=$1
shift
for last in "$@"; do :; done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" -fsyntax-only -Wall -Wextra -Wpedantic -Werror >"$log" 2>&1
rc=$?
if [ "$mode" = ok ]; then
    [ $rc -eq 0 ] && exit 0
    echo "expected to compile: $last"; cat "$log"; exit 1
fi
if [ $rc -eq 0 ]; then
    echo "expected a compile error, but it compiled: $last"; exit 1
fi
sed -n 's/.*expect: \(.*\) \*\/.*/\1/p' "$last" | while IFS= read -r re; do
    if ! grep -Eq -- "$re" "$log"; then
        echo "diagnostic does not match /$re/: $last"; cat "$log"; exit 1
    fi
done || exit 1
echo "fails as expected: $last"
