#!/bin/bash
# Formats lepard's C++ sources with .clang-format, or checks them (--check: lists the files
# that differ and exits 1; exit 77, "skipped", when clang-format 14 is missing, since other
# versions format differently). The test style.clang_format runs the check.
#
#   scripts/format.sh [--check]
set -uo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
tool=""
for candidate in clang-format-14 clang-format; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" --version | grep -q "version 14\."; then
    tool=$candidate
    break
  fi
done
if [ -z "$tool" ]; then
  echo "format.sh: clang-format 14 not found (Debian: apt-get install clang-format); not checking" >&2
  exit 77
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.cpp' '*.h' | grep -v '^third_party/')
else
  mapfile -t files < <(find apps bench fuzz include src tests -name '*.cpp' -o -name '*.h' | sort)
fi
if [ $check -eq 0 ]; then
  "$tool" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! "$tool" --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "format.sh: $f differs from .clang-format (run scripts/format.sh)"
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "format.sh: ${#files[@]} files formatted as .clang-format says"
exit $bad
