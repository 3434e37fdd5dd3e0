// The shape shared by the operator actions (clear, escalate, pause, resume, ack): --reason, --by, --json,
// one update on a workflow that answers with its new state.
import type { Command } from 'commander';
import { addHostOption, operatorName, requireReason } from './options.js';

export interface OperatorOptions {
  host?: string;
  reason?: string;
  by?: string;
  json?: boolean;
}

export function addOperatorOptions(cmd: Command, reasonRequired: boolean, withHost: boolean): Command {
  if (withHost) addHostOption(cmd);
  return cmd
    .option(
      '--reason <text>',
      reasonRequired ? 'why (required; kept in the decision log)' : 'why (kept in the decision log)',
    )
    .option('--by <who>', 'who asks (default: $USER@hostname)')
    .option('--json', 'print the workflow’s new state as JSON');
}

export function operatorAction(
  opts: OperatorOptions,
  command: string,
  reasonRequired: boolean,
  fallbackReason = '',
) {
  return {
    by: operatorName(opts.by),
    reason: reasonRequired ? requireReason(opts.reason, command) : opts.reason?.trim() || fallbackReason,
  };
}
