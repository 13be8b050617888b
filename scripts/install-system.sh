#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages rtmirror's live path and tests use.
# Runs only as root on a Debian-family system; elsewhere it prints what to install and exits 0.
set -euo pipefail
PKGS="libportaudio2 jackd2 xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 amsynth fluidsynth fluid-soundfont-gm libsndfile1"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "rtmirror: please install these system packages:$missing" >&2
  exit 0
fi
echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
