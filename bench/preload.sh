#!/usr/bin/env bash
# Unmodified programs on the direct path: fio and SQLite on tmpfs, on pmfs
# through the kernel mount, and on pmfs under libzest-preload (`zest run`),
# in one run (docs/preload.md, docs/benchmarks.md).
#
# Usage (root): bench/preload.sh [--zest build/tools/zest] [--runtime 3]
#               [--txns 2000]
# fio: psync, buffered, 4 KiB random read and write at QD1 and with 4 jobs
# (threads), 1 MiB sequential read and write, on a 256 MiB file. SQLite:
# `sqlite3` inserting one row per transaction (synchronous=FULL, the
# default journal), committed transactions per second, also on ext4 (a
# loop device over an image in /var/tmp, i.e. on the disk). Everything it
# mounts or creates is removed on exit, also on failure.
set -euo pipefail

zest=build/tools/zest
runtime=3
txns=2000
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --zest) zest=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --txns) txns=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "preload.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for p in fio sqlite3 mkfs.ext4 python3; do
  command -v $p >/dev/null || { echo "preload.sh: $p is not installed (scripts/setup installs it)" >&2; exit 1; }
done
[ -x "$zest" ] || { echo "preload.sh: $zest: not an executable (build first)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "preload.sh: run as root (mounts tmpfs, FUSE and ext4)" >&2; exit 1; }

work=$(mktemp -d /tmp/zest-preload-bench.XXXXXX)
img=$(mktemp /var/tmp/zest-preload-ext4.XXXXXX)
cleanup() {
  mountpoint -q "$work/pmfs" && { "$zest" umount "$work/pmfs" 2>/dev/null || umount -l "$work/pmfs"; }
  mountpoint -q "$work/ext4" && umount -l "$work/ext4"
  mountpoint -q "$work/tmpfs" && umount -l "$work/tmpfs"
  mountpoint -q "$work/pools" && umount -l "$work/pools"
  rm -rf "$work" "$img"
}
trap cleanup EXIT
mkdir -p "$work"/{pools,tmpfs,pmfs,ext4}
mount -t tmpfs -o size=1g zest-preload-pools "$work/pools"
mount -t tmpfs -o size=1g zest-preload-tmpfs "$work/tmpfs"
"$zest" mkfs --size 768M "$work/pools/p.pool" >/dev/null
"$zest" mount --transport=uring "$work/pools/p.pool" "$work/pmfs" >/dev/null
truncate -s 1G "$img"
mkfs.ext4 -q -F "$img"
mount -o loop "$img" "$work/ext4"

# target: name dir wrapper
targets=("tmpfs $work/tmpfs" "pmfs $work/pmfs" "pmfs+shim $work/pmfs")
run_as() {  # target-name cmd...
  local t=$1; shift
  if [ "$t" = pmfs+shim ]; then "$zest" run "$@"; else "$@"; fi
}

jobs=(
  "randread4k randread 4k 1"
  "randread4k-4j randread 4k 4"
  "randwrite4k randwrite 4k 1"
  "randwrite4k-4j randwrite 4k 4"
  "seqread1m read 1m 1"
  "seqwrite1m write 1m 1"
)
for t in "${targets[@]}"; do
  read -r name dir <<<"$t"
  [ "$name" = pmfs+shim ] && continue  # the same file as pmfs
  fio --name=layout --directory="$dir" --filename=data --rw=write --bs=1m --size=256m \
      --ioengine=psync --output=/dev/null
done
declare -A res
for job in "${jobs[@]}"; do
  read -r jname rw bs nj <<<"$job"
  for t in "${targets[@]}"; do
    read -r name dir <<<"$t"
    out="$work/$name-$jname.json"
    run_as "$name" fio --name="$jname" --directory="$dir" --filename=data --rw="$rw" --bs="$bs" \
        --size=256m --ioengine=psync --numjobs="$nj" --thread --group_reporting --time_based \
        --runtime="$runtime" --randrepeat=0 --norandommap --output-format=json --output="$out"
    res["$name,$jname"]=$(python3 -c "
import json; j=json.load(open('$out'))['jobs'][0]; d=j['read'] if '$rw'.endswith('read') else j['write']
print(d['iops'] if '$bs'=='4k' else d['bw_bytes']/2**20)")
  done
done

sqlite_tps() {  # target-name dir
  local t=$1 dir=$2 script="$work/ins.sql"
  rm -f "$dir/bench.db" "$dir/bench.db-journal"
  sqlite3 "$dir/bench.db" "create table t(id integer primary key, v text);"
  python3 -c "
for i in range($txns): print(\"insert into t(v) values('value %d');\" % i)" >"$script"
  local t0 t1
  t0=$(date +%s.%N)
  run_as "$t" sqlite3 "$dir/bench.db" <"$script"
  t1=$(date +%s.%N)
  python3 -c "print($txns / ($t1 - $t0))"
}
declare -A tps
tps[tmpfs]=$(sqlite_tps tmpfs "$work/tmpfs")
tps[ext4]=$(sqlite_tps ext4 "$work/ext4")
tps[pmfs]=$(sqlite_tps pmfs "$work/pmfs")
tps[pmfs+shim]=$(sqlite_tps pmfs+shim "$work/pmfs")

echo "fio psync (buffered), ${runtime} s per job, 256 MiB file; pmfs over io_uring; $(date -u +%F)"
printf '%-16s %12s %12s %12s %14s %14s\n' job tmpfs pmfs pmfs+shim "shim/tmpfs" "shim/pmfs"
for job in "${jobs[@]}"; do
  read -r jname rw bs nj <<<"$job"
  python3 - "$jname" "$bs" "${res[tmpfs,$jname]}" "${res[pmfs,$jname]}" "${res[pmfs+shim,$jname]}" <<'PY'
import sys
n, bs, a, b, c = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
u = "IOPS" if bs == "4k" else "MiB/s"
print(f"{n:<16} {a:>8.0f} {u:<3} {b:>8.0f} {u:<3} {c:>8.0f} {u:<3} {c / a:>13.2f}x {c / b:>13.2f}x")
PY
done
echo
echo "sqlite3, $txns single-insert transactions (synchronous=FULL, journal_mode=DELETE): committed transactions/s"
printf '%-12s %10s\n' target tps
for t in tmpfs ext4 pmfs pmfs+shim; do printf '%-12s %10.0f\n' "$t" "${tps[$t]}"; done
python3 -c "print(f\"pmfs+shim vs pmfs: {${tps[pmfs+shim]}/${tps[pmfs]}:.2f}x, vs ext4: {${tps[pmfs+shim]}/${tps[ext4]}:.2f}x\")"
