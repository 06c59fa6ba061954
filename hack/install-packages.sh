#!/usr/bin/env bash
# Installs the Debian packages the project runs and tests with, if any is missing.
#   coturn    real TURN server: media pod tests, the shared TURN server of 1:1 calls
#   chromium  real headless browser for the browser tests (with fonts to render text)
#   containerd, runc, containernetworking-plugins, iptables, conntrack
#             the real node's container runtime, pod network (bridge + portmap) and kube-proxy
#             (see docs/development.md, "Real node"); Debian ships no services we start
#   mmdebstrap, gcc, libc6-dev
#             container images without a registry: Debian root filesystems and the static pause
#   prometheus  promtool, which checks the chart's alert rules and their unit tests
#   nodejs    runs the browser client's end-to-end encryption modules' unit tests (node --test)
# Called by `make up` and `make test` (through `make packages`), so a fresh machine needs no
# other step; an installed machine costs one dpkg query.
set -euo pipefail

packages=(
  coturn chromium fonts-dejavu-core
  containerd runc containernetworking-plugins iptables conntrack
  mmdebstrap gcc libc6-dev
  prometheus nodejs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# coturn's Debian service is not what we run: the project starts its own turnserver processes.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled coturn >/dev/null 2>&1; then
  $sudo systemctl disable --now coturn >/dev/null 2>&1 || true
fi
# Nor is containerd's: the real node runs its own containerd with its own socket and state.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled containerd >/dev/null 2>&1; then
  $sudo systemctl disable --now containerd >/dev/null 2>&1 || true
fi
