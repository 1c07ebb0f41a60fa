#!/usr/bin/env bash
# Builds the native data plane without Node and runs its tests: plain, or under sanitizers.
#   scripts/native-test.sh            optimised build
#   scripts/native-test.sh --sanitize AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-plain}
out=build/native-test/$mode
mkdir -p "$out"
flags=(-std=c++17 -O2 -g -Wall -Wextra -Wno-unused-parameter -pthread -Inative)
if [ "$mode" = "--sanitize" ]; then
  flags+=(-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  # Our SIGBUS handler (native/core/fault_guard.cc) must see guest-memory faults, not ASan's.
  export ASAN_OPTIONS=handle_sigbus=0:allow_user_segv_handler=1
fi
mapfile -t core < <(grep -v '^#' native/sources.list)  # the same list binding.gyp builds
status=0
for t in test/native/*_test.cc; do
  bin="$out/$(basename "$t" .cc)"
  g++ "${flags[@]}" -o "$bin" "$t" "${core[@]}"
  echo "== $bin"
  "$bin" || status=1
done
exit $status
