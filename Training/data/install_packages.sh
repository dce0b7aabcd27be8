#!/usr/bin/env bash
# Install the Debian packages that ship the real audio used by Training/data/collect.py.
# Idempotent: packages already installed are skipped; `apt-get update` runs at most once per call.
# Usage: sudo bash Training/data/install_packages.sh        (root needed; ~1.3 GB download)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Audio data packages (see Training/data/README.md and LICENSES.md for what each contributes).
DATA_PACKAGES=(
  # speech
  tuxpaint-stamps-default          # spoken stamp descriptions in ~30 languages (GPL-2)
  fillets-ng-data                  # Fish Fillets NG: voiced dialogue (en/...) + music + sfx (GPL-2+)
  fillets-ng-data-cs               # Fish Fillets NG: Czech dialogue (GPL-2+)
  asterisk-core-sounds-en-g722     # IVR prompts, several speakers (CC-BY-SA-3.0)
  asterisk-core-sounds-fr-g722
  asterisk-core-sounds-ru-g722
  asterisk-core-sounds-es-g722
  asterisk-core-sounds-it-g722
  klettres-data                    # KLettres: spoken letters/syllables (GPL-2+)
  hedgewars-data                   # voice packs + music + sfx (GPL-2 / see copyright)
  # music
  asterisk-moh-opsound-g722        # music on hold (CC-BY-SA-3.0)
  wesnoth-1.16-music               # orchestral game music (GPL-2+)
  fretsonfire-songs-muldjord       # two-stem songs: guitar + rest
  fretsonfire-songs-sectoid        # two-stem songs: guitar + rest
  openttd-openmsx                  # 31 MIDI songs, rendered to drums/bass/vocals/other stems (GPL-2)
  planetblupi-music-midi           # 10 MIDI songs, rendered to stems (GPL-3+)
  freedink-data                    # MIDI songs (rendered) + sound effects (Zlib / per-file free licences)
  lincity-ng-data                  # sound effects + 3 music tracks (GPL-2+)
  # sfx / noise
  wesnoth-1.16-data                # game sound effects (GPL-2+)
  sonic-pi-samples                 # drum hits, ambient loops, misc samples (CC0 / MIT)
  bucklespring-data                # keyboard clicks (GPL-2+)
  pingus-data                      # a few sound effects (GPL-3+)
  warzone2100-data                 # base.wz: voice messages, tutorial, taunts (speech) + sfx (GPL-2+)
)
# Tools used by collect.py / the stem renderer (usually present already).
TOOL_PACKAGES=(ffmpeg fluidsynth fluid-soundfont-gm espeak-ng)

missing=()
for p in "${DATA_PACKAGES[@]}" "${TOOL_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_packages.sh: all ${#DATA_PACKAGES[@]} data packages already installed"
  exit 0
fi

echo "install_packages.sh: installing ${#missing[@]} package(s): ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_packages.sh: done"
