#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package, proven the way an operator meets it: in a booted Debian 12.
#
#   packaging/e2e.sh [--deb FILE] [--out DIR] [--keep]
#
# Builds the .deb with packaging/build-deb.sh (unless --deb names one), debootstraps a Debian 12
# root once (cached in $WSRELAY_E2E_CACHE, default /var/cache/wsrelay-e2e; the package's runtime
# dependencies, and redis-server for the [cluster] check, are added to the cache the first time
# they are needed; the copy drops those that only an earlier version of the package needed), boots
# a copy of it with `systemd-nspawn -b` on a private network (no network at all inside), and runs
# packaging/e2e/checks.py in it through nsenter. That script prints one line per check (the six
# of issue 10, then the extra ones) and "N passed, N failed".
#
#   --deb FILE   test this wsrelay_<version>_<arch>.deb instead of building one
#   --out DIR    work directory (the container's root, the built .deb, the boot log); default: a
#                new directory under /var/tmp. Its previous contents are replaced.
#   --keep       keep the work directory (the container's root) afterwards
#
# Environment: WSRELAY_E2E_CACHE (the cache directory), WSRELAY_E2E_MIRROR (the Debian mirror;
# default: the one apt's sources use for bookworm, else http://deb.debian.org/debian),
# WSRELAY_E2E_VERBOSE=1 (print every check's evidence, not only a failed one's).
#
# Needs root, debootstrap and systemd-container (installed with apt-get when missing), ~1.5 GB of
# disk, and the mirror on the first run only.
#
# Exit status: 0 every check passed; 1 a check or the set-up failed; 2 usage error;
# 77 skipped: this machine cannot run the test (not root, or it cannot boot a container).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
deb=""
out=""
keep=no
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb=${2:?"--deb needs a file"}; shift 2 ;;
        --out) out=${2:?"--out needs a directory"}; shift 2 ;;
        --keep) keep=yes; shift ;;
        -h|--help) sed -n '3,29s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "e2e.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

t_start=$(date +%s)
say() { echo "== e2e: $*"; }
skip() { echo "SKIPPED: $*" >&2; echo "e2e: skipped, this machine cannot run the package test (exit 77)" >&2; exit 77; }
die() { echo "e2e: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn, nsenter)"
[ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup: this kernel or sandbox cannot run systemd in a container"

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    { apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; } \
        </dev/null >/dev/null 2>&1 || skip "cannot install ${missing[*]} (apt-get install failed)"
fi
for t in nsenter flock pgrep dpkg-deb; do command -v $t >/dev/null || skip "$t is missing"; done

# --- work directory ---
if [ -z "$out" ]; then
    out=$(mktemp -d /var/tmp/wsrelay-e2e.XXXXXX)
else
    # Replace only a directory this script made (marked), or an empty or new one.
    if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -e "$out/.wsrelay-e2e" ]; then
        echo "e2e.sh: --out $out is not empty and not an e2e work directory: refusing to replace it" >&2
        exit 2
    fi
    rm -rf "$out"
    mkdir -p "$out"
fi
out=$(cd "$out" && pwd)
touch "$out/.wsrelay-e2e"
root=$out/root
nspawn_pid=""

cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM makes systemd-nspawn ask the container's systemd for a clean poweroff.
        kill -TERM "$nspawn_pid" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
    fi
    if [ "$keep" = yes ]; then
        echo "e2e: kept $out (container root: $root, boot log: $out/boot.log)"
    else
        rm -rf "$out"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cached Debian 12 root ---
mirror=${WSRELAY_E2E_MIRROR:-}
if [ -z "$mirror" ]; then
    # The URI of apt's own source for bookworm (deb822 .sources stanzas, then one-line .list files).
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^[ \t]*$/ { if (deb && suite && uri != "") { print uri; exit } deb = suite = 0; uri = ""; next }
        /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
        /^URIs:/ { uri = $2 }
        END { if (deb && suite && uri != "") print uri }' | head -1)
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' | head -1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

cache=${WSRELAY_E2E_CACHE:-/var/cache/wsrelay-e2e}
arch=$(dpkg --print-architecture)
base=$cache/bookworm-$arch
# python3: the WebSocket client; iproute2: ss; openssl: the snakeoil certificate (ssl-cert).
include=systemd,systemd-sysv,dbus,python3,iproute2,openssl,ca-certificates
stamp="suite=bookworm variant=minbase include=$include"
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9   # one run at a time builds or updates the cache

t_setup=$(date +%s)
if [ ! -d "$base/root" ] || [ "$(cat "$base/stamp" 2>/dev/null)" != "$stamp" ]; then
    say "debootstrap Debian 12 ($arch) from $mirror into $base (first run only)"
    rm -rf "$base"
    mkdir -p "$base"
    debootstrap --variant=minbase --include="$include" bookworm "$base/root.new" "$mirror" \
        >"$base/debootstrap.log" 2>&1 ||
        { tail -20 "$base/debootstrap.log" >&2; rm -rf "$base"; die "debootstrap failed (log above)"; }
    mv "$base/root.new" "$base/root"
    echo "$stamp" >"$base/stamp"
    first_run=yes
else
    first_run=no
fi
nspawn_at() {
    local dir=$1
    shift
    systemd-nspawn -q -D "$dir" --register=no --keep-unit --link-journal=no --resolv-conf=copy-host \
        --pipe "$@"
}
nspawn_run() { nspawn_at "$base/root" "$@"; }
# Can this machine run a container at all? Ask before spending minutes on the package build.
if ! nspawn_run /bin/true </dev/null >"$out/nspawn-probe.log" 2>&1; then
    cat "$out/nspawn-probe.log" >&2
    skip "systemd-nspawn cannot run a container here (its output is above)"
fi
flock -u 9
setup_s=$(( $(date +%s) - t_setup ))

# --- the package ---
if [ -z "$deb" ]; then
    say "building the package (packaging/build-deb.sh)"
    t=$(date +%s)
    "$here/build-deb.sh" -o "$out/deb" --no-lintian >"$out/build-deb.log" 2>&1 ||
        { tail -40 "$out/build-deb.log" >&2; die "packaging/build-deb.sh failed (log above)"; }
    deb=$(ls "$out"/deb/wsrelay_*_"$arch".deb 2>/dev/null | head -1)
    [ -n "$deb" ] || die "build-deb.sh produced no wsrelay_*_$arch.deb"
    say "built $(basename "$deb") in $(( $(date +%s) - t )) s"
fi
[ -f "$deb" ] || die "no such package: $deb"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

t_setup=$(date +%s)
flock 9
# The package's runtime dependencies go into the cache too: the container has no network, like a
# machine whose operator ran `apt install` on a package whose dependencies apt had fetched.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | grep -v '^$' | sort -u)
# And what the checks need beside it: redis-server (the package Suggests it), the backplane of the
# [cluster] check. Its dependencies (redis-tools, libjemalloc2, liblzf1, libatomic1) include none of
# wsrelay's libraries but those a minimal Debian has anyway (libc6, libssl3, libsystemd0): redis
# bundles its own hiredis, so a Depends without libhiredis0.14 still fails the checks.
test_deps=redis-server
need=()
for d in $deps $test_deps; do
    chroot "$base/root" dpkg-query -W -f='${db:Status-Abbrev}' "$d" 2>/dev/null | grep -q '^ii' || need+=("$d")
done
if [ ${#need[@]} -gt 0 ]; then
    say "adding the package's dependencies and the checks' to the cache: ${need[*]}"
    nspawn_run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
        </dev/null >"$base/deps.log" 2>&1 ||
    nspawn_run sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"' \
        sh "${need[@]}" </dev/null >>"$base/deps.log" 2>&1 ||
        { tail -20 "$base/deps.log" >&2; die "could not install ${need[*]} into the cached root (log above)"; }
    nspawn_run apt-get clean </dev/null >/dev/null 2>&1
fi

say "copying the cached root"
cp -a --reflink=auto "$base/root" "$root" || die "cp of the cached root failed"
flock -u 9
# The cache keeps what apt added for any earlier package's Depends (debootstrap installs with dpkg,
# so apt's history lists exactly those). In the copy, whatever this package and the checks do not
# need goes (apt-mark auto, then autoremove; removing needs no network): the container is a minimal
# Debian plus this package's dependencies and redis-server, so a dependency the package forgot to
# declare fails a check. (procps, for one: /bin/kill is in it, and wsrelay.service's ExecReload=
# must not need it.)
installed_in_copy() { chroot "$root" dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }
added=""
for p in $(sed -n 's/^Install: //p' "$root/var/log/apt/history.log" 2>/dev/null | sed 's/([^)]*)//g' |
           tr ',' '\n' | sed 's/[[:space:]]//g; s/:.*//' | grep -v '^$' | sort -u); do
    installed_in_copy "$p" && added="$added $p"
done
if [ -n "$added" ]; then
    needed=""
    for d in $deps $test_deps; do installed_in_copy "$d" && needed="$needed $d"; done
    nspawn_at "$root" -M "wsrelay-e2e-prune-$$" sh -c 'needed=$1; shift; apt-mark auto "$@" >/dev/null &&
        { [ -z "$needed" ] || apt-mark manual $needed >/dev/null; } &&
        DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -q' sh "$needed" $added \
        </dev/null >"$out/prune.log" 2>&1 ||
        { tail -20 "$out/prune.log" >&2; die "could not remove the cache's extra packages from the copy (log above)"; }
    pruned=$(sed -n 's/^Removing \([^ :]*\).* (.*/\1/p' "$out/prune.log" | tr '\n' ' ')
    [ -z "$pruned" ] || say "not needed by this package, removed from the copy: ${pruned% }"
fi
# What checks.py needs inside: itself, the raw WebSocket client of tests/e2e, the package.
mkdir -p "$root/opt/wsrelay-e2e"
cp "$here/e2e/checks.py" "$top/tests/e2e/wsclient.py" "$deb" "$root/opt/wsrelay-e2e/"
echo wsrelay-e2e >"$root/etc/hostname"
setup_s=$(( setup_s + $(date +%s) - t_setup ))

# --- boot ---
say "booting it: systemd-nspawn -b --private-network --register=no --keep-unit"
t_boot=$(date +%s)
systemd-nspawn -D "$root" -b --register=no --keep-unit --private-network --link-journal=no \
    -M "wsrelay-e2e-$$" --console=read-only </dev/null >"$out/boot.log" 2>&1 &
nspawn_pid=$!
leader=""
state=""
deadline=$(( $(date +%s) + 120 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    # The container's init is systemd-nspawn's only child.
    leader=$(pgrep -P "$nspawn_pid" | head -1)
    if [ -n "$leader" ]; then
        state=$(timeout 10 nsenter -t "$leader" -a -r -w systemctl is-system-running 2>/dev/null)
        case "$state" in running|degraded) break ;; esac
    fi
    sleep 0.5
done
case "$state" in
    running|degraded) ;;
    *)
        echo "--- systemd-nspawn output (last 30 lines of $out/boot.log):" >&2
        tail -30 "$out/boot.log" >&2
        kill -0 "$nspawn_pid" 2>/dev/null && echo "--- the container's state after 120 s: ${state:-unknown}" >&2
        skip "systemd-nspawn -b could not boot a Debian 12 container here"
        ;;
esac
say "booted in $(( $(date +%s) - t_boot )) s (state: $state)"
in_ct() { nsenter -t "$leader" -a -r -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
if [ "$state" = degraded ]; then
    echo "e2e: note: the container booted degraded; failed units:"; in_ct systemctl --failed --no-legend
fi

# --- the checks ---
t_checks=$(date +%s)
in_ct PYTHONDONTWRITEBYTECODE=1 WSRELAY_E2E_VERBOSE="${WSRELAY_E2E_VERBOSE:-0}" timeout 1200 python3 /opt/wsrelay-e2e/checks.py \
    --deb "/opt/wsrelay-e2e/$(basename "$deb")"
status=$?
t_end=$(date +%s)
say "times: setup $setup_s s (debootstrap: $first_run), checks $(( t_end - t_checks )) s, total $(( t_end - t_start )) s"
[ $status -eq 0 ] || { [ $status -ne 1 ] && echo "e2e: checks.py exited with status $status" >&2; exit 1; }
exit 0
