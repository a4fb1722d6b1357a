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
  openssl unbound ldnsutils dnsutils publicsuffix
  swaks libnet-ssleay-perl libio-socket-ssl-perl curl msmtp postfix dovecot-core dovecot-lmtpd
  python3 python3-prometheus-client
  hyperfine time procps iproute2
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
