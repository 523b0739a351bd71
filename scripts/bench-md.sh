#!/usr/bin/env bash
# A bench_engines CSV as a Markdown table, for docs/bench.md: one row per
# phase, each engine's ops/s and its ratio to the CSV's reference engine.
#   scripts/bench-md.sh CSV [A/B ...]
# The reference is the engine whose ratio is 1 on every phase it ran.  Each
# A/B adds a column: engine A's rate over engine B's (kivis over its raw
# counterpart when the reference is a third engine).
set -euo pipefail
csv=$1
shift
awk -F, -v pairs="$*" '
NR == 1 { ref = $7; sub(/^ratio_to_/, "", ref); next }
{
    if (!($1 in seen)) { seen[$1] = 1; engines[++ne] = $1 }
    if (!($2 in pseen)) { pseen[$2] = 1; phases[++np] = $2; ops[$2] = $4 }
    rate[$1, $2] = $6; ratio[$1, $2] = $7
}
function commas(x,    s, neg) {
    s = sprintf("%.0f", x); neg = ""
    if (s ~ /^-/) { neg = "-"; s = substr(s, 2) }
    while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return neg s
}
END {
    head = "| phase | ops |"; rule = "| --- | ---: |"
    for (e = 1; e <= ne; e++) { head = head " " engines[e] " |"; rule = rule " ---: |" }
    npair = split(pairs, pair, " ")
    for (q = 1; q <= npair; q++) { head = head " " pair[q] " |"; rule = rule " ---: |" }
    print head; print rule
    for (p = 1; p <= np; p++) {
        row = "| " phases[p] " | " commas(ops[phases[p]]) " |"
        for (e = 1; e <= ne; e++) {
            k = engines[e] SUBSEP phases[p]
            if (!(k in rate) || rate[k] == "" || rate[k] + 0 == 0) { row = row " n/a |"; continue }
            cell = commas(rate[k])
            if (engines[e] != ref) cell = cell " (" sprintf("%.2f", ratio[k]) "x)"
            row = row " " cell " |"
        }
        for (q = 1; q <= npair; q++) {
            split(pair[q], ab, "/")
            a = ab[1] SUBSEP phases[p]; b = ab[2] SUBSEP phases[p]
            ok = (a in rate) && (b in rate) && rate[a] + 0 > 0 && rate[b] + 0 > 0
            row = row " " (ok ? sprintf("%.2fx", rate[a] / rate[b]) : "n/a") " |"
        }
        print row
    }
    print ""
    print "ops/s; in brackets the ratio to " ref " in the same run (higher is faster)."
}' "$csv"
