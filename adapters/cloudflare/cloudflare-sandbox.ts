import {
  startExecEntrypoint,
  drainEntrypointOutput,
  PumpedOutput,
  ProcessOutcome,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  defineFiles,
  killMarkedTreeArgv,
  parseExecCall,
  parseRunCall,
  providerCall,
  raceWithSignal,
  collect,
  concatBytes,
  readStartMarker,
  runViaExec,
  wrapArgv,
  type Command,
  type ExecOptions,
  type ExecResult,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type SandboxError,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxStatus,
  type SandboxTags,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import type { BridgeClient } from './cloudflare-client.js';
import { mapCloudflareError } from './cloudflare-errors.js';
import { CloudflareFiles } from './cloudflare-files.js';
import {
  cloudflareCapabilitiesFor,
  cloudflareMarkerPath,
  cloudflareMaxWriteBytes,
  cloudflareStagingDirectory,
  cloudflareWorkspace,
  parseCloudflareMarker,
  planCloudflareTunnel,
  type CloudflareBridgeVersion,
  type CloudflareMarker,
} from './cloudflare-options.js';
import { CloudflareSandboxProcess, pumpBridgeRun, runOnBridge, startBridgeRun } from './cloudflare-process.js';

const provider = 'cloudflare';

/** How long the bridge's own exec timeout waits behind the kit's, in milliseconds: the kit kills the tree first. */
const backstopGraceMs = 10_000;
/** How often `wait()` checks that the sandbox still has its state. */
const waitPollMs = 5_000;

export interface CloudflareSandboxInit {
  client: BridgeClient;
  version: CloudflareBridgeVersion;
  sandboxId: string;
  name: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** What the marker holds: declared ports, default cwd, env of every exec. */
  marker: CloudflareMarker;
}

/** A Cloudflare sandbox (through the bridge Worker) behind the neutral contract. */
export interface CloudflareSandbox extends Sandbox {
  /** The bridge version this sandbox is driven with. */
  readonly bridgeVersion: CloudflareBridgeVersion;
  /**
   * A tar of `/workspace` (the bridge's `persist`), streamed: what the bridge can save of a
   * sandbox. Only `/workspace`: the rest of the filesystem and every process are not in it.
   * `excludes` are paths relative to `/workspace`; the adapter's staging directory is always left out.
   */
  persistWorkspace(options?: SignalOptions & { excludes?: readonly string[] }): Promise<ReadableStream<Uint8Array>>;
  /**
   * Extracts a tar made by `persistWorkspace` over `/workspace` (the bridge's `hydrate`): files
   * are added or replaced, nothing is removed first. At most 32 MiB (the bridge's limit; larger
   * is `SandboxInvalidArgumentError`, argument `archive`); a bad tar is `SandboxInvalidArgumentError` too.
   */
  hydrateWorkspace(archive: Uint8Array | ReadableStream<Uint8Array>, options?: SignalOptions): Promise<void>;
}

export class CloudflareSandboxImpl implements CloudflareSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly bridgeVersion: CloudflareBridgeVersion;
  readonly #init: CloudflareSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  readonly #tunnels = new Map<number, Promise<Tunnel>>();
  /** Aborts every request still streaming when the sandbox ends. */
  readonly #streams = new AbortController();

  constructor(init: CloudflareSandboxInit) {
    this.#init = init;
    this.id = init.sandboxId;
    this.name = init.name;
    this.warnings = init.warnings;
    this.bridgeVersion = init.version;
    this.#lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: this.id,
      events: init.events,
      teardown: async (status) => {
        this.#streams.abort(this.#lifecycle.notFound(`it ended (${status.reason})`));
        if (status.reason === 'crashed') return;
        try {
          await init.client.destroy(this.id);
        } catch (error) {
          throw this.#map(error, 'terminate');
        }
      },
    });
    const native = new CloudflareFiles({
      client: init.client,
      sandboxId: this.id,
      run: (argv, options) => this.run(argv, options),
      ended: this.#streams.signal,
    });
    this.files = defineFiles({ provider, native, fallback: this, lifecycle: this.#lifecycle });
  }

  get #capabilities() {
    return cloudflareCapabilitiesFor(this.#init.version);
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options);
  }

  async #exec(command: unknown, options: ExecOptions): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, this.#capabilities);
    this.#lifecycle.assertRunning();
    this.#lifecycle.touch();
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider,
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.#lifecycle,
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: async (signal) => {
        // A killed command's last output must not wait for a reader: its exit comes after it.
        if (signal === 'SIGKILL') for (const output of outputs) output.release();
        await this.#killTree(outcome.execId, signal);
      },
    });
    const closedPipe = () => void outcome.kill('SIGPIPE').catch(() => undefined);
    const outputs = [new PumpedOutput({ onKeepsWriting: closedPipe }), new PumpedOutput({ onKeepsWriting: closedPipe })] as const;
    const cwd = call.options.cwd ?? this.#init.marker.workdir;
    const argv = wrapArgv(outcome.execId, call.argv, { cwd, stdinNull: true });
    const env = { ...this.#init.marker.env, ...call.options.env };
    const timeoutMs = call.options.timeoutMs;
    const process = await outcome.startup(this.#start(outcome, outputs, argv, call.argv, env, timeoutMs));
    outcome.started();
    return process;
  }

  async #start(
    outcome: ProcessOutcome,
    [stdout, stderr]: readonly [PumpedOutput, PumpedOutput],
    argv: string[],
    userArgv: string[],
    env: Record<string, string>,
    timeoutMs: number | undefined,
  ): Promise<SandboxProcess> {
    const run = await startBridgeRun(this.#init.client, this.#init.version, this.id, argv, {
      env,
      backstopMs: timeoutMs === undefined ? undefined : timeoutMs + backstopGraceMs,
      signal: this.#streams.signal,
    }).catch((error: unknown) => Promise.reject(this.#map(error, 'exec')));
    void pumpBridgeRun(run.events, { stdout, stderr }, outcome, (error) => this.#map(error, 'exec'));
    const { report, stdout: rest } = await readStartMarker(stdout.stream);
    if (report !== 'ok') {
      void rest.cancel().catch(() => undefined);
      void stderr.stream.cancel().catch(() => undefined);
      await outcome.wait().catch(() => undefined);
      throw this.#startError(report, userArgv, outcome);
    }
    return new CloudflareSandboxProcess({ stdout: rest, stderr: stderr.stream, outcome });
  }

  #startError(report: string, argv: string[], outcome: ProcessOutcome): Error {
    if (report === 'cwd')
      return new SandboxInvalidArgumentError({
        message: `The working directory does not exist in sandbox ${this.id}`,
        argument: 'cwd',
        provider,
      });
    if (report === 'command')
      return new SandboxInvalidArgumentError({
        message: `Command not found in sandbox ${this.id}: ${argv[0]}`,
        argument: 'command',
        provider,
      });
    const failed = outcome.failed;
    if (failed !== undefined) return failed as Error;
    return new SandboxProviderError({
      message: `The command did not start in sandbox ${this.id} (does the image have /bin/sh?)`,
      provider,
    });
  }

  /** The kit's marker killer, as a second command: every signal, to the command's whole tree. */
  async #killTree(execId: string, signal: string): Promise<void> {
    try {
      await runOnBridge(this.#init.client, this.#init.version, this.id, killMarkedTreeArgv(execId, signal), this.#streams.signal);
    } catch (error) {
      const mapped = this.#map(error, 'kill');
      // A sandbox that is gone has no command left to kill.
      if (!SandboxNotFoundError.isInstance(mapped) && this.#lifecycle.isRunning()) throw mapped;
    }
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, this.#capabilities);
    if (call.options.stdin !== undefined)
      throw new SandboxCapabilityUnsupportedError({
        message: 'The Cloudflare bridge carries no stdin: run({ stdin }) cannot feed the command; pass the input as a file or an argument',
        capability: 'exec.stdin',
        provider,
      });
    return runViaExec((c: Command, o: ExecOptions) => this.#exec(c, o), call.command, call.options, provider);
  }

  /**
   * The bridge's quick tunnel of each declared port (`POST /tunnel/{port}`, idempotent per
   * port): https URLs. Opened on the first call and reused; a container restart ends them.
   */
  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.#lifecycle.assertRunning();
    if (!this.#capabilities.tunnels)
      throw new SandboxCapabilityUnsupportedError({ message: 'No tunnels on this bridge', capability: 'tunnels', provider });
    const entries = await raceWithSignal(
      Promise.all(this.#init.marker.ports.map(async (port) => [port, await this.#tunnel(port)] as const)),
      { signal: options.signal, operation: 'tunnels', provider },
    );
    return Object.fromEntries(entries);
  }

  #tunnel(port: number): Promise<Tunnel> {
    let opening = this.#tunnels.get(port);
    if (!opening) {
      opening = this.#call('tunnels', async () => planCloudflareTunnel(port, await this.#init.client.tunnel(this.id, port)), true);
      opening.catch(() => this.#tunnels.delete(port));
      this.#tunnels.set(port, opening);
    }
    return opening;
  }

  async persistWorkspace(options: SignalOptions & { excludes?: readonly string[] } = {}): Promise<ReadableStream<Uint8Array>> {
    const excludes = [...(options.excludes ?? [])];
    for (const exclude of excludes)
      if (exclude === '' || exclude.startsWith('/') || exclude.split('/').includes('..') || exclude.includes(','))
        throw new SandboxInvalidArgumentError({
          message: `excludes: ${JSON.stringify(exclude)} is not a path relative to /workspace (no '..', no ',')`,
          argument: 'excludes',
          provider,
        });
    excludes.push(cloudflareStagingDirectory.slice(cloudflareWorkspace.length + 1));
    this.#lifecycle.touch();
    return this.#call('persistWorkspace', () => this.#init.client.persist(this.id, excludes, options.signal), false, options.signal);
  }

  async hydrateWorkspace(archive: Uint8Array | ReadableStream<Uint8Array>, options: SignalOptions = {}): Promise<void> {
    if (!(archive instanceof Uint8Array) && !(archive instanceof ReadableStream))
      throw new SandboxInvalidArgumentError({
        message: 'archive is a Uint8Array or a ReadableStream of a tar',
        argument: 'archive',
        provider,
      });
    // A stream is read up to one byte past the limit: a larger one is refused without holding it all.
    const read = archive instanceof Uint8Array ? undefined : await collect(archive, cloudflareMaxWriteBytes + 1);
    const bytes = archive instanceof Uint8Array ? archive : concatBytes(read!.chunks, read!.total);
    if (bytes.byteLength === 0 || bytes.byteLength > cloudflareMaxWriteBytes || read?.truncated)
      throw new SandboxInvalidArgumentError({
        message: `archive is 1 byte to 32 MiB on the bridge (got ${read?.truncated ? 'more than that' : `${bytes.byteLength} bytes`})`,
        argument: 'archive',
        provider,
      });
    this.#lifecycle.touch();
    await this.#call('hydrateWorkspace', () => this.#init.client.hydrate(this.id, bytes, options.signal), false, options.signal);
  }

  async setTags(_tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    throw noTags();
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    throw noTags();
  }

  /**
   * The status; a running sandbox is checked on the bridge (its marker): one whose container
   * was replaced since (state lost) ends here as `crashed`.
   */
  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.status;
    await this.#observe(options.signal);
    return this.#lifecycle.status;
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    return this.#lifecycle.waitObserving(options, (signal) => this.#observe(signal), {
      intervalMs: waitPollMs,
      askNow: () => this.#lifecycle.running === 0,
    });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning())
      return this.#lifecycle.ended ? undefined : this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
    await raceWithSignal(this.#lifecycle.end({ state: 'terminated', reason: 'terminated' }), {
      signal: options.signal,
      operation: 'terminate',
      provider,
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /**
   * Starts the create `command` as a held command: its exit ends the sandbox
   * (`entrypoint-exited`); its output is read and dropped (the bridge offers no entrypoint stdio).
   */
  async startEntrypoint(argv: string[], signal: AbortSignal | undefined): Promise<void> {
    const process = await startExecEntrypoint((starting) => this.#exec(argv, { signal: starting }), { signal, lifecycle: this.#lifecycle });
    drainEntrypointOutput(process);
  }

  /** Checks the marker; a sandbox whose container lost it ends as `crashed` (and the fresh container the check started is stopped). */
  async #observe(signal?: AbortSignal): Promise<void> {
    const marker = await readMarker(this.#init.client, this.#init.version, this.id, signal).catch((error: unknown) => {
      throw this.#map(error, 'poll');
    });
    if (marker !== undefined || !this.#lifecycle.isRunning()) return;
    await this.#lifecycle.end({ state: 'terminated', reason: 'crashed' }).catch(() => undefined);
    await this.#init.client.destroy(this.id).catch(() => undefined);
  }

  #call<T>(operation: string, body: () => Promise<T>, idempotent: boolean, signal?: AbortSignal): Promise<T> {
    return providerCall(
      { provider, events: this.#init.events, lifecycle: this.#lifecycle, mapError: (error, op) => this.#map(error, op) },
      operation,
      body,
      {
        idempotent,
        signal,
      },
    );
  }

  #map(error: unknown, operation: string): SandboxError {
    if (!this.#lifecycle.isRunning() && this.#lifecycle.ended) return this.#lifecycle.notFound();
    return mapCloudflareError(error, { operation, sandboxId: this.id });
  }
}

function noTags(): SandboxCapabilityUnsupportedError {
  return new SandboxCapabilityUnsupportedError({
    message: 'The cloudflare provider keeps no tags (the bridge has no labels and no list)',
    capability: 'tags',
    provider,
  });
}

/** The marker's text as written at create. */
export function markerText(marker: CloudflareMarker): string {
  return JSON.stringify(marker);
}

/**
 * Writes the marker (and makes the workdir) in a sandbox: the first command of a create, which
 * also starts its container. Throws `SandboxProviderError` when it fails.
 */
export async function writeMarker(
  client: BridgeClient,
  version: CloudflareBridgeVersion,
  marker: CloudflareMarker,
  signal?: AbortSignal,
): Promise<void> {
  const script = 'printf %s "$1" > "$2" || exit 1; if [ -n "$3" ]; then mkdir -p -- "$3" || exit 2; fi';
  const result = await runOnBridge(
    client,
    version,
    marker.sandboxId,
    ['/bin/sh', '-c', script, 'sandport-marker', markerText(marker), cloudflareMarkerPath, marker.workdir ?? ''],
    signal,
  );
  if (result.exitCode !== 0)
    throw new SandboxProviderError({
      message: `Setting up sandbox ${marker.sandboxId} failed (exit ${result.exitCode}): ${Buffer.from(result.stderr).toString().slice(0, 500)}`,
      provider,
    });
}

/** Reads the marker of a sandbox: `undefined` when its container has lost it (see `cloudflareMarkerPath`). */
export async function readMarker(
  client: BridgeClient,
  version: CloudflareBridgeVersion,
  sandboxId: string,
  signal?: AbortSignal,
): Promise<CloudflareMarker | undefined> {
  const result = await runOnBridge(
    client,
    version,
    sandboxId,
    ['/bin/sh', '-c', 'cat -- "$1" 2>/dev/null; exit 0', 'sandport-marker', cloudflareMarkerPath],
    signal,
  );
  return parseCloudflareMarker(Buffer.from(result.stdout).toString('utf8'), sandboxId);
}
