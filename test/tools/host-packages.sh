#!/usr/bin/env bash
# Installs what a real node needs from the distribution and cannot be built
# from a Go module here: runc, the CNI plugins, iptables, ipset (for the
# network-policy controller), conntrack and iproute2 (Debian's packages). It installs only what is missing, only as
# root with apt-get, and never fails the build: where it cannot install it
# says what is missing, and the real-node tests then fail naming it (or are
# skipped, loudly, with WARREN_REAL_NODES=0).
#
#   host-packages.sh          install what is missing
#   host-packages.sh --check  only report what is missing (exit 1 if any)
set -uo pipefail

# command or file that shows the package is there | Debian package
wanted=(
  "runc|runc"
  "/usr/lib/cni/bridge|containernetworking-plugins"
  "iptables|iptables"
  "ipset|ipset"
  "conntrack|conntrack"
  "ip|iproute2"
  "nsenter|util-linux"
)

missing_packages() {
  local w probe pkg
  for w in "${wanted[@]}"; do
    IFS='|' read -r probe pkg <<<"$w"
    if [[ $probe == /* ]]; then
      [ -e "$probe" ] && continue
    else
      PATH="$PATH:/usr/sbin:/sbin" command -v "$probe" >/dev/null 2>&1 && continue
    fi
    echo "$pkg"
  done
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing for real nodes: ${missing[*]}" >&2
  exit 1
fi
if [ "${WARREN_REAL_NODES:-}" = 0 ]; then
  echo "WARREN_REAL_NODES=0: not installing ${missing[*]}; the real-node tests will be SKIPPED" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "real nodes need the Debian packages ${missing[*]}, and this is not root with apt-get:" >&2
  echo "  install them (sudo apt-get install ${missing[*]}) or set WARREN_REAL_NODES=0 to skip the real-node tests" >&2
  exit 0
fi
echo "installing ${missing[*]} for real nodes (apt-get, once)" >&2
log=$(mktemp)
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "apt-get could not install ${missing[*]}; the real-node tests will fail naming what is missing. apt-get said:" >&2
  tail -n 20 "$log" >&2
fi
rm -f "$log"
exit 0
