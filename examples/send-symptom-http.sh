#!/usr/bin/env bash
# Send a symptom through the observer's HTTP door with curl (the door must be on: KLR_HTTP_DOOR=1).
#
#   KLR_HTTP_DOOR_TOKEN=... send-symptom-http.sh KIND ID [DETAILS_JSON]
#
# KLR_HTTP_DOOR_URL defaults to http://127.0.0.1:8787. Answers 202 {"accepted":true,"id":...} once the
# symptom is delivered or durably spooled; 400 names the field that is wrong. The same ID counts once.
set -euo pipefail

url=${KLR_HTTP_DOOR_URL:-http://127.0.0.1:8787}
kind=${1:?KIND}
id=${2:?ID}
details=${3:-'{}'}
: "${KLR_HTTP_DOOR_TOKEN:?set KLR_HTTP_DOOR_TOKEN to the token of the door}"

# The token goes in a header read from stdin, so it does not show in `ps`.
printf 'Authorization: Bearer %s\n' "$KLR_HTTP_DOOR_TOKEN" |
  curl --silent --show-error --fail-with-body \
    --header @- \
    --header 'Content-Type: application/json' \
    --data "{\"kind\":\"$kind\",\"id\":\"$id\",\"source\":\"curl\",\"details\":$details}" \
    "$url/v1/symptoms"
echo
