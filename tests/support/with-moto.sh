#!/usr/bin/env bash
# Runs a command with the S3/SQS/DynamoDB emulator (moto_server) on a free loopback port, exported as
# TALLY_TEST_AWS_ENDPOINT, and in front of it a DynamoDB endpoint whose eventually consistent reads lag
# behind writes as on AWS (lagging_dynamodb.py), exported as TALLY_TEST_LAGGING_DYNAMODB, and an S3 and
# DynamoDB endpoint that fails requests as tests ask (faulty_aws.py), exported as TALLY_TEST_FAULTY_AWS,
# and an HTTPS endpoint to the emulator (tls_aws.py), exported as TALLY_TEST_TLS_AWS with the roots that
# trust it in TALLY_TEST_TLS_ROOTS; stops all four afterwards whatever the command's outcome.
set -euo pipefail
venv="${VENV:-.venv}"
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
lag_port=$(free_port)
fault_port=$(free_port)
tls_port=$(free_port)
tls_roots="$(mktemp -t tally-tls-roots.XXXXXX.pem)"
log="$(mktemp -t moto.XXXXXX.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
"$venv/bin/python" "$(dirname "$0")/lagging_dynamodb.py" "http://127.0.0.1:$port" "$lag_port" >>"$log" 2>&1 &
lag_pid=$!
"$venv/bin/python" "$(dirname "$0")/faulty_aws.py" "http://127.0.0.1:$port" "$fault_port" >>"$log" 2>&1 &
fault_pid=$!
"$venv/bin/python" "$(dirname "$0")/tls_aws.py" "http://127.0.0.1:$port" "$tls_port" "$tls_roots" >>"$log" 2>&1 &
tls_pid=$!
trap 'kill "$moto_pid" "$lag_pid" "$fault_pid" "$tls_pid" 2>/dev/null || true; wait "$moto_pid" "$lag_pid" "$fault_pid" "$tls_pid" 2>/dev/null || true; rm -f "$tls_roots"' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server failed to start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
done
# Waits up to ten seconds for a helper endpoint: until the Python statement given runs without error.
ready() {
  for _ in $(seq 1 100); do
    "$venv/bin/python" -c "$1" 2>/dev/null && return 0
    sleep 0.1
  done
}
ready "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$lag_port/_lagging/stats')"
ready "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$fault_port/_faults')"
ready "import socket; socket.create_connection(('127.0.0.1', $tls_port)).close()"
export TALLY_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export TALLY_TEST_LAGGING_DYNAMODB="http://127.0.0.1:$lag_port"
export TALLY_TEST_FAULTY_AWS="http://127.0.0.1:$fault_port"
export TALLY_TEST_TLS_AWS="https://localhost:$tls_port"
export TALLY_TEST_TLS_ROOTS="$tls_roots"
echo "emulator: moto_server on $TALLY_TEST_AWS_ENDPOINT, lagging DynamoDB reads on $TALLY_TEST_LAGGING_DYNAMODB, faults on $TALLY_TEST_FAULTY_AWS, HTTPS on $TALLY_TEST_TLS_AWS" >&2
"$@"
