#!/usr/bin/env bash
# Installs every Debian 12 package ehlo needs to build, run and test.
# Idempotent: packages already present are left alone. Needs root (or sudo).
# Postfix is installed only for smtp-source/smtp-sink/postconf and the
# benchmark's private instance; it is kept unconfigured and never started
# as a system service (STACK.md §9).
set -euo pipefail

PKGS=(
  pkg-config meson ninja-build gcc
  clang-14 libclang-rt-14-dev llvm-14
  libevent-dev libssl-dev libunbound-dev libcrypt-dev libcmocka-dev
  # libunbound.pc lists hogweed and nettle in Requires.private, but
  # libunbound-dev does not depend on nettle-dev: without it pkg-config
  # (and so meson) cannot use libunbound on a fresh machine.
  nettle-dev
  openssl unbound ldnsutils dnsutils publicsuffix
  swaks libnet-ssleay-perl libio-socket-ssl-perl curl msmtp postfix dovecot-core dovecot-lmtpd
  python3 python3-prometheus-client
  hyperfine time procps iproute2
  # the power-loss test: an ext4 image without a journal on a loop device
  e2fsprogs mount
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "install-deps: installing ${missing[*]}" >&2
# unbound, postfix and dovecot are only tools for the tests: they must not
# start as system services (they would take ports 25/53, and in a container
# without an init system their postinst start would fail the install).
# Where no policy-rc.d exists, one that refuses every start is put in place
# for the install and removed afterwards.
policy=/usr/sbin/policy-rc.d
placed=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  placed=1
fi
cleanup() { [ "$placed" -eq 1 ] && $SUDO rm -f "$policy"; return 0; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
