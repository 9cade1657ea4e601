#!/usr/bin/env bash
# package_test.sh CASE BUILD_DIR SOURCE_DIR: one check of the installed
# package (tests/package/CMakeLists.txt). Everything it makes lies in one
# temporary directory; every mount it makes is undone on exit, also on
# failure. Exit 0 pass, 1 fail, 77 skip (with the reason on stderr).
set -euo pipefail
case_name=$1 build=$(realpath "$2") src=$(realpath "$3")

tmp=$(mktemp -d /tmp/zest-package.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  for m in "$tmp"/mnt.*; do
    if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }
skip() { echo "SKIP ($case_name): $*" >&2; exit 77; }
new_mountpoint() { local m; m=$(mktemp -d "$tmp/mnt.XXXX"); chmod 755 "$m"; echo "$m"; }
# Waits (bounded) until $1 is, or with "gone" is no longer, a mount point.
wait_mount() {
  for _ in $(seq 100); do
    if [ "${2:-}" = gone ]; then mountpoint -q "$1" || return 0; else mountpoint -q "$1" && return 0; fi
    sleep 0.1
  done
  return 1
}
# The hello file system answers as it should at $1.
check_hello() {
  [ "$(ls "$1")" = hello ] || fail "ls $1: '$(ls "$1" 2>&1)'"
  [ "$(cat "$1/hello")" = "Hello, world!" ] || fail "cat $1/hello: '$(cat "$1/hello" 2>&1)'"
  [ "$(stat -c '%s %A' "$1/hello")" = "14 -r--r--r--" ] || fail "stat $1/hello: $(stat -c '%s %A' "$1/hello")"
  if echo x 2>/dev/null >"$1/hello"; then fail "writing $1/hello succeeded"; fi
  df "$1" >/dev/null || fail "df $1"
}

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
libdir=$(dirname "$(find "$prefix" -name zest.pc -path '*pkgconfig*' | head -1)")/..
libdir=$(realpath "$libdir")
export PKG_CONFIG_PATH=$libdir/pkgconfig
zest=$prefix/bin/zest
[ -x "$zest" ] || fail "no bin/zest in the install"
[ -L "$prefix/sbin/mount.zest" ] || fail "no sbin/mount.zest in the install"

# hello built out of tree from the installed copy of the example, with
# pkg-config: the program and the plugin.
build_hello_pkgconfig() {
  local ex=$prefix/share/doc/zest/examples/hello/hello.cc
  [ -f "$ex" ] || fail "the example's source is not installed ($ex)"
  mkdir -p "$tmp/pc"
  # shellcheck disable=SC2046
  c++ -O1 "$ex" -o "$tmp/pc/hello" $(pkg-config --cflags --libs zest) -Wl,-rpath,"$libdir" \
    || fail "c++ hello.cc \$(pkg-config --cflags --libs zest)"
  # shellcheck disable=SC2046
  c++ -O1 -shared -fPIC "$ex" -o "$tmp/pc/libzest-fs-hello.so" $(pkg-config --cflags --libs zest) \
    -Wl,-rpath,"$libdir" || fail "building the hello plugin with pkg-config"
}

case $case_name in
pkg_config)
  [ "$(pkg-config --modversion zest)" = "$("$zest" --version | awk '{print $2}')" ] \
    || fail "pkg-config --modversion zest ($(pkg-config --modversion zest)) is not zest --version ($("$zest" --version))"
  build_hello_pkgconfig
  grep -q -- "--foreground" <<<"$("$tmp/pc/hello" --help)" || fail "hello --help"
  grep -q "zest" <<<"$("$tmp/pc/hello" --version)" || fail "hello --version"
  m=$(new_mountpoint)
  "$tmp/pc/hello" --log-file "$tmp/hello.log" "$m" || fail "hello $m"
  check_hello "$m"
  grep -q " $m fuse.zest " /proc/mounts || fail "not in /proc/mounts as fuse.zest"
  "$zest" umount "$m" || fail "zest umount"
  wait_mount "$m" gone || fail "still mounted"
  # The daemon's log: where it served, and that it stopped.
  for _ in $(seq 50); do grep -q "stopped" "$tmp/hello.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "serving hello on $m" "$tmp/hello.log" || fail "no start in the daemon's log: $(cat "$tmp/hello.log")"
  grep -q "hello on $m stopped" "$tmp/hello.log" || fail "no stop in the daemon's log: $(cat "$tmp/hello.log")"
  # Errors name what is wrong.
  out=$("$tmp/pc/hello" "$tmp/nonexistent" 2>&1) && fail "mounting on a missing directory succeeded"
  grep -q "$tmp/nonexistent" <<<"$(echo "$out")" || fail "the error does not name the mountpoint: $out"
  out=$("$tmp/pc/hello" -o bogus "$m" 2>&1) && fail "an unknown option was accepted"
  grep -q "bogus" <<<"$(echo "$out")" || fail "the error does not name the option: $out"
  ;;
find_package)
  mkdir -p "$tmp/cm"
  cat >"$tmp/cm/CMakeLists.txt" <<EOC
cmake_minimum_required(VERSION 3.25)
project(hello_consumer CXX)
find_package(zest 0.5 REQUIRED)
add_executable(hello $prefix/share/doc/zest/examples/hello/hello.cc)
target_link_libraries(hello PRIVATE zest::zest)
EOC
  cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cm.log" 2>&1 \
    || { cat "$tmp/cm.log"; fail "find_package(zest)"; }
  cmake --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "building against zest::zest"; }
  grep -q "libzest.so.0 => $libdir/libzest.so.0" <<<"$(ldd "$tmp/cm/build/hello")" || fail "hello does not use the installed libzest.so.0: $(ldd "$tmp/cm/build/hello")"
  m=$(new_mountpoint)
  "$tmp/cm/build/hello" "$m" || fail "hello $m"
  check_hello "$m"
  umount "$m" || fail "umount"
  wait_mount "$m" gone || fail "still mounted"
  ;;
static)
  mkdir -p "$tmp/st"
  cat >"$tmp/st/CMakeLists.txt" <<EOC
cmake_minimum_required(VERSION 3.25)
project(hello_static CXX)
find_package(zest REQUIRED)
add_executable(hello $prefix/share/doc/zest/examples/hello/hello.cc)
target_link_libraries(hello PRIVATE zest::zest_static)
EOC
  cmake -S "$tmp/st" -B "$tmp/st/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/st.log" 2>&1 \
    || { cat "$tmp/st.log"; fail "find_package(zest)"; }
  cmake --build "$tmp/st/build" >>"$tmp/st.log" 2>&1 || { cat "$tmp/st.log"; fail "building against zest::zest_static"; }
  if grep -q libzest <<<"$(ldd "$tmp/st/build/hello")"; then fail "zest_static linked libzest.so"; fi
  m=$(new_mountpoint)
  "$tmp/st/build/hello" -f "$m" & pid=$!
  wait_mount "$m" || fail "hello -f did not mount"
  check_hello "$m"
  kill -TERM "$pid"   # a stop signal unmounts cleanly
  wait "$pid" || fail "hello -f exited with $? on SIGTERM"
  wait_mount "$m" gone || fail "still mounted after SIGTERM"
  ;;
plugin)
  build_hello_pkgconfig
  m=$(new_mountpoint)
  "$zest" mount --fs "$tmp/pc/libzest-fs-hello.so" "$m" || fail "zest mount --fs PATH"
  check_hello "$m"
  "$zest" umount "$m"; wait_mount "$m" gone || fail "still mounted"
  ZEST_PLUGIN_PATH=$tmp/nowhere:$tmp/pc "$zest" mount --fs hello "$m" || fail "zest mount --fs NAME"
  check_hello "$m"
  "$zest" umount "$m"; wait_mount "$m" gone || fail "still mounted"
  out=$("$zest" mount --fs nosuchfs "$m" 2>&1) && fail "an unknown file system mounted"
  grep -q "nosuchfs" <<<"$(echo "$out")" || fail "the error does not name the file system: $out"
  out=$("$zest" mount --fs /bin/true "$m" 2>&1) && fail "a non-plugin loaded"
  grep -q "/bin/true" <<<"$(echo "$out")" || fail "the error does not name the object: $out"
  ;;
mount_helper|fstab|fuse_zest)
  command -v unshare >/dev/null || skip "no unshare(1)"
  # mount(8) looks for its helpers in /sbin only: in a private mount
  # namespace, an overlay puts mount.zest there without touching the host.
  mkdir -p "$tmp/sbin"
  ln -s "$zest" "$tmp/sbin/mount.zest"
  mkdir -p "$tmp/bin"
  ln -s "$zest" "$tmp/bin/zest"
  "$zest" mkfs --size 64M "$tmp/pool" >/dev/null || fail "zest mkfs"
  m=$(new_mountpoint)
  m2=$(new_mountpoint)
  cat >"$tmp/fstab" <<EOC
none $m zest fs=memfs,noauto,nofail,_netdev,x-systemd.automount,x-systemd.idle-timeout=60,comment=x 0 0
$tmp/pool $m2 zest defaults,noauto,noatime 0 0
EOC
  cat >"$tmp/inner.sh" <<EOC
set -euo pipefail
trap 'umount -l "$m" 2>/dev/null || true; umount -l "$m2" 2>/dev/null || true; umount -l /usr/sbin /usr/local/bin 2>/dev/null || true' EXIT
mount -t overlay overlay -o lowerdir=$tmp/sbin:/usr/sbin /usr/sbin || exit 77
# mount.fuse3 runs the type's program from its own fixed PATH.
mount -t overlay overlay -o lowerdir=$tmp/bin:/usr/local/bin /usr/local/bin || exit 77
case $case_name in
mount_helper)
  mount -t zest -o fs=memfs none "$m"
  echo hi >"$m/f"; [ "\$(cat "$m/f")" = hi ]
  grep -qx fuse.zest <<<"\$(findmnt -n -o FSTYPE "$m")"
  mount -t zest "$tmp/pool" "$m2"
  echo durable >"$m2/f"
  umount "$m2"
  # The server lets go of the pool a moment after umount returns.
  for _ in \$(seq 50); do mount -t zest -o ro "$tmp/pool" "$m2" 2>/dev/null && break; sleep 0.1; done
  mountpoint -q "$m2"
  [ "\$(cat "$m2/f")" = durable ]
  if echo x 2>/dev/null >"$m2/g"; then echo "wrote on a ro mount" >&2; exit 1; fi
  umount "$m2"
  if mount -t zest -o fs=memfs,bogus none "$m2" 2>"$tmp/err"; then exit 1; fi
  grep -q bogus "$tmp/err"
  ;;
fstab)
  mount -T "$tmp/fstab" "$m"
  echo hi >"$m/f"; [ "\$(cat "$m/f")" = hi ]
  mount -T "$tmp/fstab" "$m2"
  grep -q noatime <<<"\$(findmnt -n -o OPTIONS "$m2")"
  echo x >"$m2/x"
  ;;
fuse_zest)
  command -v mount.fuse3 >/dev/null || exit 77
  mount -t fuse.zest -o fs=memfs none "$m"
  echo hi >"$m/f"; [ "\$(cat "$m/f")" = hi ]
  mount -t fuse.zest "$tmp/pool" "$m2"
  echo y >"$m2/y"; [ "\$(cat "$m2/y")" = y ]
  ;;
esac
umount "$m"; umount "$m2" 2>/dev/null || true
EOC
  rc=0
  unshare -m --propagation private bash "$tmp/inner.sh" || rc=$?
  [ $rc -eq 77 ] && skip "no overlay file system or mount.fuse3 here"
  [ $rc -eq 0 ] || fail "mount(8) through mount.zest (rc $rc)"
  ;;
user)
  build_hello_pkgconfig
  command -v setpriv >/dev/null || skip "no setpriv(1)"
  [ -u "$(command -v fusermount3)" ] || skip "fusermount3 is not set-uid root"
  command -v unshare >/dev/null || skip "no unshare(1)"
  m=$(new_mountpoint)
  chown 65534:65534 "$m"
  # Where /dev/fuse is root's only (as on this test machine), a private
  # mount namespace gets a /dev/fuse that users may open, as most
  # distributions have it (crw-rw-rw-); the host's stays as it is.
  mknod -m 0666 "$tmp/fuse" c 10 229 || skip "cannot make a fuse device node"
  cat >"$tmp/inner.sh" <<EOC
set -euo pipefail
trap 'umount -l "$m" 2>/dev/null || true; umount -l /dev/fuse 2>/dev/null || true' EXIT
mount --bind "$tmp/fuse" /dev/fuse || exit 77
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "\$@"; }
as_nobody "$tmp/pc/hello" "$m" || { echo "an unprivileged mount through fusermount3 failed" >&2; exit 1; }
[ "\$(as_nobody cat "$m/hello")" = "Hello, world!" ] || { echo "the owner cannot read" >&2; exit 1; }
# No allow_other by default for a user's mount: not even root gets in.
if cat "$m/hello" >/dev/null 2>&1; then echo "root could read a user's mount without allow_other" >&2; exit 1; fi
grep -q "user_id=65534" <<<"\$(grep " $m " /proc/mounts)" || { echo "not mounted as user 65534" >&2; exit 1; }
as_nobody fusermount3 -u "$m" || { echo "fusermount3 -u by its owner failed" >&2; exit 1; }
EOC
  rc=0
  unshare -m --propagation private bash "$tmp/inner.sh" || rc=$?
  [ $rc -eq 77 ] && skip "cannot bind a device node over /dev/fuse here"
  [ $rc -eq 0 ] || fail "an unprivileged mount (rc $rc)"
  ;;
deb)
  command -v cpack >/dev/null || skip "no cpack"
  command -v dpkg-deb >/dev/null || skip "no dpkg-deb"
  (cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack -G DEB"; }
  deb=$(ls "$tmp"/deb/zest_*.deb)
  dpkg-deb --info "$deb" >"$tmp/info"
  dpkg-deb --contents "$deb" >"$tmp/contents"
  grep -q "Depends:.*fuse3" "$tmp/info" || fail "the package does not depend on fuse3"
  grep -q "Depends:.*libfmt" "$tmp/info" || fail "no shared-library dependencies (dpkg-shlibdeps)"
  for f in ./usr/bin/zest ./usr/sbin/mount.zest ./usr/include/zest/zest.h ./usr/lib/pkgconfig/zest.pc; do
    grep -q " $f" "$tmp/contents" || fail "$f is not in the package"
  done
  grep -q "libzest.so.0" "$tmp/contents" || fail "libzest.so.0 is not in the package"
  # Installable: apt resolves its dependencies (no change to this system).
  if command -v apt-get >/dev/null; then
    apt-get install -s "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get install -s"; }
  fi
  dpkg-deb -x "$deb" "$tmp/root"
  grep -q "zest " <<<"$(LD_LIBRARY_PATH=$tmp/root/usr/lib "$tmp/root/usr/bin/zest" --version)" || fail "the packaged zest does not run"
  ;;
headers)
  # Every installed header compiles on its own with only the installed
  # include directory (no private header leaks into the public API).
  n=0
  while IFS= read -r h; do
    echo "#include <${h#"$prefix/include/"}>" | c++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror \
      -I"$prefix/include" -x c++ - || fail "$h does not compile alone"
    n=$((n + 1))
  done < <(find "$prefix/include/zest" -name '*.h')
  [ "$n" -ge 10 ] || fail "only $n public headers installed"
  ;;
no_pmfs)
  # The framework alone: no libpmem2 or ISA-L needed, none linked.
  cmake -S "$src" -B "$tmp/np" -DZEST_PMFS=OFF -DZEST_TESTS=OFF -DZEST_BENCH=OFF \
    >"$tmp/np.log" 2>&1 || { cat "$tmp/np.log"; fail "configure with -DZEST_PMFS=OFF"; }
  if grep -qiE '^(PMEM2|ISAL)_' "$tmp/np/CMakeCache.txt"; then fail "libpmem2 or ISA-L was looked for"; fi
  cmake --build "$tmp/np" --target zest zest_lib hello -j"$(nproc)" >>"$tmp/np.log" 2>&1 \
    || { tail -50 "$tmp/np.log"; fail "building without pmfs"; }
  for f in "$tmp/np/tools/zest" "$tmp/np/package/libzest.so"; do
    if grep -qE 'pmem|isal' <<<"$(ldd "$f")"; then fail "$f links libpmem2 or ISA-L"; fi
  done
  grep -q memfs <<<"$("$tmp/np/tools/zest" mount --help)" || fail "zest mount --help"
  if "$tmp/np/tools/zest" mkfs "$tmp/np-pool" >/dev/null 2>&1; then fail "mkfs without pmfs"; fi
  m=$(new_mountpoint)
  "$tmp/np/tools/zest" "$m" 2>/dev/null && fail "zest with one argument mounted"
  "$tmp/np/tools/zest" mount "$m" || fail "zest mount (memfs, the default without pmfs)"
  echo hi >"$m/f" && [ "$(cat "$m/f")" = hi ] || fail "memfs without pmfs"
  "$tmp/np/tools/zest" umount "$m"
  "$tmp/np/examples/hello" "$m" || fail "hello without pmfs"
  check_hello "$m"
  "$tmp/np/tools/zest" umount "$m"
  ;;
*) fail "unknown case" ;;
esac
echo "PASS ($case_name)"
