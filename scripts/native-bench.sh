#!/usr/bin/env bash
# The data plane's own benchmarks, built without Node:
#   scripts/native-bench.sh [frame size] [seconds] [frames in flight]   io loop, two threads (Mpps, cycles/packet)
#   scripts/native-bench.sh --instructions [frame size] [packed]         instructions per frame under callgrind
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/native-bench
mapfile -t core < <(grep -v '^#' native/sources.list)  # the same list binding.gyp builds
flags=(-std=c++17 -O2 -g -pthread -Inative)
if [ "${1:-}" = "--instructions" ]; then
  size=${2:-64}
  rounds=20000
  g++ "${flags[@]}" -o build/native-bench/dp_instr bench/native/dp_instr.cc "${core[@]}"
  out=build/native-bench/callgrind.out
  log=build/native-bench/callgrind.log
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='vs::Engine::poll_once()' \
    build/native-bench/dp_instr "$size" "$rounds" ${3:-} > "$log" 2>&1
  grep -E 'forwarded|Collected' "$log"
  # Per frame actually forwarded: a pass may leave part of a burst for the next (the per-queue work share).
  frames=$(awk '/^forwarded/ {print $2}' "$log")
  total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  echo "instructions per frame (poll pass, both directions): $(awk -v t="$total" -v n="$frames" 'BEGIN { printf "%.2f", t / n }')"
  callgrind_annotate --inclusive=no "$out" > "$out.txt"
  awk '/file:function/ {on = 1} on && /^$/ {exit} on && n++ < 20' "$out.txt"
  exit 0
fi
g++ "${flags[@]}" -o build/native-bench/dp_bench bench/native/dp_bench.cc "${core[@]}"
exec build/native-bench/dp_bench "$@"
