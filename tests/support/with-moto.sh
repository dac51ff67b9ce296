#!/usr/bin/env bash
# Runs a command with the S3/SQS/DynamoDB emulator (moto_server) on a free loopback port, exported as
# TALLY_TEST_AWS_ENDPOINT, and stops the emulator afterwards whatever the command's outcome.
set -euo pipefail
venv="${VENV:-.venv}"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$(mktemp -t moto.XXXXXX.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server failed to start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
done
export TALLY_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
echo "emulator: moto_server on $TALLY_TEST_AWS_ENDPOINT" >&2
"$@"
