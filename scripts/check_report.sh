#!/usr/bin/env bash
# Render the report in headless Chromium and save a screenshot, to see the page as a reader
# does (layout, image sizes, overflowing tables) without opening a browser. The page must open
# offline: the browser's network features are switched off and nothing is fetched.
#
#   scripts/check_report.sh [reports/index.html] [reports/screenshot.png]
#
# Where Chromium is not installed (e.g. a bare CI runner) it says so and exits 0.
# On Debian/Ubuntu: apt-get install chromium (or chromium-browser).
set -euo pipefail

report="${1:-reports/index.html}"
shot="${2:-reports/screenshot.png}"
width="${CHECK_REPORT_WIDTH:-1280}"
height="${CHECK_REPORT_HEIGHT:-4000}"

browser=""
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    browser="$name"
    break
  fi
done
if [ -z "$browser" ]; then
  echo "chromium not found, skipping"
  exit 0
fi

if [ ! -f "$report" ]; then
  echo "$report not found: run \`dvc repro report\` first." >&2
  exit 1
fi
mkdir -p "$(dirname "$shot")"
report_abs="$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
shot_abs="$(cd "$(dirname "$shot")" && pwd)/$(basename "$shot")"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
rm -f "$shot_abs"
if ! timeout 120 "$browser" --headless --no-sandbox --disable-gpu \
  --disable-background-networking --disable-component-update --disable-sync --no-first-run \
  --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$shot_abs" "file://$report_abs" >"$profile/log" 2>&1; then
  cat "$profile/log" >&2
  echo "$browser failed to render $report" >&2
  exit 1
fi
if [ ! -s "$shot_abs" ]; then
  cat "$profile/log" >&2
  echo "$browser wrote no screenshot" >&2
  exit 1
fi
echo "screenshot of $report (${width}x${height}): $shot"
