#!/bin/sh
# One-shot of the lab stack (admin-tools image): waits until the Temporal server serves, then registers
# the search attributes kloros-healing's workflows set (src/workflows/search-attributes.ts) in the
# namespace. Safe to run again: an attribute that exists already is left alone.
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"

tries=0
until temporal operator cluster health --address "$ADDRESS" 2>/dev/null | grep -q SERVING; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then
    echo "Temporal at $ADDRESS not serving after 180 s" >&2
    exit 1
  fi
  sleep 2
done
until temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  echo "waiting for namespace $NAMESPACE"
  sleep 2
done

register() {
  if temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" | grep -qw "$1"; then
    echo "search attribute $1 exists"
  else
    temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" --name "$1" --type "$2"
    echo "search attribute $1 ($2) registered"
  fi
}

register KlrHost Keyword
register KlrKind Keyword
register KlrMode Keyword
register KlrArmed Bool
register KlrPhase Keyword
register KlrService Keyword
