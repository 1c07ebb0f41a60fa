#!/bin/bash
# Prepare this host for the DPDK-based tests and benchmarks (run as root).
#  - reserves 2 MiB hugepages (VS_HUGEPAGES, default 1024 = 2 GiB) if fewer are reserved
#  - mounts hugetlbfs at /dev/hugepages if nothing is mounted there
# Idempotent: safe to run many times. Exits non-zero with a clear message on failure.
set -euo pipefail

want="${VS_HUGEPAGES:-1024}"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host.sh: must run as root (hugepages need it)" >&2
  exit 1
fi

have="$(cat /proc/sys/vm/nr_hugepages)"
if [ "$have" -lt "$want" ]; then
  # Compacting memory first raises the odds of getting contiguous 2 MiB pages.
  echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
  echo "$want" > /proc/sys/vm/nr_hugepages
  have="$(cat /proc/sys/vm/nr_hugepages)"
  if [ "$have" -lt "$want" ]; then
    echo "setup-host.sh: asked for $want hugepages, the kernel gave $have" >&2
    # Fewer pages are still usable for short tests; only fail when none at all.
    [ "$have" -gt 0 ] || exit 1
  fi
fi

if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
fi

free_pages="$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"
echo "setup-host.sh: nr_hugepages=$have free=$free_pages hugetlbfs=/dev/hugepages"
