#!/usr/bin/env bash
# The native core under AddressSanitizer and UndefinedBehaviorSanitizer, then a short coverage-guided fuzz:
#   1. scripts/native-test.sh --sanitize   every test/native/*_test.cc (g++, ASan+UBSan), including
#                                           fuzz_corpus_test.cc: the fuzz corpora + 50,000 fixed-seed mutations
#   2. scripts/fuzz.sh SECONDS             each libFuzzer target (clang, ASan+UBSan) for SECONDS
#
#   scripts/sanitize.sh [SECONDS]          SECONDS per fuzz target, default 60; 0 skips step 2
#
# CI runs it through test/dataplane/hostile-sanitizers.test.ts with 20 s per target (VS_SANITIZE_FUZZ_SECONDS), and
# scripts/native-test.sh plain (-O2) beside it.
#
# Exits 0 when everything passed, 1 on any finding or failed test, 2 when a tool is missing (g++, clang++ or the
# libFuzzer runtime: Debian packages g++, clang, libclang-rt-14-dev). Logs: build/native-test/, .cache/fuzz/.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: scripts/sanitize.sh [SECONDS]" >&2; exit 2; }

missing=()
command -v g++ >/dev/null || missing+=(g++)
[ "$secs" = 0 ] || command -v "${FUZZ_CXX:-clang++}" >/dev/null || missing+=(clang)
if [ ${#missing[@]} -gt 0 ]; then
  echo "sanitize.sh: missing ${missing[*]} (Debian: apt-get install g++ clang libclang-rt-14-dev)" >&2
  exit 2
fi

start=$SECONDS
status=0
results=()

echo "=== sanitize: native tests under ASan+UBSan"
t0=$SECONDS
if bash scripts/native-test.sh --sanitize; then
  results+=("native tests (ASan+UBSan): ok in $((SECONDS - t0))s")
else
  status=1
  results+=("native tests (ASan+UBSan): FAILED in $((SECONDS - t0))s")
fi

if [ "$secs" != 0 ]; then
  echo "=== sanitize: fuzz targets, ${secs}s each"
  t0=$SECONDS
  bash scripts/fuzz.sh "$secs"
  rc=$?
  case $rc in
    0) results+=("fuzz (${secs}s per target): no finding, $((SECONDS - t0))s") ;;
    2) status=2; results+=("fuzz: could not build or run (see above)") ;;
    *) status=1; results+=("fuzz (${secs}s per target): FINDING, input under .cache/fuzz/artifacts/") ;;
  esac
fi

echo "=== sanitize: done in $((SECONDS - start))s"
for r in "${results[@]}"; do echo "  $r"; done
exit $status
