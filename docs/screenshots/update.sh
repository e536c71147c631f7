#!/usr/bin/env bash
# Refreshes the README's screenshots from the end-to-end suite's artifacts (run
# scripts/test.sh, or the e2e step, first), cropped to the 1100x760 window.
set -euo pipefail
cd "$(dirname "$0")"
src=../../tests/artifacts/e2e
while read -r from to; do
  convert "$src/$from" -crop 1100x760+0+0 +repage "$to"
done <<'LIST'
01-first-run.png first-run.png
02-recovery-key.png recovery-key.png
07-idle-locked.png idle-locked.png
14-note-signed-addendum.png notes.png
30-break-glass-dialog.png break-glass.png
60-demo-search.png search.png
61-demo-chart-vitals.png chart-vitals.png
63-demo-audit.png audit.png
65-results-report.png results.png
66-results-trend.png results-trend.png
54-edit-uscdi.png edit-uscdi.png
67-imported-problems.png imported-problems.png
68-imported-results.png imported-results.png
80-export-dialog.png export.png
82-disclosures.png disclosures.png
91-sync-waiting.png sync-waiting.png
LIST
echo "docs/screenshots updated"
