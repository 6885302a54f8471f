#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# license.spdx: every source file of wsrelay names its license, Apache-2.0, in its first 3 lines
# ("SPDX-License-Identifier: Apache-2.0" in the file's own comment syntax, after a shebang or
# <!doctype html> if it has one).
#
#   tests/license/check_spdx.sh [REPO_DIR]      (default: the checkout this script is in)
#
# The files are those git tracks (CI checks a fresh clone, so a new file counts once it is added).
# Every one of them is either excluded (EXCLUDED below, each with its reason) or a source file:
# its name matches a pattern of SOURCES, or it starts with "#!". A file that is neither fails
# the check too, so a new kind of file gets decided on here rather than slipping through.
#
# Exit status: 0 every source file has the line; 1 some do not, or are unclassified (each is
# listed) or git fails; 77 skipped: REPO_DIR is not a git checkout, or git is missing.
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
tag="SPDX-License-Identifier: Apache-2.0"

# Skipped only without git metadata (an exported tree, where git would answer for whatever
# repository encloses it). In a checkout, a failing git (e.g. "dubious ownership") is an error,
# not a skip: a check that quietly stops checking is worse than none.
if [ ! -e "$root/.git" ] || ! command -v git >/dev/null; then
    echo "license.spdx: $root is not a git checkout, or git is missing; skipped (files come from git ls-files)"
    exit 77
fi
list=$(mktemp)
trap 'rm -f "$list"' EXIT
git -C "$root" ls-files -z >"$list" || { echo "license.spdx: git ls-files failed in $root" >&2; exit 1; }

# Files that carry no SPDX line, and why. Matched first; `*` also matches '/'.
excluded() {
    case "$1" in
        tests/fuzz/corpus/*) ;;     # fuzz inputs: byte for byte what the targets are fed
        *.json) ;;                  # JSON has no comments (package.json, package-lock.json)
        *.md) ;;                    # README.md: its "License" section says it instead
        LICENSE|NOTICE) ;;          # the license text and notice themselves
        packaging/debian/changelog|packaging/debian/copyright|packaging/debian/source/format) ;;
                                    # formats with no comments; debian/copyright is the licensing
        *) return 1 ;;
    esac
}

# Source files by name. Anything else starting with "#!" is a script and counts as well.
# Generated files are not tracked (src/www's embedding, www_assets.cpp, is written to the build
# directory); one that ever is belongs in excluded().
source_file() {
    case "$1" in
        *.cpp|*.cc|*.cxx|*.c|*.h|*.hh|*.hpp) ;;              # C++ (and C)
        CMakeLists.txt|*/CMakeLists.txt|*.cmake) ;;
        *.py|*.sh) ;;
        *.js|*.mjs|*.cjs|*.html|*.css|*.svg) ;;              # src/www, tests/browser
        systemd/*|*.service|*.socket|*.timer|*.path) ;;      # systemd units
        man/*) ;;                                            # man pages (mdoc source)
        *.toml) ;;                                           # etc/wsrelay/wsrelay.toml
        *.dict) ;;                                           # libFuzzer dictionaries
        .ci/*) ;;
        packaging/debian/*) ;;                               # rules, control, maintainer scripts, ...
        .gitignore|*/.gitignore|.clang-format|.clang-tidy|.editorconfig) ;;
        *) return 1 ;;
    esac
}

checked=0
untagged=()
unclassified=()
while IFS= read -r -d '' f; do
    path=$root/$f
    # A tracked file deleted in the work tree has nothing to check; a symlink has no text of its own.
    if [ ! -f "$path" ] || [ -L "$path" ]; then continue; fi
    excluded "$f" && continue
    if ! source_file "$f"; then
        if [ "$(head -c 2 "$path")" != "#!" ]; then
            unclassified+=("$f")
            continue
        fi
    fi
    checked=$((checked + 1))
    first_lines=$(head -n 3 "$path")
    [[ $first_lines == *"$tag"* ]] || untagged+=("$f")
done <"$list"

for f in "${untagged[@]}"; do
    echo "$f: no \"$tag\" in its first 3 lines"
done
for f in "${unclassified[@]}"; do
    echo "$f: neither a source file nor excluded: classify it in tests/license/check_spdx.sh"
done
echo "license.spdx: $checked source files checked, ${#untagged[@]} without the SPDX line," \
     "${#unclassified[@]} unclassified"
[ "$checked" -gt 0 ] || { echo "license.spdx: no source files in $root?" >&2; exit 1; }
[ ${#untagged[@]} -eq 0 ] && [ ${#unclassified[@]} -eq 0 ]
