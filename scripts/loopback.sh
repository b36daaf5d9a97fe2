#!/usr/bin/env bash
# Run a command with all of Ray's traffic on 127.0.0.1.
#
# Ray binds to the machine's network address unless it runs where only the
# loopback interface exists. As root (with iproute2) this script makes a private
# loopback-only network namespace for the command and removes it afterwards;
# otherwise, or with SYNTH_NETNS=0, it runs the command as it is.
set -uo pipefail
if [[ "${SYNTH_NETNS:-1}" != "0" && "$(id -u)" == "0" ]] && command -v ip >/dev/null 2>&1; then
  ns="synth-$$-$RANDOM"
  if ip netns add "$ns" 2>/dev/null; then
    trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" "$@"
    exit $?
  fi
  echo "loopback.sh: could not create a network namespace; running without one" >&2
fi
exec "$@"
