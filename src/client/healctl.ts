// healctl: the operator's command line. Exit codes: 0 ok, 1 failure, 2 usage.
// Each command lives in its own module under ./commands and registers itself here.
import { Command, CommanderError } from 'commander';
import { SettingsError } from '../config/settings.js';
import { CliError } from './cli/errors.js';
import { TemporalUnreachableError } from '../temporal/temporal-client.js';
import { registerVramCommand } from './commands/vram.js';
import { registerObserveCommand } from './commands/observe.js';
import { registerSymptomCommand } from './commands/symptom.js';
import { registerStatusCommand } from './commands/status.js';
import { registerListCommand } from './commands/list.js';
import { registerHistoryCommand } from './commands/history.js';
import { registerWatchCommand } from './commands/watch.js';
import { registerStartCommand } from './commands/start.js';
import { registerCancelCommand } from './commands/cancel.js';
import { registerClearCommand } from './commands/clear.js';
import { registerEscalateCommand } from './commands/escalate.js';
import { registerPauseCommand } from './commands/pause.js';
import { registerResumeCommand } from './commands/resume.js';
import { registerAckCommand } from './commands/ack.js';
import { registerRollbackCommand } from './commands/rollback.js';
import { registerWorkerCommand } from './commands/worker.js';
import { registerWaitCommand } from './commands/wait.js';
import { registerCompletionCommand } from './commands/completion.js';
import { addConnectionFlags } from './cli/connection-flags.js';
import { addOutputOption } from './cli/output.js';
import { VERSION } from './cli/version.js';

const program = new Command()
  .name('healctl')
  .description('Operate kloros-healing: the self-healing loop for GPU inference services.')
  .version(VERSION, '-V, --version', 'print the version')
  .configureHelp({ showGlobalOptions: true })
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });
addConnectionFlags(program);
addOutputOption(program);

// `healctl observe --json | head`: the reader went away; that ends the command, quietly and successfully.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

registerSymptomCommand(program);
registerStatusCommand(program);
registerListCommand(program);
registerHistoryCommand(program);
registerWatchCommand(program);
registerWaitCommand(program);
registerStartCommand(program);
registerCancelCommand(program);
registerClearCommand(program);
registerEscalateCommand(program);
registerPauseCommand(program);
registerResumeCommand(program);
registerAckCommand(program);
registerRollbackCommand(program);
registerWorkerCommand(program);
registerVramCommand(program);
registerObserveCommand(program);
registerCompletionCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof CliError) {
    console.error(err.message);
    process.exit(err.exitCode);
  }
  if (err instanceof TemporalUnreachableError || err instanceof SettingsError) {
    console.error(`healctl: ${err.message}`);
    process.exit(1);
  }
  console.error(`healctl: ${errorText(err)}`);
  process.exit(1);
}

/** An error with what caused it: the SDK's "Failed to list workflows" alone does not say why. */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { details?: unknown; message?: unknown } | undefined;
  const why = typeof cause?.details === 'string' && cause.details ? cause.details : cause?.message;
  return typeof why === 'string' && why && !err.message.includes(why)
    ? `${err.message}: ${why}`
    : err.message;
}
