#!/usr/bin/env bash
# Make sure the programs the tests drive are installed: Debian's chromium (the console's browser
# tests, driven by Playwright with executable_path; Playwright cannot download browsers here) and
# promtool from Debian's prometheus package (the alert rules' tests). Installs them as root with
# apt when missing; exits non-zero if it can't.
set -euo pipefail

say() { echo "ensure-test-tools: $*" >&2; }
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { say "missing ${missing[*]} and not root: cannot install"; exit 1; }
say "installing Debian's ${missing[*]}"
apt-get update -qq
# The prometheus package would start its server as a service: only promtool is wanted.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v chromium >/dev/null && command -v promtool >/dev/null
