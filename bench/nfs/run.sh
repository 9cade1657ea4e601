#!/usr/bin/env bash
# NFS through Ganesha: zest pmfs (`zest export`) against tmpfs (the same
# Ganesha configuration, VFS FSAL), read and written by nfs_load's libnfs
# clients over NFSv3, in one run (docs/benchmarks.md).
#
# Usage (root): bench/nfs/run.sh [--zest build/tools/zest]
#   [--nfs-load build/bench/nfs/nfs_load] [--seconds 5] [--file-size 64M]
#   [--clients "1 8"] [--ops "randread4k randwrite4k seqread1m seqwrite1m create"]
# Everything runs in a network and mount namespace of its own (a veth
# pair, a private /run for Ganesha's and rpcbind's state, as in
# tests/export/export_test.sh): a fresh pmfs pool (`zest mkfs`) and a
# tmpfs, both on private tmpfs mounts, each exported in turn on port 2049.
# Prints one TSV line per cell, then a markdown table with pmfs/tmpfs per
# row. Everything it starts, mounts or creates is removed on exit, also
# on failure.
set -euo pipefail

zest=build/tools/zest
nfs_load=build/bench/nfs/nfs_load
seconds=5
file_size=64M
clients="1 8"
ops="randread4k randwrite4k seqread1m seqwrite1m create"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
args=("$@")
while (($#)); do
  case "$1" in
    --zest) zest=$2; shift 2 ;;
    --nfs-load) nfs_load=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --file-size) file_size=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --ops) ops=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "${ZEST_NFS_BENCH_INNER:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "run.sh: run as root (namespaces, mounts, Ganesha)" >&2; exit 1; }
  for p in ganesha.nfsd rpcbind nfs-ls unshare ip; do
    command -v $p >/dev/null || { echo "run.sh: $p is not installed (scripts/setup installs it)" >&2; exit 1; }
  done
  [ -x "$zest" ] || { echo "run.sh: $zest: not an executable (build first)" >&2; exit 1; }
  [ -x "$nfs_load" ] || { echo "run.sh: $nfs_load: not an executable (cmake --build build --target nfs_load)" >&2; exit 1; }
  exec env ZEST_NFS_BENCH_INNER=1 unshare -n -m --propagation private "$0" "${args[@]}"
fi

# --- inside the namespaces -------------------------------------------------
zest=$(realpath "$zest")
nfs_load=$(realpath "$nfs_load")
work=$(mktemp -d /tmp/zest-nfs-bench.XXXXXX)
pools="$work/pools" pm="$work/pm" tm="$work/tmpfs"
addr=10.78.0.1
rpcbind_pid="" tm_ganesha_pid=""
finished=0
cleanup() {
  set +e
  if [ "$finished" -eq 0 ]; then
    for l in /run/zest/export/*.log "$work/tmpfs.log"; do
      [ -f "$l" ] || continue
      echo "--- $l (errors)" >&2
      grep -E ':(CRIT|MAJ|FATAL) :' "$l" | grep -v -E 'DBUS|krb5|principal nfs' | tail -20 >&2
    done
  fi
  [ -n "$tm_ganesha_pid" ] && kill "$tm_ganesha_pid" 2>/dev/null && wait "$tm_ganesha_pid" 2>/dev/null
  mountpoint -q "$pm" && { "$zest" export --stop "$pm" >/dev/null 2>&1; "$zest" umount "$pm" || umount -l "$pm"; }
  [ -n "$rpcbind_pid" ] && kill "$rpcbind_pid" 2>/dev/null && wait "$rpcbind_pid" 2>/dev/null
  for m in "$tm" "$pools" /run; do mountpoint -q "$m" && umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$pools" "$pm" "$tm"
mount -t tmpfs -o mode=0755 zest-nfs-bench /run
ip link set lo up
ip link add znb0 type veth peer name znb1
ip addr add $addr/24 dev znb0
ip addr add 10.78.0.2/24 dev znb1
ip link set znb0 up
ip link set znb1 up
mkdir -p /run/rpcbind
rpcbind -f -w &
rpcbind_pid=$!

mount -t tmpfs -o size=3g zest-nfs-bench-pools "$pools"
mount -t tmpfs -o size=2g zest-nfs-bench-tmpfs "$tm"
"$zest" mkfs --size 2G "$pools/p.pool" >/dev/null
"$zest" mount "$pools/p.pool" "$pm" >/dev/null

export_opts=(--bind $addr --port 2049 --squash none --clients 10.78.0.0/24 --nfs-versions 3,4)

wait_served() {  # PATH: until Ganesha answers NFSv3 for PATH (30 s)
  for _ in $(seq 150); do
    nfs-ls "nfs://$addr$1?version=3" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "run.sh: Ganesha does not serve $1 after 30 s" >&2
  return 1
}

start_export() {  # pmfs|tmpfs
  if [ "$1" = pmfs ]; then
    "$zest" export "${export_opts[@]}" --pseudo /pm "$pm" >/dev/null
    wait_served "$pm"
  else
    # `zest export` serves zest mounts only: the same configuration, with
    # the tmpfs as its Path, run by hand.
    local conf=$work/tmpfs.conf
    "$zest" export --print-config "${export_opts[@]}" --pseudo /tm "$pm" |
      sed -e "s|Path = \"$pm\";|Path = \"$tm\";|" -e 's|Pseudo = "/pm";|Pseudo = "/tm";|' \
          -e "s|RecoveryRoot = \".*\";|RecoveryRoot = \"$work/tmpfs.v4recov\";|" >"$conf"
    grep -q "Path = \"$tm\";" "$conf" || { echo "run.sh: could not make the tmpfs configuration" >&2; return 1; }
    mkdir -p "$work/tmpfs.v4recov"
    ganesha.nfsd -F -f "$conf" -L "$work/tmpfs.log" -p "$work/tmpfs.pid" &
    tm_ganesha_pid=$!
    wait_served "$tm"
  fi
}

stop_export() {  # pmfs|tmpfs
  if [ "$1" = pmfs ]; then
    "$zest" export --stop "$pm" >/dev/null
  else
    kill "$tm_ganesha_pid"
    wait "$tm_ganesha_pid" || true
    tm_ganesha_pid=""
  fi
}

results="$work/results.tsv"
: >"$results"
printf 'fs\top\tclients\tops_per_s\tMB_per_s\tmean_us\tp99_us\n'
for fs in pmfs tmpfs; do
  if [ $fs = pmfs ]; then path=$pm; else path=$tm; fi
  start_export $fs
  for op in $ops; do
    for n in $clients; do
      line=$("$nfs_load" --server $addr --export "$path" --clients "$n" --seconds "$seconds" \
        --op "$op" --file-size "$file_size")
      printf '%s\t%s\n' $fs "$line" | tee -a "$results"
      rm -rf "$path"/nfs_load.*.*/  # what `create` made; the data files stay
    done
  done
  stop_export $fs
done

echo
echo "| row | clients | tmpfs ops/s | tmpfs MB/s | tmpfs mean / p99 µs | pmfs ops/s | pmfs MB/s | pmfs mean / p99 µs | pmfs / tmpfs | ≥ 0.8x |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
awk -F'\t' '
  { k = $2 "\t" $3; ops[$1, k] = $4; mb[$1, k] = $5; lat[$1, k] = $6 " / " $7
    if (!(k in seen)) { seen[k] = 1; order[n++] = k } }
  END {
    for (i = 0; i < n; i++) {
      k = order[i]; split(k, a, "\t")
      r = ops["tmpfs", k] > 0 ? ops["pmfs", k] / ops["tmpfs", k] : 0
      verdict = a[2] == 8 ? (r >= 0.8 ? "met" : "missed") : "—"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %.2fx | %s |\n", a[1], a[2],
        ops["tmpfs", k], mb["tmpfs", k], lat["tmpfs", k], ops["pmfs", k], mb["pmfs", k],
        lat["pmfs", k], r, verdict
    }
  }' "$results"
finished=1
