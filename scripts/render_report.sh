#!/usr/bin/env bash
# Render a qsim report.html in headless Chromium and save a screenshot: checks that the page
# renders on its own (figures are data: URIs; there is nothing to fetch). Not run by the test
# suite, which checks self-containment without a browser (tests/test_report_html.py).
#
#   scripts/render_report.sh results/burst-2k-vs-20k/report.html            # -> report.png next to it
#   scripts/render_report.sh results/x/report.html /tmp/x.png
#
# Needs Chromium (Debian/Ubuntu: apt-get install -y chromium). The flags keep it from
# reaching the network (no background updates, sync or component downloads) and make it run
# as root in a container (--no-sandbox).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 REPORT.html [SCREENSHOT.png]" >&2
    exit 2
fi
report=$(realpath "$1")
shot=$(realpath -m "${2:-${report%.html}.png}")
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "$0: no Chromium found; install it (apt-get install -y chromium)" >&2
    exit 2
fi
rm -f "$shot"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --window-size=1280,3000 --screenshot="$shot" "file://$report" 2>/dev/null
if [ ! -s "$shot" ]; then
    echo "$0: Chromium wrote no screenshot for $report" >&2
    exit 1
fi
echo "rendered $report -> $shot ($(stat -c %s "$shot") bytes)"
