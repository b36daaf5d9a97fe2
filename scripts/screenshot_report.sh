#!/usr/bin/env bash
# Render a report.html in headless Chromium and save a full-page screenshot, to check the page
# renders (images inline, charts, tables) without a desktop.
#   scripts/screenshot_report.sh runs/quickstart/report.html [out.png]
# Needs Debian's chromium ('apt-get install chromium'); the page is self-contained, so it loads
# nothing from the network.
set -euo pipefail
page="${1:?usage: scripts/screenshot_report.sh REPORT.html [OUT.png]}"
out="${2:-${page%.html}.png}"
[[ -f "$page" ]] || { echo "screenshot_report: $page: no such file" >&2; exit 2; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "screenshot_report: no chromium found: apt-get install chromium" >&2; exit 2; }
height="${HEIGHT:-6000}"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size=1000,"$height" --screenshot="$(realpath -m "$out")" "file://$(realpath "$page")" 2>/dev/null
echo "screenshot: $out"
