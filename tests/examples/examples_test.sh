#!/usr/bin/env bash
# examples_test.sh CASE ARGS...: mounts one example file system from the
# build tree and runs real programs on it (tests/examples/CMakeLists.txt).
#   memory|passthrough|async PROGRAM PLUGIN ZEST
#   doxygen SOURCE_DIR
# memory and passthrough run one script of coreutils and tar in the mount
# and in a directory on tmpfs (the oracle) and compare the trees; async
# checks reads from many readers at once, interrupts and shutdown with
# replies still parked. Everything it makes lies in one temporary
# directory; every mount it makes is undone on exit, also on failure.
# Exit 0 pass, 1 fail, 77 skip (with the reason on stderr).
set -euo pipefail
case_name=$1
shift

tmp=$(mktemp -d /tmp/zest-examples.XXXXXX)
chmod 755 "$tmp"
pids=()
# Every mount under $tmp (helpers run in $(...) subshells, so /proc/mounts
# is the list), innermost first.
cleanup() {
  set +e
  for m in $(awk -v t="$tmp/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
    fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp" /dev/shm/"$(basename "$tmp")".*
}
trap cleanup EXIT
fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }
skip() { echo "SKIP ($case_name): $*" >&2; exit 77; }
new_dir() { local d; d=$(mktemp -d "$tmp/$1.XXXX"); chmod 755 "$d"; echo "$d"; }
new_mountpoint() { new_dir mnt; }
# Waits (bounded) until $1 is, or with "gone" is no longer, a mount point.
wait_mount() {
  for _ in $(seq 100); do
    if [ "${2:-}" = gone ]; then mountpoint -q "$1" || return 0; else mountpoint -q "$1" && return 0; fi
    sleep 0.1
  done
  return 1
}
unmount() { umount "$1" 2>/dev/null || fusermount3 -u "$1"; wait_mount "$1" gone || fail "$1 still mounted"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
is_root() { [ "$(id -u)" = 0 ]; }
# The kernel forgets the inodes it does not use (FORGET reaches the file
# system). Root only.
drop_caches() { sync; echo 2 >/proc/sys/vm/drop_caches; }
# Runs the command until it succeeds, 5 s at most (FORGETs arrive
# asynchronously, after drop_caches returns).
eventually() {
  for _ in $(seq 50); do "$@" && return 0; sleep 0.1; done
  return 1
}

# A directory on tmpfs: the oracle. Root mounts its own; others use /dev/shm.
oracle_dir() {
  local d
  if is_root; then
    d=$(new_mountpoint)
    mount -t tmpfs -o mode=755 tmpfs "$d" || fail "mount -t tmpfs"
  else
    [ -d /dev/shm ] || skip "no tmpfs to compare with"
    d=$(mktemp -d /dev/shm/"$(basename "$tmp")".XXXX)  # removed by cleanup
    chmod 755 "$d"
  fi
  echo "$d"
}

# The tree the tar case extracts: files of sizes around page boundaries,
# subdirectories, symlinks and hard links.
make_tarball() {
  local s=$tmp/src/src
  mkdir -p "$s/sub1/inner" "$s/sub2" "$s/empty"
  : >"$s/zero"
  printf x >"$s/one"
  head -c 4095 /dev/urandom >"$s/sub1/page-1"
  head -c 4097 /dev/urandom >"$s/sub1/page+1"
  head -c $((1024 * 1024 + 13)) /dev/urandom >"$s/big"
  seq 1 20000 >"$s/sub2/numbers"
  echo "first" >"$s/file1"
  echo "second" >"$s/file2"
  ln "$s/file1" "$s/sub1/inner/hard"
  ln -s ../file2 "$s/sub1/rel-link"
  ln -s /nonexistent "$s/dangling"
  chmod 750 "$s/sub1/inner"
  chmod 600 "$s/file2"
  (cd "$tmp/src" && tar cf "$tmp/src.tar" src)
}

# The same changes, made in the mount and in the oracle.
coreutils_script() {
  cd "$1"
  tar xf "$tmp/src.tar"
  cp -a src copy
  mv copy/sub1 moved
  ln src/file1 hardlink
  ln -s ../src/file1 moved/symlink
  rm -r copy/sub2
  mkdir -p deep/a/b/c
  mv deep/a/b moved/b            # a directory to another parent
  mv src/one src/uno             # within one directory
  mv src/zero src/file1          # over an existing file (file1's other names keep it)
  echo append >>src/sub2/numbers
  truncate -s 5000 src/big
  truncate -s 100000 src/sub1/page-1
  chmod 640 copy/file2
  touch -d '2020-02-02 02:02:02' copy/file2
  # A file unlinked while open stays readable through the open descriptor.
  echo "kept alive" >open-file
  exec 3<open-file
  rm open-file
  [ "$(cat <&3)" = "kept alive" ] || { echo "open unlinked file lost its data" >&2; return 1; }
  exec 3<&-
  # So does a removed directory that is still some process's working
  # directory: the kernel still holds a reference to its inode, and asks
  # for its attributes once the cached ones expire (1 s).
  mkdir gone
  [ "$(cd gone && rmdir ../gone && sleep 1.2 && stat -c %h .)" = 0 ] || { echo "stat of a removed working directory failed" >&2; return 1; }
  # Many entries, removed while they are being listed (several READDIRs):
  # every entry must be seen once, which needs offsets that stay valid
  # while entries go.
  mkdir many
  (cd many && seq -f 'an-entry-with-a-longer-name-%04g' 1 2000 | xargs touch)
  [ "$(ls many | wc -l)" = 2000 ] || { echo "ls many: $(ls many | wc -l) entries" >&2; return 1; }
  seen=$(perl -e 'opendir(my $d, "many") or die; my $n = 0;
    while (defined(my $e = readdir($d))) { next if $e eq "." || $e eq ".."; unlink("many/$e") or die; $n++ }
    print $n')
  [ "$seen" = 2000 ] || { echo "listing while removing saw $seen of 2000 entries" >&2; return 1; }
  rmdir many
  cd - >/dev/null
}

# What both trees must agree on: names, types, modes, link counts, sizes of
# non-directories, symlink targets, and the explicitly set time.
describe() {
  (cd "$1" && find . -path ./lost+found -prune -o -type d -printf '%P %y %m %n\n' -o -printf '%P %y %m %n %s %l\n' | LC_ALL=C sort
   stat -c '%n %Y' copy/file2)
}

compare_trees() {
  local m=$1 o=$2
  diff <(describe "$o") <(describe "$m") >"$tmp/describe.diff" || { cat "$tmp/describe.diff" >&2; fail "the trees differ (oracle <, mount >)"; }
  diff -r --no-dereference "$o" "$m" >"$tmp/content.diff" 2>&1 || { cat "$tmp/content.diff" >&2; fail "diff -r: contents differ"; }
}

# RENAME_NOREPLACE and RENAME_EXCHANGE through renameat2 (coreutils 9.1's
# mv has no --exchange).
rename_flags() {
  command -v python3 >/dev/null || { echo "(no python3: renameat2 flags not checked)" >&2; return 0; }
  python3 - "$1" <<'EOP' || fail "renameat2 flags"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
open("x", "w").write("X")
open("y", "w").write("Y")
AT_FDCWD, NOREPLACE, EXCHANGE = -100, 1, 2
assert libc.renameat2(AT_FDCWD, b"x", AT_FDCWD, b"y", EXCHANGE) == 0, os.strerror(ctypes.get_errno())
assert open("x").read() == "Y" and open("y").read() == "X", "exchange did not swap"
assert libc.renameat2(AT_FDCWD, b"x", AT_FDCWD, b"y", NOREPLACE) == -1 and ctypes.get_errno() == 17
assert libc.renameat2(AT_FDCWD, b"x", AT_FDCWD, b"z", NOREPLACE) == 0
os.mkdir("d")
assert libc.renameat2(AT_FDCWD, b"d", AT_FDCWD, b"z", EXCHANGE) == 0
assert os.path.isdir("z") and open("d").read() == "Y", "exchange of a file and a directory"
os.unlink("d"); os.unlink("y"); os.rmdir("z")
EOP
}

# The example as a plugin of the zest command (ZEST_PLUGIN).
check_plugin() {
  local plugin=$1 zest=$2
  shift 2
  local m
  m=$(new_mountpoint)
  "$zest" mount --fs "$plugin" "$@" "$m" || fail "zest mount --fs $plugin"
  echo plugin >"$m/p" || fail "writing through the plugin mount"
  [ "$(cat "$m/p")" = plugin ] || fail "reading through the plugin mount"
  rm "$m/p"
  "$zest" umount "$m" || fail "zest umount"
  wait_mount "$m" gone || fail "plugin mount still mounted"
}

case $case_name in
memory)
  prog=$1 plugin=$2 zest=$3
  make_tarball
  o=$(oracle_dir)
  m=$(new_mountpoint)
  "$prog" "$m" || fail "$prog $m"
  grep -qx fuse.zest <<<"$(findmnt -n -o FSTYPE "$m")" || fail "not a zest mount"
  coreutils_script "$o" || fail "the script failed on tmpfs"
  coreutils_script "$m" || fail "the script failed on the mount"
  compare_trees "$m" "$o"
  rename_flags "$m"
  [ "$(stat -c %h "$m/moved")" = "$(stat -c %h "$o/moved")" ] || fail "directory link count"
  df "$m" >/dev/null || fail "df"
  # Lookup counts and forget: once the kernel forgets them, removed inodes
  # are freed (df -i counts the inodes memory holds), except one still open.
  if is_root; then
    iused() { df --output=iused "$m" | tail -1 | tr -d ' '; }
    iused_is() { [ "$(iused)" -eq "$1" ]; }
    rm -rf "${m:?}"/*
    drop_caches
    base=$(iused)
    mkdir "$m/t"
    (cd "$m/t" && seq 1 200 | xargs touch)
    ls -l "$m/t" >/dev/null
    echo lone >"$m/lone"
    exec 4<"$m/lone"
    rm -r "$m/t" "$m/lone"
    drop_caches
    eventually iused_is $((base + 1)) || fail "inodes not freed after forget: $(iused) in use, $base + 1 open expected"
    [ "$(cat <&4)" = lone ] || fail "the open unlinked file lost its data"
    exec 4<&-
    drop_caches
    eventually iused_is "$base" || fail "the unlinked file was not freed at release ($(iused) in use, $base expected)"
  fi
  unmount "$m"
  check_plugin "$plugin" "$zest"
  ;;
passthrough)
  prog=$1 plugin=$2 zest=$3
  make_tarball
  o=$(oracle_dir)
  src=$(oracle_dir)   # the backing directory, on tmpfs as well
  m=$(new_mountpoint)
  "$prog" "$src" "$m" || fail "$prog $src $m"
  coreutils_script "$o" || fail "the script failed on tmpfs"
  coreutils_script "$m" || fail "the script failed on the mount"
  compare_trees "$m" "$o"
  compare_trees "$src" "$o"
  rename_flags "$m"
  # The mirror: inode numbers are the backing ones, and changes made in
  # SOURCE behind the mount's back are seen (no cached misses).
  [ "$(stat -c %i "$m/src/file2")" = "$(stat -c %i "$src/src/file2")" ] || fail "inode numbers differ from the backing ones"
  ls "$m/behind" >/dev/null 2>&1 && fail "a missing name exists"
  echo "from behind" >"$src/behind"
  [ "$(cat "$m/behind")" = "from behind" ] || fail "a file created in SOURCE is not seen"
  out=$("$prog" "$tmp/nonexistent" "$(new_mountpoint)" 2>&1) && fail "mounted a missing SOURCE"
  grep -q "$tmp/nonexistent" <<<"$(echo "$out")" || fail "the error does not name SOURCE: $out"
  unmount "$m"
  # Passthrough: reads do not reach the server (no READ, opcode 15, in the
  # debug log) unless the server said it serves such opens itself.
  "$prog" -d "$src" "$m" 2>"$tmp/debug.log" &
  pid=$!
  pids+=("$pid")
  wait_mount "$m" || fail "$prog -d did not mount"
  cmp "$m/src/big" "$src/src/big" || fail "reading through the mount"
  n_open=$(grep -Ec "opcode[= ]14[ )]" "$tmp/debug.log" || true)
  n_read=$(grep -Ec "opcode[= ]15[ )]" "$tmp/debug.log" || true)
  [ "$n_open" -ge 1 ] || fail "no OPEN in the debug log"
  if grep -q "serving such opens itself" "$tmp/debug.log"; then
    echo "(the kernel does not pass through here: $(grep -m1 'serving such opens itself' "$tmp/debug.log"))" >&2
  else
    [ "$n_read" = 0 ] || fail "$n_read READ requests reached the server of a passthrough file"
  fi
  # forget() closes the O_PATH descriptors of the inodes the kernel drops.
  if is_root; then
    mkdir "$src/fds"
    (cd "$src/fds" && seq 1 300 | xargs touch)
    drop_caches
    before=$(ls /proc/"$pid"/fd | wc -l)
    ls -l "$m/fds" >/dev/null
    during=$(ls /proc/"$pid"/fd | wc -l)
    [ "$during" -ge $((before + 300)) ] || fail "looking up 300 files opened $((during - before)) descriptors"
    drop_caches
    fds_back() { [ "$(ls /proc/"$pid"/fd | wc -l)" -le $((before + 5)) ]; }
    eventually fds_back || fail "forget left $(($(ls /proc/"$pid"/fd | wc -l) - before)) descriptors open"
  fi
  kill -TERM "$pid"
  wait "$pid" || fail "$prog -f exited with $? on SIGTERM"
  wait_mount "$m" gone || fail "still mounted after SIGTERM"
  check_plugin "$plugin" "$zest" "$src"
  ;;
async)
  prog=$1 plugin=$2 zest=$3
  m=$(new_mountpoint)
  "$prog" "$m" || fail "$prog $m"
  grep -q "completion thread" "$m/README" || fail "cat README"
  for i in $(seq 1 16); do seq "$i" 3000 >"$m/key$i" || fail "writing key$i"; done
  [ "$(ls "$m" | wc -l)" = 17 ] || fail "ls: $(ls "$m")"
  # Many readers at once, each compared with what was written.
  for round in 1 2 3; do
    for i in $(seq 1 16); do cat "$m/key$i" >"$tmp/out$i.$round" & done
    wait
    for i in $(seq 1 16); do
      cmp -s "$tmp/out$i.$round" <(seq "$i" 3000) || fail "concurrent read of key$i (round $round)"
    done
  done
  mv "$m/key1" "$m/renamed"
  echo more >>"$m/renamed"
  [ "$(tail -1 "$m/renamed")" = more ] || fail "append after rename"
  truncate -s 4 "$m/renamed"
  [ "$(cat "$m/renamed")" = "1
2" ] || fail "truncate"
  rm "$m"/key*
  [ "$(ls "$m")" = "README
renamed" ] || fail "ls after rm: $(ls "$m")"
  unmount "$m"

  # Parked replies: every read waits 1 s in the completion thread; sixteen
  # readers at once must not take sixteen seconds.
  "$prog" -o read_delay_ms=1000 "$m" || fail "$prog -o read_delay_ms=1000"
  for i in $(seq 1 8); do echo "value $i" >"$m/k$i"; done
  t0=$(now_ms)
  for i in $(seq 1 8); do cat "$m/k$i" >"$tmp/slow$i" & done
  wait
  took=$(($(now_ms) - t0))
  for i in $(seq 1 8); do [ "$(cat "$tmp/slow$i")" = "value $i" ] || fail "delayed read of k$i"; done
  [ "$took" -ge 900 ] || fail "reads were not delayed ($took ms)"
  [ "$took" -lt 6000 ] || fail "8 parked reads took $took ms: answered one after the other?"
  unmount "$m"

  # Interrupts: a read parked for 30 s is answered as soon as its reader is
  # interrupted (O_DIRECT: the reader waits on the request itself, so the
  # kernel sends INTERRUPT; a page-cache readahead is not interrupted).
  "$prog" -o read_delay_ms=30000 "$m" || fail "$prog -o read_delay_ms=30000"
  t0=$(now_ms)
  timeout -s INT 1 dd if="$m/README" of=/dev/null iflag=direct bs=4096 count=1 status=none && fail "the read was not interrupted"
  took=$(($(now_ms) - t0))
  [ "$took" -lt 10000 ] || fail "an interrupted read took $took ms"
  unmount "$m"

  # Shutdown with a read still parked: SIGTERM unmounts, destroy() drains
  # the completion thread and the server exits 0.
  "$prog" -f -o read_delay_ms=3000 "$m" 2>"$tmp/async.log" &
  pid=$!
  pids+=("$pid")
  wait_mount "$m" || fail "$prog -f did not mount"
  dd if="$m/README" of=/dev/null iflag=direct bs=4096 count=1 status=none 2>/dev/null &
  reader=$!
  sleep 0.5
  kill -TERM "$pid"
  rc=0
  timeout 20 tail --pid="$pid" -f /dev/null || fail "the server did not exit within 20 s of SIGTERM"
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || { cat "$tmp/async.log" >&2; fail "the server exited with $rc"; }
  wait "$reader" || true
  wait_mount "$m" gone || fail "still mounted after SIGTERM"
  check_plugin "$plugin" "$zest"
  ;;
doxygen)
  src=$1
  command -v doxygen >/dev/null || skip "doxygen is not installed"
  out=$tmp/doxygen
  mkdir -p "$out"
  (cd "$src" && ZEST_DOXYGEN_OUTPUT=$out ZEST_VERSION=test doxygen docs/Doxyfile) >"$tmp/doxygen.log" 2>&1 \
    || { cat "$tmp/doxygen.log" >&2; fail "doxygen failed"; }
  [ -f "$out/html/index.html" ] || fail "no html/index.html"
  [ -f "$out/html/classzest_1_1fs_1_1FileSystem.html" ] || fail "no page for zest::fs::FileSystem"
  # The // comments made it in (the filter ran): syncfs's one-line comment.
  grep -q "syncfs(2) on the mount" "$out/html/classzest_1_1fs_1_1FileSystem.html" \
    || fail "the headers' comments are not in the reference"
  # What the filter (docs/doxygen-filter.awk) must prevent: comment text
  # read as commands, HTML tags or links. Other warnings are shown.
  if grep -Ei "unknown command|unsupported xml/html tag|could not be resolved|unable to resolve|unterminated" \
      "$tmp/doxygen.log" >"$tmp/bad.log"; then
    cat "$tmp/bad.log" >&2
    fail "doxygen read the headers' comments as markup"
  fi
  grep -i "warning" "$tmp/doxygen.log" >&2 || true
  ;;
*) fail "unknown case" ;;
esac
echo "PASS ($case_name)"
