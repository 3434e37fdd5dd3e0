// The server's "busy" refusal of a query (RESOURCE_EXHAUSTED: the workflow's query buffer is full while
// a task is in flight) is asked again briefly; anything else is thrown at once. The errors are the
// client's own ServiceError around a gRPC status, as the SDK throws them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceError } from '@temporalio/client';
import { isQueryBusy, queryWhenNotBusy } from '../../src/temporal/query-busy.js';

const grpc = (code: number, details: string) =>
  Object.assign(new Error(`${code} ${details}`), { code, details });
const busy = () =>
  new ServiceError('Failed to query Workflow', {
    cause: grpc(8, 'consistent query buffer is full, this may be caused by too many queries'),
  });

test('busy is RESOURCE_EXHAUSTED, wrapped or not; other codes are not', () => {
  assert.equal(isQueryBusy(busy()), true);
  assert.equal(isQueryBusy(grpc(8, 'x')), true);
  assert.equal(isQueryBusy(new ServiceError('x', { cause: grpc(14, 'unavailable') })), false);
  assert.equal(isQueryBusy(new Error('8')), false);
});

test('asked again while busy, then answered', async () => {
  let calls = 0;
  const answer = await queryWhenNotBusy(async () => {
    if (++calls < 3) throw busy();
    return 'state';
  });
  assert.equal(answer, 'state');
  assert.equal(calls, 3);
});

test('any other error is thrown at once, and busy for good is thrown after the last try', async () => {
  let calls = 0;
  await assert.rejects(
    queryWhenNotBusy(async () => {
      calls++;
      throw new ServiceError('no', { cause: grpc(5, 'not found') });
    }),
    /no/,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    queryWhenNotBusy(async () => {
      calls++;
      throw busy();
    }, 3),
    (err: unknown) => isQueryBusy(err),
  );
  assert.equal(calls, 3);
});
