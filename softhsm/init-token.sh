#!/usr/bin/env bash
# Make a private SoftHSM2 token directory and initialise one token in it.
#
#   softhsm/init-token.sh DIR LABEL
#
# Writes DIR/softhsm2.conf (from softhsm2.conf.in) and DIR/tokens/, then initialises a
# token labelled LABEL in the first free slot.  The PINs come from the environment
# (SOFTHSM_SO_PIN, default 12345678; EST_HW_PIN, default 1234).  softhsm2-util only takes
# PINs on its command line, so use this for throwaway test and demo tokens only.
# Prints the line `export SOFTHSM2_CONF=DIR/softhsm2.conf` for the caller to eval.
set -euo pipefail
dir=${1:?usage: init-token.sh DIR LABEL}
label=${2:?usage: init-token.sh DIR LABEL}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"
softhsm2-util --init-token --free --label "$label" \
    --so-pin "${SOFTHSM_SO_PIN:-12345678}" --pin "${EST_HW_PIN:-1234}" >/dev/null
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
