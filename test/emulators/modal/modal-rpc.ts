/**
 * The gRPC plumbing of the Modal emulator: handler types, the error a handler throws, and the
 * registration of every RPC in modal-wire.ts on a grpc-js server, with auth checks, call counts
 * and backpressure on server streams.
 */
import * as grpc from '@grpc/grpc-js';
import { SandboxError } from '../../../src/kit/index.js';
import { rpcs, type RpcName, type RpcSpec } from './modal-wire.js';

/** Messages as plain camelCase objects (see modal-wire.ts). */
export type Json = Record<string, any>;

export type RpcCall = grpc.ServerUnaryCall<Json, Json> | grpc.ServerWritableStream<Json, Json> | grpc.ServerReadableStream<Json, Json>;

/** One RPC: a unary or client-stream handler resolves the response; a server-stream one yields messages. */
export type RpcHandler = (request: Json, call: RpcCall) => Promise<Json> | AsyncIterable<Json>;

export type RpcHandlers = { [Name in RpcName]: RpcHandler };

/** A gRPC status with a message, as the client's SDK sees it. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** Our errors by code; anything unknown is FAILED_PRECONDITION. */
export function asRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (SandboxError.isInstance(error)) {
    const code =
      error.code === 'sandbox_not_found'
        ? grpc.status.NOT_FOUND
        : error.code === 'invalid_argument'
          ? grpc.status.INVALID_ARGUMENT
          : error.code === 'already_exists'
            ? grpc.status.ALREADY_EXISTS
            : grpc.status.FAILED_PRECONDITION;
    return new RpcError(code, error.message);
  }
  return new RpcError(grpc.status.FAILED_PRECONDITION, `emulator: ${error instanceof Error ? error.message : String(error)}`);
}

/** Unexpected failures are FAILED_PRECONDITION: the SDK retries INTERNAL and UNKNOWN, which would hide them. */
function toStatus(error: unknown, method: string): Partial<grpc.StatusObject> {
  const rpcError = asRpcError(error);
  if (!(error instanceof RpcError) && !SandboxError.isInstance(error)) console.error(`[modal emulator] ${method} failed:`, error);
  return { code: rpcError.code, details: rpcError.message, metadata: new grpc.Metadata() };
}

export interface RegisterRpcsOptions {
  /** Counted per RPC name on every call. */
  calls: Map<string, number>;
  /** Throws an UNAUTHENTICATED `RpcError` unless the call's metadata carries a valid token. */
  checkAuth(name: RpcName, spec: RpcSpec, metadata: grpc.Metadata): void;
}

/** Registers every RPC of modal-wire.ts on `server`, each answered by its handler. */
export function registerRpcs(server: grpc.Server, handlers: RpcHandlers, options: RegisterRpcsOptions): void {
  for (const [name, spec] of Object.entries(rpcs) as Array<[RpcName, RpcSpec]>) {
    const handler = handlers[name];
    const count = () => options.calls.set(name, (options.calls.get(name) ?? 0) + 1);
    const method = spec.path.slice(spec.path.lastIndexOf('/') + 1);
    const checkAuth = (metadata: grpc.Metadata) => options.checkAuth(name, spec, metadata);
    if (spec.kind === 'unary') {
      server.register(
        spec.path,
        (call: grpc.ServerUnaryCall<Json, Json>, callback: grpc.sendUnaryData<Json>) => {
          count();
          void (async () => {
            checkAuth(call.metadata);
            return (await handler(call.request, call)) as Json;
          })().then(
            (response) => callback(null, response),
            (error: unknown) => callback(toStatus(error, method)),
          );
        },
        spec.response.encode,
        spec.request.decode,
        'unary',
      );
    } else if (spec.kind === 'serverStream') {
      server.register(
        spec.path,
        (call: grpc.ServerWritableStream<Json, Json>) => {
          count();
          let cancelled = false;
          call.on('cancelled', () => (cancelled = true));
          void (async () => {
            checkAuth(call.metadata);
            for await (const message of handler(call.request, call) as AsyncIterable<Json>) {
              if (cancelled) return;
              // Backpressure: wait for the client to take what was sent before reading more.
              if (!call.write(message)) await drained(call);
              if (cancelled) return;
            }
            call.end();
          })().catch((error: unknown) => {
            if (!cancelled) call.emit('error', toStatus(error, method));
          });
        },
        spec.response.encode,
        spec.request.decode,
        'serverStream',
      );
    } else {
      server.register(
        spec.path,
        (call: grpc.ServerReadableStream<Json, Json>, callback: grpc.sendUnaryData<Json>) => {
          count();
          void (async () => {
            checkAuth(call.metadata);
            return (await handler({}, call)) as Json;
          })().then(
            (response) => callback(null, response),
            (error: unknown) => callback(toStatus(error, method)),
          );
        },
        spec.response.encode,
        spec.request.decode,
        'clientStream',
      );
    }
  }
}

function drained(call: grpc.ServerWritableStream<Json, Json>): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
  });
}
