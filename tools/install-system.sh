#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages rtmirror needs: `run` (the live app and its window) or
# `test` (also JACK, Xvfb, amsynth and FluidSynth, which the tests use as real parts).
# Runs only as root on a Debian-family system; elsewhere it prints what to install and exits 0.
set -euo pipefail
RUN_PKGS="libportaudio2 libsndfile1 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3"
TEST_PKGS="$RUN_PKGS jackd2 xvfb amsynth fluidsynth fluid-soundfont-gm csound-soundfont"
case "${1:-test}" in
  run) PKGS=$RUN_PKGS ;;
  test) PKGS=$TEST_PKGS ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
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
