// The healctl script the tests run as a real process: the built `client/healctl.js` when the test runner
// made a build for the run (KLR_TEST_BUILD, `npm run build`'s output, the JavaScript production runs),
// else bin/healctl.js, which runs the sources through tsx. Same program either way; the build starts in
// about a third of the CPU time, and the healctl files start a process for every command they check.
import { join } from 'node:path';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const built = process.env.KLR_TEST_BUILD;

export const HEALCTL_SCRIPT = built
  ? join(built, 'client', 'healctl.js')
  : join(REPO_ROOT, 'bin', 'healctl.js');
