// The chaos harness closes a server's connection under calls it abandoned. A call whose retry is still
// waiting on its backoff timer must then end as a rejection, not throw from the timer ("Channel has
// been shut down", an uncaught exception that fails the whole run). The server here is a real gRPC
// server on loopback that refuses the first call UNAVAILABLE, so the SDK's retry interceptor arms its
// timer; the connection is closed before that timer fires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, ServerCredentials, status, type ServiceDefinition } from '@grpc/grpc-js';
import { connectClosable } from '../support/closable-connection.js';

const SERVICE = '/temporal.api.workflowservice.v1.WorkflowService';
const raw = (path: string) => ({
  path: `${SERVICE}/${path}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
});
const definition: ServiceDefinition = {
  GetSystemInfo: raw('GetSystemInfo'),
  DescribeNamespace: raw('DescribeNamespace'),
};

test(
  'a call retrying when its connection is closed ends CANCELLED, nothing thrown from a timer',
  { timeout: 20_000 },
  async () => {
    let refused!: () => void;
    const firstRefused = new Promise<void>((resolve) => (refused = resolve));
    let calls = 0;
    const server = new Server();
    server.addService(definition, {
      // An empty message is a valid (all-default) answer: enough for Connection.connect's check.
      GetSystemInfo: (_call: unknown, done: (err: null, value: Buffer) => void) =>
        done(null, Buffer.alloc(0)),
      DescribeNamespace: (_call: unknown, done: (err: { code: number; details: string }) => void) => {
        calls++;
        done({ code: status.UNAVAILABLE, details: 'not now' });
        refused();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    try {
      const { connection, close } = await connectClosable(`127.0.0.1:${port}`);
      const call = connection.workflowService.describeNamespace({ namespace: 'default' });
      call.catch(() => undefined); // read below, after the close
      await firstRefused;
      // The retry interceptor now waits about 170 ms before its second attempt: close under it.
      await close();
      await assert.rejects(call, (err: Error & { code?: number }) => {
        assert.equal(err.code, status.CANCELLED, String(err));
        assert.match(err.message, /the connection was closed/);
        return true;
      });
      assert.equal(calls, 1, 'no attempt reached the server after the close');
      // A second call after the close fails the same way rather than throwing synchronously.
      await assert.rejects(connection.workflowService.describeNamespace({ namespace: 'default' }));
    } finally {
      server.forceShutdown();
    }
  },
);
