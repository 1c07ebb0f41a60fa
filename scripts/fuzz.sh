#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, clang) of the native descriptor-chain parsers (split and packed rings) and
# memory-table mapping, built standalone from native/core/guest_memory.cc, vring.cc and packed_vring.cc with
# AddressSanitizer and UndefinedBehaviorSanitizer. Targets: fuzz/fuzz_<target>.cc, seed corpus in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   build, then run each target for SECONDS (default 60), one at a time
#   scripts/fuzz.sh --build                 build only (.cache/fuzz/fuzz_<target>)
#   scripts/fuzz.sh --merge [TARGET...]     fold the inputs earlier runs found (.cache/fuzz/<target>/found) into
#                                           fuzz/corpus/<target>, keeping only those that add coverage
#   scripts/fuzz.sh --replay FILE...        run crash/corpus files through the target named by the file's
#                                           directory or prefix (vring, packed, memtable)
#
# New inputs go to .cache/fuzz/<target>/found, never into the repository. A finding (crash, sanitizer report,
# broken invariant, leak, timeout, out-of-memory) leaves its input in .cache/fuzz/artifacts/ and makes the
# script exit 1; setup problems (no clang, no libFuzzer runtime) exit 2. Environment: FUZZ_CXX (clang++),
# FUZZ_FLAGS (extra libFuzzer flags, e.g. "-jobs=2 -workers=2" for long runs on a quiet machine).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS_ALL=(vring packed memtable)
CXX=${FUZZ_CXX:-clang++}
OUT=${FUZZ_OUT:-.cache/fuzz}  # not under build/: node-gyp rebuild deletes build/
CXXFLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Inative)
CORE=(native/core/guest_memory.cc native/core/vring.cc native/core/packed_vring.cc)
# What guest_memory.cc may need besides (the SIGBUS guard for truncated memory files), when present.
for f in native/core/fault_guard.cc; do [ -f "$f" ] && CORE+=("$f"); done
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

die_setup() { echo "fuzz.sh: $*" >&2; exit 2; }

build() {
  command -v "$CXX" >/dev/null || die_setup "$CXX not found (Debian: apt-get install clang libclang-rt-14-dev)"
  mkdir -p "$OUT"
  for t in "$@"; do
    [ -f "fuzz/fuzz_$t.cc" ] || die_setup "no target fuzz/fuzz_$t.cc"
    local bin="$OUT/fuzz_$t"
    # Rebuild when a source is newer than the binary (cheap check; a clean build takes ~20 s per target).
    if [ -x "$bin" ] && [ -z "$(find "fuzz/fuzz_$t.cc" native/*/*.h "${CORE[@]}" -newer "$bin" 2>/dev/null)" ]; then
      continue
    fi
    echo "== build $bin"
    if ! "$CXX" "${CXXFLAGS[@]}" -o "$bin.tmp" "fuzz/fuzz_$t.cc" "${CORE[@]}" 2>"$OUT/build-$t.log"; then
      cat "$OUT/build-$t.log" >&2
      if grep -q 'libclang_rt.fuzzer\|fsanitize=fuzzer' "$OUT/build-$t.log"; then
        die_setup "libFuzzer runtime missing (Debian: apt-get install libclang-rt-14-dev)"
      fi
      die_setup "build of fuzz_$t failed"
    fi
    mv "$bin.tmp" "$bin"
  done
}

mode=run
secs=60
if [ "${1:-}" = "--build" ]; then mode=build; shift
elif [ "${1:-}" = "--merge" ]; then mode=merge; shift
elif [ "${1:-}" = "--replay" ]; then mode=replay; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs=$1; shift
fi

if [ "$mode" = replay ]; then
  [ $# -gt 0 ] || die_setup "--replay needs files"
  build "${TARGETS_ALL[@]}"
  status=0
  for f in "$@"; do
    t=""
    for c in "${TARGETS_ALL[@]}"; do
      case "$f" in *"/$c/"* | *"$c-"*) t=$c ;; esac
    done
    [ -n "$t" ] || die_setup "cannot tell the target of $f"
    "$OUT/fuzz_$t" "$f" || status=1
  done
  exit $status
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")
build "${targets[@]}"
[ "$mode" = build ] && exit 0

if [ "$mode" = merge ]; then
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "$OUT/$t/found"
    before=$(ls "fuzz/corpus/$t" | wc -l)
    # -use_counters=0: keep an input only for new edges, not new hit counts, so the corpus stays a few dozen files.
    "$OUT/fuzz_$t" -merge=1 -use_counters=0 "fuzz/corpus/$t" "$OUT/$t/found" >"$OUT/merge-$t.log" 2>&1 ||
      { tail -20 "$OUT/merge-$t.log" >&2; exit 1; }
    echo "$t: corpus $before -> $(ls "fuzz/corpus/$t" | wc -l) files"
  done
  exit 0
fi

mkdir -p "$OUT/artifacts"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$OUT/$t/found" "fuzz/corpus/$t"
  log="$OUT/fuzz_$t.log"
  echo "== fuzz_$t for ${secs}s (corpus fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) files; log $log)"
  start=$SECONDS
  # -timeout: one input taking 10 s is a finding (a walk that does not end); -rss_limit_mb bounds memory.
  # shellcheck disable=SC2086
  rc=0
  "$OUT/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t-" ${FUZZ_FLAGS:-} "$OUT/$t/found" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  if [ $rc = 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz_$t: ok, ${runs:-?} inputs in $((SECONDS - start))s, $cov, $(ls "$OUT/$t/found" | wc -l) new inputs in $OUT/$t/found"
  else
    status=1
    echo "fuzz_$t: FINDING (exit code $rc) after $((SECONDS - start))s; input and log:" >&2
    ls -1 "$OUT/artifacts/$t-"* 2>/dev/null >&2 || true
    grep -m1 -A30 'ERROR\|invariant failed\|runtime error\|==ERROR\|Deadly signal\|timeout' "$log" >&2 || tail -40 "$log" >&2
  fi
done
exit $status
