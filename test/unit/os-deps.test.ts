// Which Debian packages the test command installs, for which test files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missingPackages } from '../../scripts/os-deps.js';

test('only the packages of the files that run, and only those missing', () => {
  const none = () => false;
  assert.deepEqual(missingPackages(['test/unit/line-tail.test.ts'], none), []);
  assert.deepEqual(missingPackages(['test/deploy/alertmanager.test.ts'], none), ['prometheus-alertmanager']);
  assert.deepEqual(
    missingPackages(['test/e2e/prometheus.test.ts', 'test/deploy/prometheus-rules.test.ts'], none),
    ['prometheus'],
  );
  assert.deepEqual(
    missingPackages(
      ['test/deploy/compose.test.ts', 'test/e2e/web-ui.test.ts', 'test/deploy/alertmanager.test.ts'],
      (c) => c === 'amtool',
    ),
    ['chromium', 'docker-compose'],
  );
});
