#!/usr/bin/env bash
# The Debian packages `make demo` runs benchmarks with (fio, sysbench, fi_pingpong), and the headless browser
# tests/test_report_browser.py renders the HTML report in (chromium, chromium-driver). `make setup` calls this:
# as root with apt-get it installs what is missing; otherwise it prints the one command to run and carries on (the
# demo then records those benchmarks as skipped, naming the package; the browser test fails, naming chromium).
set -u
declare -A PACKAGES=([fio]=fio [sysbench]=sysbench [libfabric-bin]=fi_pingpong [chromium]=chromium
                     [chromium-driver]=chromedriver)
missing=()
for pkg in "${!PACKAGES[@]}"; do
    command -v "${PACKAGES[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
IFS=$'\n' missing=($(sort <<<"${missing[*]}")); unset IFS
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        exit 0
    fi
    echo "setup: warning: apt-get could not install ${missing[*]}; the demo will skip the benchmarks that need" \
         "them, and without chromium the report's browser test fails" >&2
    exit 0
fi
echo "setup: to run every benchmark of the demo, install: sudo apt-get install -y ${missing[*]}" >&2
echo "setup: (not root or no apt-get here; the demo skips what they would measure, and" \
     "tests/test_report_browser.py needs chromium and chromium-driver)" >&2
exit 0
