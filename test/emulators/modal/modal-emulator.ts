/**
 * A local Modal emulator: a plain HTTP/2 gRPC server on 127.0.0.1 that the real `modal` SDK
 * reaches through MODAL_SERVER_URL. It answers the control plane (`modal.client.ModalClient`)
 * and the task command router (`modal.task_command_router.TaskCommandRouter`) on the same port,
 * and runs every sandbox in the local bubblewrap provider.
 *
 * Scope: apps, environments, images (a registry tag is the local host image; RUN layers and
 * filesystem snapshots are local snapshots), ephemeral and named secrets, named volumes (host
 * directories), sandbox create / lookup / list / tags / tunnels / wait / terminate, exec with
 * streamed stdio and stdin, the SDK's filesystem tool, and filesystem snapshots. Any other RPC
 * is UNIMPLEMENTED, so a gap shows up as a failing call, never a hang.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  createLocalSandboxProvider,
  type LocalSandbox,
  type LocalSandboxProvider,
} from '../../../adapters/local/index.js';
import { SandboxError, type CreateSandboxOptions, type SandboxSnapshotRef } from '../../../src/kit/index.js';
import { ExecRecord } from './modal-exec.js';
import { fsToolsPath, runFsTool } from './modal-fs-tools.js';
import { genericStatus, rpcs, type RpcName, type RpcSpec } from './modal-wire.js';

export interface ModalEmulatorOptions {
  /** Where sandboxes run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** Credentials AuthTokenGet accepts. @default any non-empty token id and secret */
  credentials?: { tokenId: string; tokenSecret: string };
  /** Named secrets that `secrets.fromName` finds. */
  secrets?: Record<string, Record<string, string>>;
  /** Host directory for named volumes. @default a fresh directory under the OS temp dir */
  stateDir?: string;
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

type Json = Record<string, any>;
type Tunnel = { host: string; port: number; unencryptedHost: string; unencryptedPort: number; containerPort: number };

interface EmulatedSandbox {
  id: string;
  taskId: string;
  appId: string;
  name: string | undefined;
  tags: Record<string, string>;
  createdAt: number;
  local: LocalSandbox;
  tunnels: Tunnel[];
  result: Json | undefined;
  ended: Promise<Json>;
  execs: Map<string, ExecRecord>;
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const maxTimeoutSecs = 24 * 60 * 60;

export async function startModalEmulator(options: ModalEmulatorOptions = {}): Promise<ModalEmulator> {
  const provider = options.provider ?? createLocalSandboxProvider();
  const stateDir = options.stateDir ?? join(tmpdir(), `sandport-modal-emulator-${process.pid}-${randomBytes(4).toString('hex')}`);
  const ownsStateDir = options.stateDir === undefined;
  const calls = new Map<string, number>();
  const authTokens = new Set<string>();
  const routerTokens = new Set<string>();
  const apps = new Map<string, string>();
  const images = new Map<string, { snapshot?: SandboxSnapshotRef }>([['im-host', {}]]);
  const imageKeys = new Map<string, string>();
  const secrets = new Map<string, Record<string, string>>();
  const namedSecrets = new Map<string, string>();
  const volumes = new Map<string, { id: string; dir: string }>();
  const volumeDirs = new Map<string, string>();
  const sandboxes = new Map<string, EmulatedSandbox>();
  const byTask = new Map<string, EmulatedSandbox>();
  const building = new Set<LocalSandbox>();
  let lastCreatedAt = 0;
  let port = 0;

  for (const [name, values] of Object.entries(options.secrets ?? {})) {
    const id = `st-${token(11)}`;
    secrets.set(id, values);
    namedSecrets.set(name, id);
  }

  function sandbox(id: string): EmulatedSandbox {
    const found = sandboxes.get(id);
    if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox ${id} not found`);
    return found;
  }

  function runningTask(taskId: string): EmulatedSandbox {
    const found = byTask.get(taskId);
    if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Task ${taskId} not found`);
    if (found.result) throw new RpcError(grpc.status.NOT_FOUND, `Task ${taskId} has finished: the sandbox is no longer running`);
    return found;
  }

  function exec(request: Json): ExecRecord {
    const record = runningTask(request.taskId).execs.get(request.execId);
    if (!record) throw new RpcError(grpc.status.NOT_FOUND, `Exec ${request.execId} not found`);
    return record;
  }

  function jwt(subject: string): string {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: subject, exp: Math.floor(Date.now() / 1000) + 24 * 3600 })}.${token(16)}`;
  }

  function routerAccess(found: EmulatedSandbox): { jwt: string; url: string } {
    const value = jwt(found.taskId);
    routerTokens.add(value);
    // The SDK insists on https; with a loopback server URL it dials the router in plaintext.
    return { jwt: value, url: `https://127.0.0.1:${port}` };
  }

  function env(sources: Json[] = [], secretIds: string[] = [], extra: Record<string, string> = {}): Record<string, string> {
    const merged: Record<string, string> = {};
    for (const id of secretIds) Object.assign(merged, secretValues(id));
    for (const source of sources) {
      if (source.secretId) Object.assign(merged, secretValues(source.secretId));
      Object.assign(merged, source.env?.contents ?? {});
    }
    return Object.assign(merged, extra);
  }

  function secretValues(id: string): Record<string, string> {
    const values = secrets.get(id);
    if (!values) throw new RpcError(grpc.status.NOT_FOUND, `Secret ${id} not found`);
    return values;
  }

  function status(found: EmulatedSandbox): Json | undefined {
    return found.result;
  }

  async function buildImage(request: Json): Promise<string> {
    const commands: string[] = [...(request.image?.dockerfileCommands ?? [])];
    const from = commands.shift() ?? '';
    let base: string;
    if (from === 'FROM base') {
      base = request.image.baseImages?.[0]?.imageId ?? '';
      if (!images.has(base)) throw new RpcError(grpc.status.NOT_FOUND, `Base image ${base} not found`);
    } else if (/^FROM \S+$/.test(from)) {
      base = 'im-host'; // every registry tag is the local host image
    } else {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator cannot build "${from}"`);
    }
    const steps = commands.map((line) => {
      const match = /^RUN\s+([\s\S]+)$/.exec(line.trim());
      if (!match) throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator only builds RUN steps, not "${line}"`);
      return match[1]!;
    });
    if (steps.length === 0) return base;
    const key = JSON.stringify([base, steps, request.image?.secretIds ?? []]);
    const known = imageKeys.get(key);
    if (known && !request.forceBuild) return known;
    const builder = await provider.create({ ...imageOption(base), env: env([], request.image?.secretIds ?? []), network: 'allow', timeoutMs: 30 * 60 * 1000 });
    building.add(builder);
    try {
      for (const step of steps) {
        const result = await builder.run(['/bin/sh', '-c', step]);
        if (result.exitCode !== 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `RUN ${step} exited ${result.exitCode}: ${result.stderr.slice(-2000)}`);
      }
      const snapshot = await builder.snapshot!();
      const id = `im-${token(22)}`;
      images.set(id, { snapshot });
      imageKeys.set(key, id);
      return id;
    } finally {
      building.delete(builder);
      await builder.terminate();
    }
  }

  function imageOption(imageId: string): Pick<CreateSandboxOptions, 'image'> {
    const image = images.get(imageId);
    if (!image) throw new RpcError(grpc.status.NOT_FOUND, `Image ${imageId} not found`);
    return image.snapshot ? { image: image.snapshot } : {};
  }

  async function createSandbox(request: Json): Promise<Json> {
    const definition: Json = request.definition ?? {};
    const appId: string = request.appId;
    if (![...apps.values()].includes(appId)) throw new RpcError(grpc.status.NOT_FOUND, `App ${appId} not found`);
    const name: string | undefined = definition.name || undefined;
    if (name && [...sandboxes.values()].some((other) => other.appId === appId && other.name === name && !other.result)) {
      throw new RpcError(grpc.status.ALREADY_EXISTS, `A running sandbox named "${name}" already exists in the app`);
    }
    const timeoutSecs = definition.timeoutSecs || 300;
    if (timeoutSecs > maxTimeoutSecs) throw new RpcError(grpc.status.INVALID_ARGUMENT, `timeout must be at most ${maxTimeoutSecs} seconds`);
    if (definition.resources?.gpuConfig?.count) throw new RpcError(grpc.status.FAILED_PRECONDITION, 'The Modal emulator has no GPUs');
    const access = definition.networkAccess?.networkAccessType ?? 0;
    if (access === 3) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, 'The Modal emulator cannot enforce CIDR or domain allowlists (the local sandbox only blocks or allows)');
    }
    const volumesOption: NonNullable<CreateSandboxOptions['volumes']> = {};
    for (const mount of definition.volumeMounts ?? []) {
      const dir = volumeDirs.get(mount.volumeId);
      if (!dir) throw new RpcError(grpc.status.NOT_FOUND, `Volume ${mount.volumeId} not found`);
      volumesOption[mount.mountPath] = { source: mount.subPath ? join(dir, mount.subPath) : dir, readOnly: Boolean(mount.readOnly) };
    }
    const resources = definition.resources ?? {};
    const local = await provider
      .create({
        ...imageOption(definition.imageId || 'im-host'),
        command: definition.entrypointArgs?.length ? definition.entrypointArgs : undefined,
        env: env(request.secretSources, definition.secretIds, definition.environmentVariables?.contents),
        workdir: definition.workdir || undefined,
        // Modal's cpu and memory are reservations; only their limits constrain the sandbox.
        cpu: resources.milliCpuMax ? resources.milliCpuMax / 1000 : undefined,
        memoryMiB: resources.memoryMbMax || undefined,
        timeoutMs: timeoutSecs * 1000,
        idleTimeoutMs: definition.idleTimeoutSecs ? definition.idleTimeoutSecs * 1000 : undefined,
        network: access === 2 || definition.blockNetwork ? 'block' : 'allow',
        ports: (definition.openPorts?.ports ?? []).map((spec: Json) => spec.port),
        volumes: volumesOption,
      })
      .catch((error: unknown) => {
        throw asRpcError(error);
      });
    const localTunnels = await local.tunnels();
    const id = `sb-emu-${token(16)}`;
    const taskId = `ta-${token(22)}`;
    lastCreatedAt = Math.max(Date.now() / 1000, lastCreatedAt + 0.001);
    const found: EmulatedSandbox = {
      id,
      taskId,
      appId,
      name,
      tags: Object.fromEntries((request.tags ?? []).map((tag: Json) => [tag.tagName, tag.tagValue])),
      createdAt: lastCreatedAt,
      local,
      tunnels: Object.values(localTunnels).map((tunnel) => ({
        host: tunnel.host,
        port: tunnel.hostPort,
        // Local tunnels are plain TCP; both endpoints are the same loopback port.
        unencryptedHost: tunnel.host,
        unencryptedPort: tunnel.hostPort,
        containerPort: tunnel.port,
      })),
      result: undefined,
      ended: local.wait().then((ended): Json => {
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
      }),
      execs: new Map(),
    };
    void found.ended.then((result) => {
      found.result = result;
      found.execs.clear();
    });
    sandboxes.set(id, found);
    byTask.set(taskId, found);
    return { sandboxId: id, taskId, tunnels: found.tunnels, commandRouterAccess: routerAccess(found), metadata: { appId } };
  }

  async function waitFor(found: EmulatedSandbox, timeoutSecs: number): Promise<Json | undefined> {
    if (found.result || timeoutSecs <= 0) return found.result;
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([found.ended, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.min(timeoutSecs, 60) * 1000)))]);
    clearTimeout(timer);
    return result;
  }

  const handlers: { [Name in RpcName]: (request: Json, call: grpc.ServerUnaryCall<Json, Json> | grpc.ServerWritableStream<Json, Json> | grpc.ServerReadableStream<Json, Json>) => Promise<Json> | AsyncIterable<Json> } = {
    async authTokenGet(_request, call) {
      const tokenId = String(call.metadata.get('x-modal-token-id')[0] ?? '');
      const tokenSecret = String(call.metadata.get('x-modal-token-secret')[0] ?? '');
      const expected = options.credentials;
      if (!tokenId || !tokenSecret || (expected && (expected.tokenId !== tokenId || expected.tokenSecret !== tokenSecret))) {
        throw new RpcError(grpc.status.UNAUTHENTICATED, 'Invalid token id or secret');
      }
      const value = jwt(tokenId);
      authTokens.add(value);
      return { token: value };
    },
    async appGetOrCreate(request) {
      const key = `${request.environmentName}/${request.appName}`;
      let id = apps.get(key);
      if (!id) {
        if (request.objectCreationType !== 1) throw new RpcError(grpc.status.NOT_FOUND, `App '${request.appName}' not found`);
        id = `ap-${token(22)}`;
        apps.set(key, id);
      }
      return { appId: id };
    },
    async environmentGetOrCreate(request) {
      return { environmentId: 'en-emulator', metadata: { name: request.deploymentName || 'main', settings: { imageBuilderVersion: '2025.06' } } };
    },
    async imageGetOrCreate(request) {
      return { imageId: await buildImage(request), result: { status: genericStatus.success } };
    },
    async *imageJoinStreaming(request) {
      if (!images.has(request.imageId)) throw new RpcError(grpc.status.NOT_FOUND, `Image ${request.imageId} not found`);
      yield { result: { status: genericStatus.success }, entryId: '1', eof: true };
    },
    async imageFromId(request) {
      if (!images.has(request.imageId)) throw new RpcError(grpc.status.NOT_FOUND, `Could not find image with ID ${request.imageId}`);
      return { imageId: request.imageId };
    },
    async secretGetOrCreate(request) {
      if (request.objectCreationType === 5) {
        const id = `st-${token(11)}`;
        secrets.set(id, { ...request.envDict });
        return { secretId: id };
      }
      const id = namedSecrets.get(request.deploymentName);
      if (!id) throw new RpcError(grpc.status.NOT_FOUND, `Secret '${request.deploymentName}' not found`);
      const missing = (request.requiredKeys as string[]).filter((key) => !(key in secrets.get(id)!));
      if (missing.length > 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `Secret is missing key(s): ${missing.join(', ')}`);
      return { secretId: id };
    },
    async volumeGetOrCreate(request) {
      const ephemeral = request.objectCreationType === 5;
      const key = ephemeral ? `ephemeral-${token(8)}` : `${request.environmentName}/${request.deploymentName}`;
      let volume = volumes.get(key);
      if (!volume) {
        if (!ephemeral && request.objectCreationType !== 1) throw new RpcError(grpc.status.NOT_FOUND, `Volume '${request.deploymentName}' not found`);
        const id = `vo-${token(22)}`;
        const dir = join(stateDir, 'volumes', id);
        await mkdir(dir, { recursive: true });
        // The sandbox's root maps to an unprivileged host uid; the volume must be writable to it.
        await chmod(dir, 0o777);
        volume = { id, dir };
        volumes.set(key, volume);
        volumeDirs.set(id, dir);
      }
      return { volumeId: volume.id };
    },
    async sandboxCreate() {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, 'The Modal emulator has no GPUs (GPU sandboxes use the V1 create, which it does not run)');
    },
    sandboxCreateV2: createSandbox,
    async sandboxGetTaskIdV2(request) {
      const found = sandbox(request.sandboxId);
      return found.result ? { taskResult: found.result } : { taskId: found.taskId };
    },
    async sandboxGetCommandRouterAccess(request) {
      const found = sandbox(request.sandboxId);
      if (found.result) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox ${found.id} has finished`);
      return routerAccess(found);
    },
    async sandboxWaitV2(request) {
      const found = sandbox(request.sandboxId);
      const result = await waitFor(found, request.timeout);
      return { result, metadata: { appId: found.appId, result } };
    },
    async sandboxTerminateV2(request) {
      const found = sandbox(request.sandboxId);
      const existing = status(found);
      if (!existing) await found.local.terminate();
      await found.ended;
      return { existingResult: existing };
    },
    async sandboxTagsSetV2(request) {
      const found = sandbox(request.sandboxId);
      found.tags = Object.fromEntries((request.tags ?? []).map((tag: Json) => [tag.tagName, tag.tagValue]));
      return {};
    },
    async sandboxTagsGetV2(request) {
      const found = sandbox(request.sandboxId);
      return { tags: Object.entries(found.tags).map(([tagName, tagValue]) => ({ tagName, tagValue })) };
    },
    async sandboxGetTunnelsV2(request) {
      const found = sandbox(request.sandboxId);
      return { result: found.result, tunnels: found.tunnels };
    },
    async sandboxGetFromNameV2(request) {
      return lookupByName(request);
    },
    async sandboxGetFromName(request) {
      return lookupByName(request);
    },
    async sandboxListV2(request) {
      const wanted: Json[] = request.tags ?? [];
      const matches = [...sandboxes.values()]
        .filter((found) => (request.includeFinished || !found.result) && (!request.appId || found.appId === request.appId))
        .filter((found) => !request.beforeTimestamp || found.createdAt < request.beforeTimestamp)
        .filter((found) => wanted.every((tag) => found.tags[tag.tagName] === tag.tagValue))
        .sort((a, b) => b.createdAt - a.createdAt)
        .slice(0, 100);
      return {
        sandboxes: matches.map((found) => ({
          id: found.id,
          createdAt: found.createdAt,
          appId: found.appId,
          name: found.name ?? '',
          tags: Object.entries(found.tags).map(([tagName, tagValue]) => ({ tagName, tagValue })),
        })),
      };
    },

    async taskExecStart(request) {
      const found = runningTask(request.taskId);
      if (found.execs.has(request.execId)) return {}; // a retried start
      const argv: string[] = request.commandArgs ?? [];
      if (argv.length === 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'An exec needs a command');
      const record =
        argv[0] === fsToolsPath
          ? await runFsTool(found.local, argv[1] ?? '').catch((error: unknown) => {
              throw asRpcError(error);
            })
          : await startCommand(found, request, argv);
      found.execs.set(request.execId, record);
      return {};
    },
    async *taskExecStdioRead(request) {
      const record = exec(request);
      const pipe = request.fileDescriptor === 1 ? record.stderr : record.stdout;
      let offset = request.offset;
      for (;;) {
        const chunk = await pipe.take(offset);
        if (!chunk) return;
        offset += chunk.byteLength;
        yield { data: chunk };
      }
    },
    async taskExecStdinWrite(request) {
      await exec(request).writeStdin(request.offset, request.data, request.eof);
      return {};
    },
    async taskExecStdinWriteStream(_request, call) {
      let record: ExecRecord | undefined;
      let offset = 0;
      for await (const message of call as grpc.ServerReadableStream<Json, Json>) {
        if (message.start) {
          record = exec(message.start);
          offset = message.start.offset;
        } else if (message.data && record) {
          await record.writeStdin(offset, message.data, false);
          offset += message.data.byteLength;
        } else if (message.end && record) {
          await record.writeStdin(offset, new Uint8Array(), true);
        } else if (!record) {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, 'The stdin stream must begin with a start message');
        }
      }
      return {};
    },
    async taskExecStdinStatus(request) {
      return exec(request).stdinStatus;
    },
    async taskExecPoll(request) {
      return exitResponse(exec(request).exit);
    },
    async taskExecWait(request) {
      return exitResponse(await exec(request).exited);
    },
    async taskSnapshotFilesystem(request) {
      const found = runningTask(request.taskId);
      const snapshot = await found.local.snapshot!().catch((error: unknown) => {
        throw asRpcError(error);
      });
      const id = `im-${token(22)}`;
      images.set(id, { snapshot });
      return { imageId: id };
    },
  };

  function lookupByName(request: Json): Json {
    const appId = apps.get(`${request.environmentName}/${request.appName}`);
    const found = [...sandboxes.values()]
      .filter((candidate) => candidate.appId === appId && candidate.name === request.sandboxName && (request.includeTerminated || !candidate.result))
      .sort((a, b) => b.createdAt - a.createdAt)[0];
    if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox '${request.sandboxName}' not found in app '${request.appName}'`);
    return { sandboxId: found.id };
  }

  async function startCommand(found: EmulatedSandbox, request: Json, argv: string[]): Promise<ExecRecord> {
    try {
      const process = await found.local.exec(argv, { env: env(request.secretSources, request.secretIds, request.env), cwd: request.workdir || undefined });
      const record = ExecRecord.running(process, { stdout: request.stdoutConfig !== 0, stderr: request.stderrConfig !== 0 });
      if (request.timeoutSecs) {
        const timer = setTimeout(() => void process.kill(), request.timeoutSecs * 1000);
        void record.exited.then(() => clearTimeout(timer));
      }
      return record;
    } catch (error) {
      // Like a shell: a missing program or directory is a failed command, not a failed call.
      if (SandboxError.isInstance(error) && error.code === 'invalid_argument') {
        return ExecRecord.finished(new Uint8Array(), new TextEncoder().encode(`${error.message}\n`), (error as { argument?: string }).argument === 'cwd' ? 1 : 127);
      }
      throw asRpcError(error);
    }
  }

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 100 * 1024 * 1024, 'grpc.max_send_message_length': 100 * 1024 * 1024 });
  for (const [name, spec] of Object.entries(rpcs) as Array<[RpcName, RpcSpec]>) {
    const handler = handlers[name];
    const count = () => calls.set(name, (calls.get(name) ?? 0) + 1);
    const method = spec.path.slice(spec.path.lastIndexOf('/') + 1);
    const checkAuth = (metadata: grpc.Metadata) => {
      if (name === 'authTokenGet') return;
      const routed = spec.path.includes('TaskCommandRouter');
      const value = routed ? String(metadata.get('authorization')[0] ?? '').replace(/^Bearer /, '') : String(metadata.get('x-modal-auth-token')[0] ?? '');
      if (!(routed ? routerTokens : authTokens).has(value)) throw new RpcError(grpc.status.UNAUTHENTICATED, `${method}: missing or unknown auth token`);
    };
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
              if (!call.write(message)) await new Promise<void>((resolve) => {
                const done = () => { call.off('drain', done); call.off('cancelled', done); resolve(); };
                call.on('drain', done);
                call.on('cancelled', done);
              });
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
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls,
    async close() {
      await Promise.all([...sandboxes.values()].map((found) => found.local.terminate().catch(() => undefined)));
      await Promise.all([...building].map((builder) => builder.terminate().catch(() => undefined)));
      for (const image of images.values()) if (image.snapshot) await provider.deleteSnapshot(image.snapshot).catch(() => undefined);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (ownsStateDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

function exitResponse(exit: ExecRecord['exit']): Json {
  if (!exit) return {};
  if ('gone' in exit) throw new RpcError(grpc.status.NOT_FOUND, `The sandbox ended while the command ran: ${exit.gone}`);
  return exit;
}

function asRpcError(error: unknown): RpcError {
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

function token(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('');
}
