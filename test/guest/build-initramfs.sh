#!/bin/bash
# Build the test guest's initramfs from Debian packages already on this host
# (busybox-static, linux-image-amd64, iperf3); nothing is downloaded.
#
# Usage: test/guest/build-initramfs.sh [--print-kernel]
#   Prints two lines on stdout:  KERNEL=/boot/vmlinuz-<kver>  and  INITRD=<path>
#   The image is cached under .cache/guest/<kver>-<hash of this script>/ and is only
#   rebuilt when the kernel version or this script changes. Set VS_KVER to pick a
#   kernel version (default: the newest /lib/modules/<kver> that has /boot/vmlinuz-<kver>).
#
# The guest's /init:
#   - mounts proc, sys, devtmpfs
#   - loads the virtio-net-pci modules (order resolved from modules.dep)
#   - brings lo and every ethN up, assigns addresses from the kernel command line:
#       vs.ip=169.254.1.1/16      address of eth0
#       vs.ipN=169.254.2.1/16     address of ethN (N = 1, 2, ...)
#       vs.mtu=9000               MTU of every ethN (optional)
#       vs.noipv6=1               disable IPv6 in the guest (optional)
#     Only link-local addresses (169.254.0.0/16) are accepted; others are refused.
#   - prints VS-GUEST-READY on the console and runs a shell on ttyS0
#     (respawned if it exits).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
self="$here/$(basename "${BASH_SOURCE[0]}")"

pick_kver() {
  if [ -n "${VS_KVER:-}" ]; then echo "$VS_KVER"; return; fi
  local k best=""
  for k in $(ls -1 /lib/modules 2>/dev/null | sort -V); do
    [ -r "/boot/vmlinuz-$k" ] && [ -r "/lib/modules/$k/modules.dep" ] && best="$k"
  done
  if [ -z "$best" ]; then
    echo "build-initramfs: no kernel found: need /boot/vmlinuz-<kver> and /lib/modules/<kver> (apt-get install linux-image-amd64)" >&2
    exit 1
  fi
  echo "$best"
}

need() {
  local f
  for f in "$@"; do
    if [ ! -e "$f" ]; then
      echo "build-initramfs: missing $f (apt-get install busybox-static iperf3 linux-image-amd64)" >&2
      exit 1
    fi
  done
}

kver="$(pick_kver)"
kernel="/boot/vmlinuz-$kver"
moddir="/lib/modules/$kver"
busybox=/bin/busybox
[ -x "$busybox" ] || busybox=/usr/bin/busybox
need "$kernel" "$moddir/modules.dep" "$busybox" /usr/bin/iperf3
# ldd succeeds on dynamic binaries: we need the static build from busybox-static.
if ldd "$busybox" >/dev/null 2>&1; then
  echo "build-initramfs: $busybox is not static (apt-get install busybox-static)" >&2
  exit 1
fi

hash="$(sha256sum "$self" | cut -c1-12)"
out="$root/.cache/guest/$kver-$hash"
img="$out/initramfs.cpio.gz"

if [ -s "$img" ] && [ "${1:-}" != "--force" ]; then
  echo "KERNEL=$kernel"
  echo "INITRD=$img"
  exit 0
fi

mkdir -p "$root/.cache/guest"
stage="$(mktemp -d "$root/.cache/guest/stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,root,run,modules}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$stage/bin/$applet"
done

# Modules: resolve the dependency closure of virtio_pci and virtio_net from
# modules.dep, in load order (dependencies first). modules.dep lists each
# module's full dependency set; we order it with a depth-first walk.
declare -A seen=()
order=()
deps_of() {
  # prints the dependency paths of module path $1 (relative to moddir)
  awk -v m="$1:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"
}
path_of() {
  # module name -> path relative to moddir (names in modules.dep use _ or -)
  local name="$1" p
  p="$(awk -F: -v n="$name" '{ f = $1; sub(".*/", "", f); sub("\\.ko.*$", "", f); gsub("-", "_", f); if (f == n) { print $1; exit } }' "$moddir/modules.dep")"
  if [ -z "$p" ]; then
    # built into the kernel? then there is nothing to load
    if grep -qE "/$name\.ko" "$moddir/modules.builtin" 2>/dev/null; then return 0; fi
    echo "build-initramfs: module $name not found in $moddir/modules.dep" >&2
    exit 1
  fi
  echo "$p"
}
visit() {
  local p="$1" d
  [ -n "${seen[$p]:-}" ] && return 0
  seen[$p]=1
  for d in $(deps_of "$p"); do visit "$d"; done
  order+=("$p")
}
for m in virtio_pci virtio_net; do
  p="$(path_of "$m")"
  [ -n "$p" ] && visit "$p"
done
: > "$stage/modules/order"
for p in "${order[@]}"; do
  f="$(basename "$p")"
  case "$f" in
    *.ko) cp "$moddir/$p" "$stage/modules/$f" ;;
    *.ko.xz) xz -dc "$moddir/$p" > "$stage/modules/${f%.xz}"; f="${f%.xz}" ;;
    *.ko.zst) zstd -qdc "$moddir/$p" > "$stage/modules/${f%.zst}"; f="${f%.zst}" ;;
    *.ko.gz) gzip -dc "$moddir/$p" > "$stage/modules/${f%.gz}"; f="${f%.gz}" ;;
    *) echo "build-initramfs: unexpected module file $p" >&2; exit 1 ;;
  esac
  echo "$f" >> "$stage/modules/order"
done

# iperf3 and its shared libraries, at the same paths as on the host.
copy_with_libs() {
  local bin="$1" lib
  mkdir -p "$stage$(dirname "$bin")"
  cp -L "$bin" "$stage$bin"
  for lib in $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
}
copy_with_libs /usr/bin/iperf3
# The dynamic loader is looked up at /lib64/ld-linux-x86-64.so.2.
if [ -e /lib64/ld-linux-x86-64.so.2 ] && [ ! -e "$stage/lib64/ld-linux-x86-64.so.2" ]; then
  cp -L /lib64/ld-linux-x86-64.so.2 "$stage/lib64/"
fi

cat > "$stage/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
PW
cat > "$stage/etc/group" <<'GR'
root:x:0:
GR
echo "127.0.0.1 localhost" > "$stage/etc/hosts"
# iperf3 looks up services; an empty file keeps libc quiet.
: > "$stage/etc/services"

cat > "$stage/etc/profile" <<'PROFILE'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
export PS1='vs-guest# '
# wide terminal: the line editor does not wrap the long lines the harness types
stty cols 4096 rows 50 2>/dev/null
cd /root
PROFILE

cat > "$stage/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Keep kernel messages off the console: tests parse what the shell prints.
echo 1 > /proc/sys/kernel/printk

arg() {  # value of vs.<name>= on the kernel command line
  for w in $(cat /proc/cmdline); do
    case "$w" in "vs.$1="*) echo "${w#vs.$1=}"; return 0 ;; esac
  done
  return 1
}

if [ "$(arg noipv6)" = 1 ]; then
  echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
  echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
fi
# No router solicitations: the guest only ever talks link-local.
echo 0 > /proc/sys/net/ipv6/conf/default/router_solicitations 2>/dev/null

while read -r m; do
  insmod "/modules/$m" || echo "VS-GUEST-ERROR insmod $m failed"
done < /modules/order

ip link set lo up
# Wait (up to ~5 s) for the NICs QEMU gave us to show up.
i=0
while [ $i -lt 50 ]; do
  n=$(ls -d /sys/class/net/eth* 2>/dev/null | wc -l)
  [ "$n" -ge 1 ] && break
  # no NIC at all is fine (e.g. a boot test): stop waiting when no virtio-net device exists
  grep -q 0x1000 /sys/bus/pci/devices/*/device 2>/dev/null || grep -q 0x1041 /sys/bus/pci/devices/*/device 2>/dev/null || break
  sleep 0.1; i=$((i + 1))
done

mtu="$(arg mtu)"
for dev in /sys/class/net/eth*; do
  [ -e "$dev" ] || continue
  d="${dev##*/}"; n="${d#eth}"
  [ -n "$mtu" ] && ip link set "$d" mtu "$mtu"
  ip link set "$d" up
  if [ "$n" = 0 ]; then a="$(arg ip)"; else a="$(arg "ip$n")"; fi
  if [ -n "$a" ]; then
    case "$a" in
      169.254.*) ip addr add "$a" dev "$d" ;;
      *) echo "VS-GUEST-ERROR refusing non-link-local address $a for $d" ;;
    esac
  fi
done

echo "VS-GUEST-READY $(uname -r) $(ls /sys/class/net | tr '\n' ' ')"
while :; do
  setsid cttyhack sh -l
  echo "VS-GUEST-SHELL-EXITED"
done
INIT
chmod +x "$stage/init"

tmp="$out.tmp.$$"
mkdir -p "$tmp"
(cd "$stage" && find . -print0 | sort -z | cpio --null -o -H newc --quiet | gzip -1) > "$tmp/initramfs.cpio.gz"
printf '%s\n' "${order[@]}" > "$tmp/modules.txt"
rm -rf "$out"
mv "$tmp" "$out"

echo "KERNEL=$kernel"
echo "INITRD=$img"
