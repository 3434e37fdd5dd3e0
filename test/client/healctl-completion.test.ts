// healctl completion: the bash script, sourced in a real bash, completes commands and each command's
// options from healctl's own definitions; zsh and fish scripts name the same commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { HEALCTL_SCRIPT } from '../support/programs.js';

const healctl = (args: string[]) => execa(process.execPath, [HEALCTL_SCRIPT, ...args], { reject: false });

async function complete(script: string, words: string[]): Promise<string[]> {
  const array = words.map((w) => `'${w}'`).join(' ');
  const r = await execa('bash', [
    '-c',
    `${script}\nCOMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _healctl; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('bash: commands, then the options of the command typed', async () => {
  const r = await healctl(['completion', 'bash']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(await complete(r.stdout, ['healctl', 'st']), ['start', 'status']);
  assert.deepEqual(await complete(r.stdout, ['healctl', 'wait', '--f']), ['--for']);
  assert.deepEqual(await complete(r.stdout, ['healctl', 'status', '--dec']), ['--decisions']);
  // Issue 17: every command that addresses one healing workflow takes --service.
  for (const command of [
    'status',
    'watch',
    'wait',
    'history',
    'symptom',
    'escalate',
    'clear',
    'start',
    'cancel',
    'list',
    'rollback',
  ])
    assert.deepEqual(await complete(r.stdout, ['healctl', command, '--serv']), ['--service'], command);
  assert.deepEqual(await complete(r.stdout, ['healctl', 'pause', '--serv']), [], 'pause is per host');
  assert.ok(
    (await complete(r.stdout, ['healctl', 'list', '--'])).includes('--namespace'),
    'global flags too',
  );
});

test('zsh and fish scripts, and a bad shell is a usage error', async () => {
  const zsh = await healctl(['completion', 'zsh']);
  assert.match(zsh.stdout, /bashcompinit/);
  assert.match(zsh.stdout, /complete -F _healctl healctl/);
  const fish = await healctl(['completion', 'fish']);
  assert.match(fish.stdout, /complete -c healctl -n '__fish_use_subcommand' -a rollback -d '/);
  assert.match(fish.stdout, /__fish_seen_subcommand_from wait' -l timeout/);
  assert.match(fish.stdout, /__fish_seen_subcommand_from status' -l service/);
  const bad = await healctl(['completion', 'tcsh']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /expected one of bash, zsh, fish/);
});
