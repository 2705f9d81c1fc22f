/**
 * A local Modal emulator: a plain HTTP/2 gRPC server on 127.0.0.1 that the real `modal` SDK
 * reaches through MODAL_SERVER_URL. It answers the control plane (`modal.client.ModalClient`)
 * and the task command router (`modal.task_command_router.TaskCommandRouter`) on the same port,
 * and runs every sandbox in the local bubblewrap provider.
 *
 * Scope: apps, environments, images (a registry tag is a local image with its userland,
 * modal-registry-images.ts; RUN layers and filesystem snapshots are local snapshots), ephemeral
 * and named secrets, named and ephemeral volumes with per-sandbox views (modal-volumes.ts),
 * create-time validation (modal-validation.ts), sandbox create / lookup / list / tags / tunnels /
 * wait / terminate, outbound allowlists and their live update (modal-network.ts), exec with
 * streamed stdio and stdin, the SDK's filesystem tool, and filesystem snapshots. Any other RPC
 * is UNIMPLEMENTED, so a gap shows up as a failing call, never a hang.
 *
 * This file wires the parts: the state (modal-state.ts), one handler group per concern
 * (modal-apps.ts, modal-images.ts, modal-secrets-volumes.ts, modal-sandboxes.ts, modal-exec.ts)
 * and the gRPC plumbing (modal-rpc.ts).
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { localProviderOnTestInternet } from '../shared/test-internet-provider.js';
import { appHandlers } from './modal-apps.js';
import { execHandlers } from './modal-exec.js';
import { imageHandlers } from './modal-images.js';
import { mountHandlers } from './modal-mounts.js';
import { networkHandlers } from './modal-network.js';
import { probeHandlers } from './modal-probes.js';
import { RpcError, registerRpcs, type RpcHandlers } from './modal-rpc.js';
import { sandboxHandlers } from './modal-sandboxes.js';
import { secretVolumeHandlers } from './modal-secrets-volumes.js';
import { sidecarHandlers } from './modal-sidecars.js';
import { ModalState } from './modal-state.js';
import { tokenHandlers } from './modal-tokens.js';
import { volumeHandlers } from './modal-volumes.js';
import { stdioHandlers } from './modal-stdio.js';

export interface ModalEmulatorOptions {
  /** Where sandboxes run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** Credentials AuthTokenGet accepts. @default any non-empty token id and secret */
  credentials?: { tokenId: string; tokenSecret: string };
  /** Named secrets that `secrets.fromName` finds. */
  secrets?: Record<string, Record<string, string>>;
  /** Host directory for named volumes. @default a fresh directory under the OS temp dir */
  stateDir?: string;
  /** How long an ephemeral volume lives after its last heartbeat, in ms. @default 600_000 (the SDK beats every 300 s) */
  ephemeralVolumeTimeoutMs?: number;
  /**
   * Whole-file reads through `sb.filesystem` above this many bytes fail with FileTooLarge.
   * @default modalReadFileLimitBytes (5 GiB, Modal's)
   */
  maxReadFileBytes?: number;
  /**
   * Without `provider`: run sandboxes in a local provider whose egress goes to the test internet
   * (../shared/test-internet-provider.ts), so that allowlists reach `allowed.test`; an object adds
   * hosts of the test's own to that internet (`TestInternetOptions.hosts`). @default false
   */
  testInternet?: boolean | TestInternetOptions;
}

export interface ModalEmulator {
  /** Value for MODAL_SERVER_URL. */
  readonly url: string;
  readonly port: number;
  /** RPC counts by method name, for tests and the benchmark. */
  readonly calls: Map<string, number>;
  /** Terminates every sandbox it started and stops the server. */
  close(): Promise<void>;
}

export async function startModalEmulator(options: ModalEmulatorOptions = {}): Promise<ModalEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const stateDir = options.stateDir ?? join(tmpdir(), `sandport-modal-emulator-${process.pid}-${randomBytes(4).toString('hex')}`);
  const state = new ModalState({
    provider,
    stateDir,
    credentials: options.credentials,
    secrets: options.secrets ?? {},
    fsTools: { maxReadFileBytes: options.maxReadFileBytes },
  });
  const calls = new Map<string, number>();
  const handlers: RpcHandlers = {
    ...appHandlers(state),
    ...imageHandlers(state),
    ...secretVolumeHandlers(state),
    ...volumeHandlers(state, { ephemeralTimeoutMs: options.ephemeralVolumeTimeoutMs }),
    ...sandboxHandlers(state),
    ...execHandlers(state),
    ...probeHandlers(state),
    ...tokenHandlers(state),
    ...mountHandlers(state),
    ...sidecarHandlers(state),
    ...stdioHandlers(state),
    ...networkHandlers(state),
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 100 * 1024 * 1024,
    'grpc.max_send_message_length': 100 * 1024 * 1024,
  });
  registerRpcs(server, handlers, {
    calls,
    checkAuth(name, spec, metadata) {
      if (name === 'authTokenGet') return;
      const routed = spec.path.includes('TaskCommandRouter');
      const value = routed
        ? String(metadata.get('authorization')[0] ?? '').replace(/^Bearer /, '')
        : String(metadata.get('x-modal-auth-token')[0] ?? '');
      const method = spec.path.slice(spec.path.lastIndexOf('/') + 1);
      if (!(routed ? state.routerTokens : state.authTokens).has(value))
        throw new RpcError(grpc.status.UNAUTHENTICATED, `${method}: missing or unknown auth token`);
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );

  return {
    url: `http://127.0.0.1:${state.port}`,
    port: state.port,
    calls,
    async close() {
      await state.sandboxes.terminateAll();
      for (const close of [...state.closers]) await close().catch(() => undefined);
      await Promise.all([...state.building].map((builder) => builder.terminate().catch(() => undefined)));
      for (const image of state.images.values()) if (image.snapshot) await provider.deleteSnapshot(image.snapshot).catch(() => undefined);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (options.stateDir === undefined) await rm(stateDir, { recursive: true, force: true });
      await internet?.close();
    },
  };
}
