#!/usr/bin/env bash
# Send a symptom to the HealingWorkflow of a GPU host with nothing but the Temporal CLI: no code from this
# project, only the documented workflow id, task queue and message names (see docs/integrations.md).
#
#   send-symptom-cli.sh update HOST KIND ID [DETAILS_JSON]   update-with-start: waits, prints the count
#   send-symptom-cli.sh signal HOST KIND ID [DETAILS_JSON]   signal-with-start: fire and forget
#
# e.g.  send-symptom-cli.sh update gpu-1 vllm_oom my-service:req-42 '{"allocMb":2048,"family":"torch_oom"}'
#
# The CLI finds Temporal as usual: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, a profile...
# TEMPORAL_CLI may name the binary (default: `temporal` on PATH). The same ID sent twice counts once.
set -euo pipefail

temporal=${TEMPORAL_CLI:-temporal}
mode=${1:-}
host=${2:-}
kind=${3:-}
id=${4:-}
details=${5:-'{}'}

usage() {
  sed -n '4,6p' "$0" >&2
  exit 2
}
[[ $mode == update || $mode == signal ]] || usage
# Checked here because they are pasted into JSON and into the workflow id below.
[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ ]] || { echo "HOST: letters, digits, - . _ (got '$host')" >&2; exit 2; }
[[ $kind =~ ^[a-z0-9][a-z0-9_.-]{0,63}$ ]] || { echo "KIND: lower-case letters, digits, _ . - (got '$kind')" >&2; exit 2; }
[[ $id =~ ^[A-Za-z0-9_.:/@-]{1,200}$ ]] || { echo "ID: 1-200 of letters, digits, _ . : / @ - (got '$id')" >&2; exit 2; }

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
workflow_id="kloros-healing/$host/$kind"
task_queue="kloros-healing.$host"
workflow_input="{\"host\":\"$host\",\"kind\":\"$kind\"}"
symptom="{\"kind\":\"$kind\",\"id\":\"$id\",\"eventTime\":\"$now\",\"source\":\"temporal-cli\",\"details\":$details}"

if [[ $mode == update ]]; then
  # Counts the symptom and answers {outcome, count24h, threshold, armed, ...}; the update id makes a
  # retry of this very command harmless. A bad payload is refused with the field that is wrong.
  exec "$temporal" workflow execute-update-with-start \
    --workflow-id "$workflow_id" --type HealingWorkflow --task-queue "$task_queue" \
    --id-conflict-policy UseExisting --input "$workflow_input" \
    --update-name recordSymptom --update-id "symptom:$id" --update-input "$symptom" \
    --output json
else
  # No answer: a bad payload is recorded in the workflow as a rejected decision (see its `state` query).
  exec "$temporal" workflow signal-with-start \
    --workflow-id "$workflow_id" --type HealingWorkflow --task-queue "$task_queue" \
    --input "$workflow_input" \
    --signal-name symptom --signal-input "$symptom"
fi
