#!/usr/bin/env bash
# zest export end to end: memfs and pmfs mounts served by NFS-Ganesha and
# read and written by libnfs's user-space clients (nfs-cp, nfs-cat, nfs-ls;
# this kernel needs no NFS modules), all inside a network and mount
# namespace of the test's own (a veth pair, a private /run for Ganesha's
# and rpcbind's state), so nothing reaches the host's network.
#
# NFS_OPS (tests/export/nfs_ops.c, built where libnfs-dev is found) does
# the rename, unlink, mkdir and rmdir libnfs-utils has no tool for;
# without it those checks alone are skipped, with a message.
#
# Usage: export_test.sh ZEST [NFS_OPS]   (exit 77: skipped, with the reason)
set -euo pipefail

zest=$(realpath "${1:?usage: export_test.sh ZEST [NFS_OPS]}")
nfs_ops=""
[ -n "${2:-}" ] && [ -x "$2" ] && nfs_ops=$(realpath "$2")
skip() { echo "SKIP: $*"; exit 77; }

if [ -z "${ZEST_EXPORT_TEST_INNER:-}" ]; then
  [ "$(id -u)" -eq 0 ] || skip "needs root (network namespace, FUSE mounts)"
  [ -e /dev/fuse ] || skip "no /dev/fuse"
  command -v ganesha.nfsd >/dev/null || skip "ganesha.nfsd missing: apt-get install nfs-ganesha nfs-ganesha-vfs"
  compgen -G "/usr/lib/*/ganesha/libfsalvfs.so" >/dev/null || compgen -G "/usr/lib*/ganesha/libfsalvfs.so" >/dev/null ||
    skip "Ganesha's VFS FSAL missing: apt-get install nfs-ganesha-vfs"
  for t in nfs-ls nfs-cp nfs-cat; do
    command -v $t >/dev/null || skip "$t missing: apt-get install libnfs-utils"
  done
  command -v rpcbind >/dev/null || skip "rpcbind missing (nfs-ganesha depends on it): apt-get install rpcbind"
  command -v unshare >/dev/null && command -v ip >/dev/null || skip "needs unshare and ip"
  unshare -n -m true 2>/dev/null || skip "cannot create network and mount namespaces"
  # The test proper runs in its own network and mount namespaces; they and
  # everything in them (veth pair, mounts of /run) end with it.
  exec env ZEST_EXPORT_TEST_INNER=1 unshare -n -m --propagation private "$0" "$zest" ${nfs_ops:+"$nfs_ops"}
fi

# --- inside the namespaces -------------------------------------------------
tmp=$(mktemp -d /tmp/zest-export-test.XXXXXX)
mem="$tmp/mem" pm="$tmp/pm" pool="$tmp/pool"
mkdir -p "$mem" "$pm"
bg_pids=()
failed=1

cleanup() {
  set +e
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for m in "$mem" "$pm"; do
    "$zest" export --stop "$m" >/dev/null 2>&1
  done
  if [ "$failed" -ne 0 ]; then
    for l in /run/zest/export/*.log; do
      [ -f "$l" ] || continue
      echo "--- $l (errors)"
      grep -E ':(CRIT|MAJ|FATAL) :' "$l" | grep -v -E 'DBUS|krb5|principal nfs' | tail -20
    done
  fi
  for m in "$mem" "$pm"; do
    mountpoint -q "$m" && "$zest" umount "$m"
  done
  [ -n "${rpcbind_pid:-}" ] && kill "$rpcbind_pid" 2>/dev/null && wait "$rpcbind_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }

# /run private to this mount namespace: Ganesha's pid and state files
# (zest export's /run/zest/export) and rpcbind's socket stay here.
mount -t tmpfs -o mode=0755 zest-export-test /run
ip link set lo up
ip link add zxa type veth peer name zxb 2>/dev/null || skip "cannot create a veth pair in the namespace"
ip addr add 10.77.0.1/24 dev zxa
ip addr add 10.77.0.2/24 dev zxb
ip link set zxa up
ip link set zxb up
addr=10.77.0.1

# NFSv3 needs rpcbind (nfs-ganesha depends on it); one of the test's own,
# on the private /run.
mkdir -p /run/rpcbind
rpcbind -f -w &
rpcbind_pid=$!

step "mount memfs and pmfs"
"$zest" mount --fs memfs "$mem"
fss="mem pm"
if "$zest" mkfs --help >/dev/null 2>&1; then
  "$zest" mkfs -s 256M "$pool" >/dev/null
  "$zest" mount "$pool" "$pm"
else
  echo "zest is built without pmfs (ZEST_PMFS=OFF): memfs only"
  fss=mem
fi

step "refusals"
out=$("$zest" export "$tmp" 2>&1) && fail "export of a plain directory succeeded"
grep -q "not a mount point" <<<"$out" || fail "unexpected message: $out"
out=$("$zest" export /run 2>&1) && fail "export of tmpfs succeeded"
grep -q "not a zest file system" <<<"$out" || fail "unexpected message: $out"
out=$("$zest" export --squash some "$mem" 2>&1) && fail "--squash some accepted"
out=$("$zest" export --ganesha /nonexistent "$mem" 2>&1) && fail "missing ganesha accepted"
grep -q "not an executable" <<<"$out" || fail "unexpected message: $out"

step "--print-config"
conf=$("$zest" export --print-config --pseudo /m --clients 10.77.0.0/24 --squash none --port 2049 \
  --bind $addr "$mem")
grep -q "Path = \"$mem\";" <<<"$conf" || fail "no Path in: $conf"
grep -q 'Pseudo = "/m";' <<<"$conf" || fail "no Pseudo in: $conf"
grep -q 'Clients = 10.77.0.0/24;' <<<"$conf" || fail "no Clients in: $conf"
grep -q 'Squash = No_Root_Squash;' <<<"$conf" || fail "no Squash in: $conf"
grep -q 'Name = VFS;' <<<"$conf" || fail "no FSAL in: $conf"
[ -z "$(ls /run/zest/export 2>/dev/null)" ] || fail "--print-config started something"

# The exports take turns on port 2049 and on rpcbind (NFSv3 registers
# with it; two Ganeshas would take each other's registration).
export_fs() {  # NAME MOUNTPOINT
  "$zest" export --bind $addr --port 2049 --pseudo "/$1" --squash none --clients 10.77.0.0/24 \
    --nfs-versions 3,4 "$2"
}

# roundtrip SRC NAME: in over NFSv3 (libnfs-utils 4.0's NFSv4 client cannot
# encode a WRITE of more than about 3.9 KB: "ZDR error: Failed to encode
# COMPOUND4args"), back over NFSv3 and NFSv4, and the same bytes in the
# zest mount itself. Files under 3000 bytes go in over NFSv4 as well.
roundtrip() {
  local src=$1 name=$2 in=$v3
  [ "$(stat -c %s "$src")" -lt 3000 ] && in=$v4
  nfs-cp "$src" "${in%%\?*}/$name?${in#*\?}" >/dev/null || fail "nfs-cp to $in $name"
  rm -f "$tmp/back"
  nfs-cp "${v3%%\?*}/$name?${v3#*\?}" "$tmp/back" >/dev/null || fail "nfs-cp from $name"
  cmp "$src" "$tmp/back" || fail "$name read back over NFSv3 differs"
  nfs-cat "${v4%%\?*}/$name?${v4#*\?}" | cmp "$src" - || fail "$name read back over NFSv4 differs"
  cmp "$src" "$mnt/$name" || fail "$mnt/$name differs from what NFS wrote"
}
url() { echo "${2%%\?*}/$1?${2#*\?}"; }  # url NAME BASE?QUERY

head -c 3000001 /dev/urandom >"$tmp/big"
head -c 2999 /dev/urandom >"$tmp/small"
head -c 1 /dev/urandom >"$tmp/one"
: >"$tmp/empty"
for fs in $fss; do
  eval "mnt=\$$fs"
  v3="nfs://$addr$mnt?version=3" v4="nfs://$addr/$fs?version=4"
  step "$fs: export"
  export_fs $fs "$mnt"
  out=$("$zest" export --bind $addr --port 2051 "$mnt" 2>&1) && fail "exported twice"
  grep -q "already exported" <<<"$out" || fail "unexpected message: $out"

  step "$fs: create, write, read back"
  roundtrip "$tmp/big" big
  roundtrip "$tmp/small" small
  roundtrip "$tmp/one" one
  roundtrip "$tmp/empty" empty
  out=$(nfs-cp "$tmp/one" "$(url one "$v4")" 2>&1) && fail "nfs-cp over an existing file succeeded"

  step "$fs: files made in the mount show over NFS, in subdirectories too"
  mkdir -p "$mnt/dir/sub"
  cp "$tmp/big" "$mnt/dir/sub/local"
  nfs-cat "$(url dir/sub/local "$v4")" | cmp "$tmp/big" - || fail "$fs: dir/sub/local differs"
  roundtrip "$tmp/big" dir/sub/nfs

  step "$fs: list"
  echo x >"$mnt/owned"
  chown 1234:5678 "$mnt/owned"
  grep -qE ' 1234 +5678 .* owned$' <<<"$(nfs-ls "$(url "" "$v4")")" || fail "$fs: numeric owners not shown"
  for v in "$v3" "$v4"; do
    listing=$(nfs-ls "$(url "" "$v")")
    for n in big small one empty dir; do
      grep -qE " $n\$" <<<"$listing" || fail "$fs: $n missing from listing: $listing"
    done
    size=$(awk '$NF=="big"{print $5}' <<<"$listing")
    [ "$size" = 3000001 ] || fail "$fs: big listed with size '$size': $listing"
    grep -qE ' local$' <<<"$(nfs-ls "$(url dir/sub/ "$v")")" || fail "$fs: dir/sub/local not listed"
  done

  if [ -n "$nfs_ops" ]; then
    step "$fs: mkdir, rename, unlink, rmdir over NFSv3 and NFSv4"
    for v in "$v3" "$v4"; do
      d=ops${v##*=}
      ops() { "$nfs_ops" "$v" "$@"; }
      ops mkdir $d || fail "$fs: mkdir $d over $v"
      [ -d "$mnt/$d" ] || fail "$fs: $d made over NFS is not a directory in the mount"
      grep -qE "^d.* $d\$" <<<"$(nfs-ls "$(url "" "$v")")" || fail "$fs: $d not listed as a directory"
      ops mkdir $d >/dev/null 2>&1 && fail "$fs: mkdir over an existing $d succeeded"
      ops mkdir $d/sub || fail "$fs: mkdir $d/sub"
      nfs-cp "$tmp/small" "$(url $d/a "$v")" >/dev/null || fail "$fs: nfs-cp $d/a"
      nfs-cp "$tmp/one" "$(url $d/b "$v")" >/dev/null || fail "$fs: nfs-cp $d/b"

      # rename to a new name: the old one is gone, the new one has the bytes.
      ops rename $d/a $d/c || fail "$fs: rename $d/a $d/c over $v"
      listing=$(nfs-ls "$(url $d/ "$v")")
      grep -qE ' a$' <<<"$listing" && fail "$fs: $d/a still listed after the rename: $listing"
      grep -qE ' c$' <<<"$listing" || fail "$fs: $d/c not listed after the rename: $listing"
      nfs-cat "$(url $d/a "$v")" >/dev/null 2>&1 && fail "$fs: $d/a still readable after the rename"
      nfs-cat "$(url $d/c "$v")" | cmp "$tmp/small" - || fail "$fs: $d/c differs after the rename"
      [ ! -e "$mnt/$d/a" ] || fail "$fs: $mnt/$d/a still in the mount after the rename"
      cmp "$tmp/small" "$mnt/$d/c" || fail "$fs: $mnt/$d/c differs after the rename"
      [ "$(ops stat $d/c)" = 2999 ] || fail "$fs: stat $d/c: '$(ops stat $d/c 2>&1)'"

      # rename over an existing name replaces it.
      ops rename $d/c $d/b || fail "$fs: rename $d/c over $d/b"
      listing=$(nfs-ls "$(url $d/ "$v")")
      grep -qE ' c$' <<<"$listing" && fail "$fs: $d/c still listed after the rename over b: $listing"
      nfs-cat "$(url $d/b "$v")" | cmp "$tmp/small" - || fail "$fs: $d/b not replaced by the rename"
      cmp "$tmp/small" "$mnt/$d/b" || fail "$fs: $mnt/$d/b not replaced by the rename"
      [ ! -e "$mnt/$d/c" ] || fail "$fs: $mnt/$d/c still in the mount"

      # rename into a subdirectory.
      ops rename $d/b $d/sub/b || fail "$fs: rename $d/b $d/sub/b"
      [ ! -e "$mnt/$d/b" ] && cmp "$tmp/small" "$mnt/$d/sub/b" || fail "$fs: $d/sub/b after the rename"
      nfs-cat "$(url $d/sub/b "$v")" | cmp "$tmp/small" - || fail "$fs: $d/sub/b differs over NFS"

      # unlink and rmdir.
      ops rmdir $d/sub >/dev/null 2>&1 && fail "$fs: rmdir of a non-empty $d/sub succeeded"
      ops unlink $d/sub/b || fail "$fs: unlink $d/sub/b over $v"
      [ ! -e "$mnt/$d/sub/b" ] || fail "$fs: $mnt/$d/sub/b still in the mount after the unlink"
      ops stat $d/sub/b >/dev/null 2>&1 && fail "$fs: $d/sub/b still there over NFS after the unlink"
      ops unlink $d/sub/b >/dev/null 2>&1 && fail "$fs: unlink of a missing $d/sub/b succeeded"
      ops rmdir $d/sub || fail "$fs: rmdir $d/sub over $v"
      ops rmdir $d || fail "$fs: rmdir $d over $v"
      [ ! -e "$mnt/$d" ] || fail "$fs: $mnt/$d still in the mount after the rmdir"
      grep -qE " $d\$" <<<"$(nfs-ls "$(url "" "$v")")" && fail "$fs: $d still listed after the rmdir"
    done
  else
    echo "$fs: no nfs_ops (built only where libnfs-dev is found): skipping mkdir, rename, unlink, rmdir"
  fi

  step "$fs: 8 concurrent clients"
  pids=()
  for i in $(seq 8); do
    head -c $((100000 + i * 40099)) /dev/urandom >"$tmp/c$i"
    nfs-cp "$tmp/c$i" "$(url c$i "$v3")" >/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "$fs: a concurrent nfs-cp failed"; done
  pids=()
  for i in $(seq 8); do
    v=$v4
    [ $((i % 2)) -eq 0 ] && v=$v3
    (nfs-cat "$(url c$i "$v")" | cmp -s "$tmp/c$i" -) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "$fs: a concurrent read back differed"; done
  for i in $(seq 8); do cmp "$tmp/c$i" "$mnt/c$i" || fail "$fs: c$i differs in the mount"; done

  step "$fs: handles after the kernel drops its caches"
  # Ganesha keeps the handles it made; reaching them again after the drop
  # takes open_by_handle_at, which the kernel answers by LOOKUP(ino, ".").
  nfs-ls "$(url dir/sub/ "$v4")" >/dev/null
  # A reader that keeps reading across the drops.
  (
    for i in $(seq 40); do
      nfs-cat "$(url dir/sub/local "$v4")" | cmp -s "$tmp/big" - || exit 1
    done
  ) &
  reader=$!
  bg_pids+=("$reader")
  for i in $(seq 5); do
    sync
    echo 3 >/proc/sys/vm/drop_caches
    nfs-cat "$(url big "$v4")" | cmp "$tmp/big" - || fail "$fs: big differs after drop_caches"
    grep -qE ' nfs$' <<<"$(nfs-ls "$(url dir/sub/ "$v4")")" || fail "$fs: dir/sub not listable after drop_caches"
    nfs-cat "$(url dir/sub/nfs "$v3")" | cmp "$tmp/big" - || fail "$fs: dir/sub/nfs differs after drop_caches"
    sleep 0.2
  done
  wait "$reader" || fail "$fs: the reader saw different bytes while caches were dropped"
  bg_pids=()
  echo 3 >/proc/sys/vm/drop_caches
  roundtrip "$tmp/one" dir/sub/after-drop

  if [ $fs = pm ]; then
    step "pm: a restart of Ganesha and of the pmfs mount keeps acknowledged writes"
    head -c 777777 /dev/urandom >"$tmp/kept"
    nfs-cp "$tmp/kept" "$(url kept "$v3")" >/dev/null || fail "nfs-cp kept"
    nfs-cp "$tmp/small" "$(url kept4 "$v4")" >/dev/null || fail "nfs-cp kept4"
    grep -q stopped <<<"$("$zest" export --stop "$pm")" || fail "--stop pm"
    "$zest" umount "$pm"
    # The server lets go of the pool a moment after the unmount.
    for i in $(seq 50); do "$zest" mount "$pool" "$pm" >/dev/null 2>&1 && break; sleep 0.2; done
    mountpoint -q "$pm" || fail "remount of the pool"
    export_fs pm "$pm"
    nfs-cat "$(url kept "$v4")" | cmp "$tmp/kept" - || fail "kept differs after the restart"
    nfs-cat "$(url kept4 "$v3")" | cmp "$tmp/small" - || fail "kept4 differs after the restart"
    nfs-cat "$(url big "$v4")" | cmp "$tmp/big" - || fail "big differs after the restart"
    nfs-cat "$(url dir/sub/local "$v3")" | cmp "$tmp/big" - || fail "dir/sub/local differs after the restart"
  fi

  step "$fs: --stop"
  grep -q stopped <<<"$("$zest" export --stop "$mnt")" || fail "--stop $fs"
  out=$("$zest" export --stop "$mnt" 2>&1) && fail "a second --stop succeeded"
  nfs-ls "$(url "" "$v4")" >/dev/null 2>&1 && fail "the $fs export still answers after --stop"
done

step "mem: --squash root (the default) and --read-only"
"$zest" export --bind $addr --port 2049 --pseudo /mem "$mem" >/dev/null
nfs-cp "$tmp/one" "nfs://$addr/mem/squashed?version=4" >/dev/null || fail "nfs-cp squashed"
[ "$(stat -c %u:%g "$mem/squashed")" = 65534:65534 ] || fail "root not squashed: $(stat -c %u:%g "$mem/squashed")"
"$zest" export --stop "$mem" >/dev/null
"$zest" export --bind $addr --port 2049 --pseudo /mem --read-only --squash none "$mem" >/dev/null
nfs-cp "$tmp/one" "nfs://$addr/mem/ro?version=4" >/dev/null 2>&1 && fail "wrote to a read-only export"
[ ! -e "$mem/ro" ] || fail "a read-only export made a file"
nfs-cat "nfs://$addr/mem/big?version=4" | cmp "$tmp/big" - || fail "read-only export: big differs"
"$zest" export --stop "$mem" >/dev/null

failed=0
echo "PASS"
