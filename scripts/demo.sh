#!/usr/bin/env bash
# make demo: the main job on an embedded default.
# Starts the local test EST server, makes a fresh SoftHSM2 token under a temp dir,
# enrolls a key generated inside the token (`est-hw enroll`), lists the token
# (`est-hw show`), cross-checks it with pkcs11-tool, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=$(mktemp -d "${TMPDIR:-/tmp}/est-hw-demo.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== test EST server (throwaway CA) on 127.0.0.1"
"$py" -m est_hw.testing.server --port 0 --ready-file "$work/port" --ca-out "$work/ca.pem" \
    --state-dir "$work/ca" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "demo: the test server did not start"; cat "$work/server.log"; exit 1; }
port=$(cat "$work/port")
echo "   https://127.0.0.1:$port/.well-known/est/  anchor: $work/ca.pem"

echo "== fresh SoftHSM2 token 'demo' in $work/softhsm"
export EST_HW_PIN=1234   # throwaway demo PIN; est-hw reads it from the environment
eval "$(softhsm/init-token.sh "$work/softhsm" demo)"
export EST_HW_PKCS11_MODULE=${EST_HW_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

echo "== est-hw enroll (key generated and CSR signed inside the token)"
set -x
.venv/bin/est-hw enroll --server "https://127.0.0.1:$port" --ca-file "$work/ca.pem" \
    --token demo --key-type ec-p256 --subject "CN=demo-device-1,O=est-hw demo" \
    --san dns:demo-device-1.example --json
.venv/bin/est-hw show --token demo
set +x

echo "== independent cross-check: pkcs11-tool"
pkcs11-tool --module "$EST_HW_PKCS11_MODULE" --token-label demo --login \
    --pin "$EST_HW_PIN" -O 2>/dev/null | grep -E "Object;|label:|ID:|Access:|subject:"
echo "== demo done (server stopped, temp dir removed)"
