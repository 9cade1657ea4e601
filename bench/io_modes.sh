#!/usr/bin/env bash
# What the page cache costs or saves for buffered I/O on pmfs: the default
# (buffered opens through the page cache, written through: coherent with
# shared mappings) against -o direct_io (every open FOPEN_DIRECT_IO: what
# zest did before the pwrite-vs-mmap fix; shared mappings refused), on the
# same transport, in one run, interleaved in rounds, with fio (psync, QD1).
#
# Usage (root): bench/io_modes.sh [--zest build/tools/zest] [--rounds 3]
#               [--runtime 3] [--transport uring|dev] [--json-dir DIR]
# Prints one table: median IOPS (4 KiB) or MiB/s (1 MiB) per mode and the
# ratio default / direct_io. Everything it mounts or creates is removed on
# exit, also on failure.
set -euo pipefail

zest=build/tools/zest
rounds=3
runtime=3
transport=uring
json_dir=""

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --zest) zest=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --json-dir) json_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "io_modes.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v fio >/dev/null || { echo "io_modes.sh: fio is not installed (scripts/setup installs it)" >&2; exit 1; }
[ -x "$zest" ] || { echo "io_modes.sh: $zest: not an executable (build first)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "io_modes.sh: run as root (mounts tmpfs and FUSE)" >&2; exit 1; }

work=$(mktemp -d /tmp/zest-io-modes.XXXXXX)
modes=(default direct_io)
cleanup() {
  for m in "${modes[@]}"; do
    if mountpoint -q "$work/$m"; then
      "$zest" umount "$work/$m" 2>/dev/null || umount -l "$work/$m" 2>/dev/null || true
    fi
  done
  mountpoint -q "$work/pools" && umount -l "$work/pools"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pools"
mount -t tmpfs -o size=2g zest-io-modes "$work/pools"
for m in "${modes[@]}"; do
  mkdir -p "$work/$m"
  "$zest" mkfs --size 768M "$work/pools/$m.pool" >/dev/null
  opts=()
  [ "$m" = direct_io ] && opts=(-o direct_io)
  "$zest" mount "--transport=$transport" "${opts[@]}" "$work/pools/$m.pool" "$work/$m" >/dev/null
done

# name rw bs size extra
jobs=(
  "randread4k randread 4k 256m"
  "randwrite4k randwrite 4k 256m"
  "seqread1m read 1m 256m"
  "seqwrite1m write 1m 256m"
)
declare -A results
for m in "${modes[@]}"; do
  # One data file per mode, laid out once (fio's own layout pass).
  fio --name=layout --directory="$work/$m" --filename=data --rw=write --bs=1m \
      --size=256m --ioengine=psync --output=/dev/null
done
for ((r = 1; r <= rounds; r++)); do
  for job in "${jobs[@]}"; do
    read -r name rw bs size <<<"$job"
    for m in "${modes[@]}"; do
      out="$work/$m-$name-$r.json"
      # Each run starts with a cold page cache for the file (the mode's
      # steady state for a file opened once and read at random).
      echo 3 >/proc/sys/vm/drop_caches
      fio --name="$name" --directory="$work/$m" --filename=data --rw="$rw" \
          --bs="$bs" --size="$size" --ioengine=psync --time_based \
          --runtime="$runtime" --randrepeat=0 --norandommap \
          --output-format=json --output="$out"
      if [[ $rw == *read* ]]; then
        v=$(python3 -c "import json,sys;j=json.load(open('$out'))['jobs'][0]['read'];print(j['iops'] if '$bs'=='4k' else j['bw_bytes']/2**20)")
      else
        v=$(python3 -c "import json,sys;j=json.load(open('$out'))['jobs'][0]['write'];print(j['iops'] if '$bs'=='4k' else j['bw_bytes']/2**20)")
      fi
      results["$m,$name"]+="$v "
      [ -n "$json_dir" ] && mkdir -p "$json_dir" && cp "$out" "$json_dir/"
    done
  done
done

echo "pmfs over --transport=$transport, fio psync QD1, ${runtime}s x $rounds rounds (median), $(date -u +%F)"
printf '%-12s %14s %14s %10s\n' op default direct_io ratio
for job in "${jobs[@]}"; do
  read -r name rw bs size <<<"$job"
  unit=IOPS
  [ "$bs" = 1m ] && unit=MiB/s
  python3 - "$name" "$unit" "${results[default,$name]}" "${results[direct_io,$name]}" <<'EOF'
import statistics, sys
name, unit, a, b = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
ma, mb = statistics.median(map(float, a)), statistics.median(map(float, b))
print(f"{name:<12} {ma:>9.0f} {unit:<5}{mb:>9.0f} {unit:<5}{ma / mb:>9.2f}x")
EOF
done
