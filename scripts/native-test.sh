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
  # Our SIGBUS handler (native/fault_guard.cc) must see guest-memory faults, not ASan's.
  export ASAN_OPTIONS=handle_sigbus=0:allow_user_segv_handler=1
fi
core=(native/guest_memory.cc native/dirty_log.cc native/vring.cc native/fdb.cc native/datapath.cc native/port_security.cc native/gso.cc native/vlan.cc native/nic.cc native/nic_path.cc native/nic_xdp.cc native/fault_guard.cc native/switch.cc native/driver.cc)
status=0
for t in test/native/*_test.cc; do
  bin="$out/$(basename "$t" .cc)"
  g++ "${flags[@]}" -o "$bin" "$t" "${core[@]}"
  echo "== $bin"
  "$bin" || status=1
done
exit $status
