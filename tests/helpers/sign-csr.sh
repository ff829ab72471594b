#!/bin/sh
# A stand-in for a CA's command-line tool, for the command_ca tests.
#
#   sign-csr.sh CSR [OUT]
#
# Signs CSR (or standard input when CSR is "-") with the test CA in
# $SIGN_CSR_CA_DIR, whose key passphrase comes in $SIGN_CSR_KEY_PASS, and writes
# the certificate followed by the CA certificate to OUT, or to standard
# output when OUT is missing. Each call appends its arguments, one per line
# and then a line "--", to $SIGN_CSR_CA_DIR/calls.log.
set -eu

ca_dir=${SIGN_CSR_CA_DIR:?SIGN_CSR_CA_DIR is not set}
csr=${1:?usage: sign-csr.sh CSR [OUT]}
if [ "$csr" = - ]; then
    csr=/dev/stdin
fi

for arg in "$@"; do
    printf '%s\n' "$arg" >>"$ca_dir/calls.log"
done
printf -- '--\n' >>"$ca_dir/calls.log"

leaf=$(mktemp)
trap 'rm -f "$leaf"' EXIT
SSL_CERT_FILE=/dev/null openssl x509 -req -in "$csr" \
    -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key" -passin env:SIGN_CSR_KEY_PASS \
    -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 30 -sha256 \
    -extfile "$ca_dir/leaf.cnf" -extensions leaf -out "$leaf"

if [ $# -ge 2 ]; then
    cat "$leaf" "$ca_dir/ca.pem" >"$2"
else
    cat "$leaf" "$ca_dir/ca.pem"
fi
