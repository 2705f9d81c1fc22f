/**
 * What the Modal emulator knows (apps, images, secrets, volumes, sandboxes, tokens) and the
 * lookups every handler group shares. The handler groups (modal-apps.ts, modal-images.ts,
 * modal-secrets-volumes.ts, modal-sandboxes.ts, modal-exec.ts) each read and change it.
 */
import * as grpc from '@grpc/grpc-js';
import type { LocalSandbox, LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { CreateSandboxOptions, SandboxSnapshotRef } from '../../../src/kit/index.js';
import type { ExecRecord } from '../shared/exec-record.js';
import { randomToken } from '../shared/ids.js';
import { SandboxRegistry, type RegisteredSandbox, type SandboxEnd } from '../shared/sandbox-registry.js';
import type { FsToolOptions } from './modal-fs-tools.js';
import type { LocalNetwork } from './modal-network.js';
import { RpcError, type Json } from './modal-rpc.js';
import { genericStatus } from './modal-wire.js';

export type Tunnel = { host: string; port: number; unencryptedHost: string; unencryptedPort: number; containerPort: number };

/** What the emulator keeps per sandbox beside the registry's id, name, tags and scope (the app id). */
export interface ModalSandboxData {
  taskId: string;
  tunnels: Tunnel[];
  /** Execs by exec id; emptied when the sandbox ends. */
  execs: Map<string, ExecRecord>;
  /** What the local sandbox's network is now (modal-network.ts): set at create, changed by live updates. */
  network: LocalNetwork;
}

export type EmulatedSandbox = RegisteredSandbox<LocalSandbox, ModalSandboxData>;

export interface ModalStateOptions {
  provider: LocalSandboxProvider;
  stateDir: string;
  credentials: { tokenId: string; tokenSecret: string } | undefined;
  secrets: Record<string, Record<string, string>>;
  /** The fs tool's settings (modal-fs-tools.ts). @default Modal's */
  fsTools?: FsToolOptions;
}

export class ModalState {
  readonly provider: LocalSandboxProvider;
  readonly stateDir: string;
  readonly credentials: { tokenId: string; tokenSecret: string } | undefined;
  readonly authTokens = new Set<string>();
  readonly routerTokens = new Set<string>();
  /** App ids by `environment/name`. */
  readonly apps = new Map<string, string>();
  /**
   * `im-host` is the host image; every other image is a local snapshot, or (with `directory`,
   * the host path of its tar) a directory snapshot that mounts but cannot boot (modal-mounts.ts).
   */
  readonly images = new Map<string, { snapshot?: SandboxSnapshotRef; directory?: string; rootfs?: string }>([['im-host', {}]]);
  /** Built image ids by their recipe, so that a rebuild of the same recipe is free. */
  readonly imageKeys = new Map<string, string>();
  readonly secrets = new Map<string, Record<string, string>>();
  readonly namedSecrets = new Map<string, string>();
  readonly volumes = new Map<string, { id: string; dir: string }>();
  readonly volumeDirs = new Map<string, string>();
  readonly sandboxes: SandboxRegistry<LocalSandbox, ModalSandboxData>;
  readonly byTask = new Map<string, EmulatedSandbox>();
  /** Image builders under way (terminated on close). */
  readonly building = new Set<LocalSandbox>();
  /** Run on close, after the sandboxes ended (servers and sandboxes that handler groups started). */
  readonly closers = new Set<() => Promise<void>>();
  /** The fs tool's settings (modal-fs-tools.ts), such as its read size limit. */
  readonly fsTools: FsToolOptions;
  /** The bound port, once the server listens. */
  port = 0;

  constructor(options: ModalStateOptions) {
    this.provider = options.provider;
    this.stateDir = options.stateDir;
    this.credentials = options.credentials;
    this.fsTools = options.fsTools ?? {};
    this.sandboxes = new SandboxRegistry(options.provider, { newId: () => `sb-emu-${randomToken(16)}`, scopeNoun: 'app' });
    for (const [name, values] of Object.entries(options.secrets)) {
      const id = `st-${randomToken(11)}`;
      this.secrets.set(id, values);
      this.namedSecrets.set(name, id);
    }
  }

  /** A sandbox by id, running or not. Throws NOT_FOUND. */
  sandbox(id: string): EmulatedSandbox {
    const found = this.sandboxes.get(id);
    if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox ${id} not found`);
    return found;
  }

  /** A running sandbox by task id. Throws NOT_FOUND. */
  runningTask(taskId: string): EmulatedSandbox {
    const found = this.byTask.get(taskId);
    if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Task ${taskId} not found`);
    if (found.end) throw new RpcError(grpc.status.NOT_FOUND, `Task ${taskId} has finished: the sandbox is no longer running`);
    return found;
  }

  /** The exec a router request names (`taskId`, `execId`). Throws NOT_FOUND. */
  exec(request: Json): ExecRecord {
    const record = this.runningTask(request.taskId).data.execs.get(request.execId);
    if (!record) throw new RpcError(grpc.status.NOT_FOUND, `Exec ${request.execId} not found`);
    return record;
  }

  jwt(subject: string): string {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: subject, exp: Math.floor(Date.now() / 1000) + 24 * 3600 })}.${randomToken(16)}`;
  }

  routerAccess(found: EmulatedSandbox): { jwt: string; url: string } {
    const value = this.jwt(found.data.taskId);
    this.routerTokens.add(value);
    // The SDK insists on https; with a loopback server URL it dials the router in plaintext.
    return { jwt: value, url: `https://127.0.0.1:${this.port}` };
  }

  /** The environment of a sandbox or exec: secrets by id, then secret sources, then `extra`. */
  env(sources: Json[] = [], secretIds: string[] = [], extra: Record<string, string> = {}): Record<string, string> {
    const merged: Record<string, string> = {};
    for (const id of secretIds) Object.assign(merged, this.secretValues(id));
    for (const source of sources) {
      if (source.secretId) Object.assign(merged, this.secretValues(source.secretId));
      Object.assign(merged, source.env?.contents ?? {});
    }
    return Object.assign(merged, extra);
  }

  secretValues(id: string): Record<string, string> {
    const values = this.secrets.get(id);
    if (!values) throw new RpcError(grpc.status.NOT_FOUND, `Secret ${id} not found`);
    return values;
  }

  /** The local provider's `image` option for an image id. Throws NOT_FOUND. */
  imageOption(imageId: string): Pick<CreateSandboxOptions, 'image'> {
    const image = this.images.get(imageId);
    if (!image) throw new RpcError(grpc.status.NOT_FOUND, `Image ${imageId} not found`);
    if (image.directory) {
      throw new RpcError(
        grpc.status.FAILED_PRECONDITION,
        `Image ${imageId} is a directory snapshot: the emulator mounts it (mountImage) but cannot boot a sandbox or sidecar from it`,
      );
    }
    // `rootfs`: a registry tag's local root filesystem (modal-registry-images.ts).
    return image.snapshot ? { image: image.snapshot } : image.rootfs ? { image: image.rootfs } : {};
  }
}

/** Modal's GenericResult for a sandbox that ended, or undefined while it runs. */
export function sandboxResult(found: EmulatedSandbox): Json | undefined {
  return found.end && genericResult(found.end);
}

/** Resolves to the GenericResult once the sandbox ended. */
export function sandboxEnded(found: EmulatedSandbox): Promise<Json> {
  return found.ended.then(genericResult);
}

export function genericResult(ended: SandboxEnd): Json {
  switch (ended.reason) {
    case 'terminated':
      return { status: genericStatus.terminated, exception: 'Sandbox terminated' };
    case 'lifetime-timeout':
      return { status: genericStatus.timeout, exception: 'Sandbox timed out' };
    case 'idle-timeout':
      return { status: genericStatus.idleTimeout, exception: 'Sandbox idle timeout' };
    case 'entrypoint-exited':
      return { status: ended.exitCode === 0 ? genericStatus.success : genericStatus.failure, exitcode: ended.exitCode ?? 0 };
    default:
      return { status: genericStatus.failure, exception: 'Sandbox crashed', exitcode: 1 };
  }
}
