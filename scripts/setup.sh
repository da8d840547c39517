#!/usr/bin/env bash
# Install what est-hw needs on Debian 12/13 when it is missing, then make .venv.
#
# Debian packages: only those whose command is missing are installed (sudo when not root).
# .venv: created with the system python3 and the package installed editable with the
# `test` and `tpm` extras (tpm2-pytss builds against libtss2-dev, about 40 s); skipped
# when .venv is newer than pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have softhsm2-util || need+=(softhsm2)
have pkcs11-tool || need+=(opensc)
have gnutls-serv || need+=(gnutls-bin)
have openssl || need+=(openssl)
have swtpm || need+=(swtpm swtpm-tools)
have tpm2_getcap || need+=(tpm2-tools)
have pkg-config || need+=(pkg-config)
[ -e /usr/include/tss2/tss2_esys.h ] || need+=(libtss2-dev)
# the tpm2 OpenSSL provider: TSS2 PRIVATE KEY files made by est-hw must load in it
ls /usr/lib/*/ossl-modules/tpm2.so >/dev/null 2>&1 || need+=(tpm2-openssl)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
have cc || need+=(gcc)
python3 -c 'import sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
    2>/dev/null || need+=(python3-dev)

if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test,tpm]'
    touch .venv/.installed
fi
