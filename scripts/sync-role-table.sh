#!/usr/bin/env bash
# Rewrites the role table in README.md from crates/core/src/roles.rs (the test
# `the_readme_prints_the_matrix_as_it_is` prints the table the README must hold).
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(cargo test -q -p chartroom-core --lib the_readme_prints_the_matrix_as_it_is 2>&1 \
    | sed -n '/should read:/,/^$/p' | sed '1d;/^$/d' || true)
if [ -z "$table" ]; then
    echo "README.md's role table is already up to date."
    exit 0
fi
python3 - "$table" <<'PY'
import sys
table = sys.argv[1].strip() + "\n"
text = open("README.md").read()
start = text.index("| permission | admin | physician | nurse | front_desk | auditor |")
end = text.index("\n\n", start) + 1
open("README.md", "w").write(text[:start] + table + text[end:])
PY
echo "README.md's role table rewritten."
