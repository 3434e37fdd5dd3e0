// A client Connection that may be closed while calls are still in flight.
//
// The SDK's retry interceptor sends a call that failed UNAVAILABLE again from a timer. When the channel
// was closed meanwhile (its server torn down under an abandoned call), grpc-js throws "Channel has been
// shut down" from inside that timer: an uncaught exception that fails the whole test process, long
// after the call's own test gave up on it. Behind the retry interceptor, this guard answers every
// attempt made after close() with CANCELLED (not retried), so such a call ends as a rejected promise.
import {
  InterceptingCall,
  Metadata,
  status,
  type Interceptor,
  type InterceptingListener,
} from '@grpc/grpc-js';
import { Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';

export interface ClosableConnection {
  connection: Connection;
  /** Closes the channel; calls still retrying end CANCELLED instead of throwing from a timer. */
  close: () => Promise<void>;
}

export async function connectClosable(address: string): Promise<ClosableConnection> {
  let closed = false;
  const guard: Interceptor = (options, nextCall) => {
    if (!closed) {
      try {
        return new InterceptingCall(nextCall(options));
      } catch (err) {
        // The channel closed between the check and the call: the same late attempt, answered the same.
        if (!/shut down/i.test(String(err))) throw err;
      }
    }
    return new InterceptingCall(cancelledCall());
  };
  const connection = await Connection.connect({
    address,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), guard],
  });
  return {
    connection,
    close: async () => {
      closed = true;
      await connection.close();
    },
  };
}

/**
 * A call that never reaches a channel: it ends CANCELLED as soon as it starts. Like grpc-js's own unary
 * calls it reports "no message" before the status: the retry interceptor relies on that.
 */
function cancelledCall(): ConstructorParameters<typeof InterceptingCall>[0] {
  return {
    start(_metadata: Metadata, listener?: Partial<InterceptingListener>) {
      setImmediate(() => {
        listener?.onReceiveMessage?.(null);
        listener?.onReceiveStatus?.({
          code: status.CANCELLED,
          details: 'the connection was closed',
          metadata: new Metadata(),
        });
      });
    },
    cancelWithStatus: () => undefined,
    getPeer: () => 'closed',
    sendMessageWithContext: () => undefined,
    sendMessage: () => undefined,
    startRead: () => undefined,
    halfClose: () => undefined,
    getAuthContext: () => null,
  };
}
