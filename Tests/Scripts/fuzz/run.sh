#!/usr/bin/env bash
# Builds loupe-fuzz with libFuzzer (-sanitize=fuzzer, its own scratch path .build-fuzz) and runs
# every harness of Tests/FuzzReaders — or those named — for a fixed budget, starting from the
# committed seeds and regression cases (Tests/Fuzz/Seeds, Tests/Fuzz/Regressions). Prints the table
# harness | inputs | crashes | hangs and exits 1 if any harness crashed or hung; each finding's input
# is kept in .build-fuzz/findings/ (replay it with the test build: loupe-fuzz HARNESS FILE).
#
#   Tests/Scripts/fuzz/run.sh [--seconds N] [--runs N] [HARNESS…]
#
# --seconds N: N seconds per harness (default 30, what .ci/run uses); --runs N: N inputs per harness instead.
set -euo pipefail
cd "$(dirname "$0")/../../.."

seconds=30 runs=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        *) break ;;
    esac
done

# lld: gold fails on libFuzzer's archive beside SwiftPM's renamed entry point (loupe_fuzz_main).
swift build -c release --product loupe-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DLOUPE_LIBFUZZER -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
bin=.build-fuzz/release/loupe-fuzz

if [ $# -gt 0 ]; then harnesses=("$@"); else mapfile -t harnesses < <(ls Tests/Fuzz/Seeds); fi
mkdir -p .build-fuzz/findings .build-fuzz/logs
budget=(-max_total_time="$seconds")
[ -n "$runs" ] && budget=(-runs="$runs")

# The harnesses write each input to a file: on tmpfs that is ~20× faster than on disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

failed=0
printf '%-22s %10s %8s %6s\n' harness inputs crashes hangs
for h in "${harnesses[@]}"; do
    corpus=.build-fuzz/corpus/$h
    mkdir -p "$corpus"
    extra=()
    [ -d "Tests/Fuzz/Regressions/$h" ] && extra+=("Tests/Fuzz/Regressions/$h")
    log=.build-fuzz/logs/$h.log
    set +e
    # -fork is not used: one process, so a crash stops the run and its input is kept.
    LOUPE_FUZZ_HARNESS="$h" SWIFT_BACKTRACE=enable=no "$bin" "${budget[@]}" -timeout=10 -rss_limit_mb=4096 \
        -max_len=16384 -artifact_prefix=".build-fuzz/findings/$h-" -print_final_stats=1 \
        "$corpus" "Tests/Fuzz/Seeds/$h" "${extra[@]}" >"$log" 2>&1
    rc=$?
    set -e
    inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    crashes=0 hangs=0
    if [ $rc -ne 0 ]; then
        if grep -q 'libFuzzer: timeout' "$log"; then hangs=1; else crashes=1; fi
        failed=1
    fi
    printf '%-22s %10s %8s %6s\n' "$h" "${inputs:-?}" "$crashes" "$hangs"
    [ $rc -ne 0 ] && tail -n 30 "$log" | sed "s/^/    $h: /"
done
exit $failed
