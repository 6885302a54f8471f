#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package out of this checkout:
#
#   packaging/build-deb.sh [-o OUTDIR] [--no-lintian]
#
# OUTDIR (default: build-deb/ at the top of the tree) receives wsrelay_<version>_<arch>.deb, its
# -dbgsym package, the .buildinfo and the .changes. The tree is copied to a temporary directory
# (tracked files plus untracked ones git does not ignore, so no build directory comes along),
# packaging/debian becomes its debian/, and `dpkg-buildpackage -us -uc -b` builds it there: the
# checkout itself is never written to except OUTDIR. Missing build-dependencies are installed with
# `apt-get build-dep` (through sudo when not root). Then lintian checks the result when it is
# installed: any error or warning fails the build, and informational tags are shown.
# DEB_BUILD_OPTIONS passes through (e.g. DEB_BUILD_OPTIONS=nocheck skips the smoke test).
#
# Exit status: 0 built (and lintian-clean), 1 build or lintian failure, 2 usage error.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
outdir=$top/build-deb
lintian=auto
while [ $# -gt 0 ]; do
    case "$1" in
        -o|--out) outdir=${2:?"$1 needs a directory"}; shift 2 ;;
        --no-lintian) lintian=no; shift ;;
        -h|--help) sed -n '3,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "build-deb.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" ||
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
}

# The version lives in two places: CMake's project() and debian/changelog. They must agree.
cmake_version=$(sed -n 's/^project(wsrelay VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
deb_version=$(sed -n '1s/^wsrelay (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
if [ "${deb_version%-*}" != "$cmake_version" ]; then
    echo "build-deb.sh: CMakeLists.txt says version $cmake_version but packaging/debian/changelog" \
         "says $deb_version: add a changelog entry (dch -v $cmake_version-1)" >&2
    exit 1
fi

command -v dpkg-buildpackage >/dev/null || { echo "== installing dpkg-dev"; apt_install dpkg-dev; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wsrelay-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/wsrelay-$cmake_version
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # -z: any file name; files deleted in the work tree but still in the index are skipped.
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -C "$src" -xf -
else
    tar -C "$top" --exclude='./build*' --exclude=./.git --exclude=node_modules -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$top/packaging/debian" "$src/debian"

if ! (cd "$src" && dpkg-checkbuilddeps) 2>/dev/null; then
    echo "== installing build-dependencies"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq --no-install-recommends "$src" || {
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq --no-install-recommends "$src"
    }
fi

echo "== dpkg-buildpackage in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
changes=wsrelay_${deb_version}_${arch}.changes
# The files this build produced, as its .changes lists them, plus the .changes itself.
files=$(sed -n '/^Files:/,/^[^ ]/s/^ [0-9a-f]\{32\} [0-9]* [^ ]* [^ ]* //p' "$work/$changes")
for f in $files "$changes"; do cp "$work/$f" "$outdir/"; done
echo "== built: $outdir/wsrelay_${deb_version}_${arch}.deb"

if [ "$lintian" = auto ]; then
    if command -v lintian >/dev/null; then
        echo "== lintian (fails on errors and warnings; I: lines are information)"
        lintian --fail-on error,warning --display-info "$outdir/$changes"
        echo "== lintian: no errors, no warnings"
    else
        echo "== lintian is not installed (apt-get install lintian): not checked" >&2
    fi
fi
