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
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='vs::Switch::poll_once()' \
    build/native-bench/dp_instr "$size" "$rounds" ${3:-} 2>&1 | grep -E 'forwarded|Collected'
  total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  echo "instructions per frame (poll pass, both directions): $(awk -v t="$total" -v n=$((rounds * 64)) 'BEGIN { printf "%.2f", t / n }')"
  callgrind_annotate --inclusive=no "$out" | sed -n '/file:function/,/^$/p' | head -20
  exit 0
fi
g++ "${flags[@]}" -o build/native-bench/dp_bench bench/native/dp_bench.cc "${core[@]}"
exec build/native-bench/dp_bench "$@"
