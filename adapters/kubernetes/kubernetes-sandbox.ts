import { createServer, type Server } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import {
  watchViaExec,
  withStartSignal,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxLifecycle,
  SandboxProviderError,
  defineFiles,
  entrypointStdio,
  millisecondsSchema,
  parseExecCall,
  parseOptions,
  parseRunCall,
  parseTags,
  runViaExec,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxStatus,
  type SandboxTags,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import type { KubernetesApi } from './kubernetes-api.js';
import { relayPortForward } from './kubernetes-exec-client.js';
import {
  kubernetesCapabilities,
  kubernetesEndReason,
  kubernetesKeys,
  kubernetesMaxTimeoutMs,
  planKubernetesTagUpdate,
  tagsFromKubernetesPod,
} from './kubernetes-options.js';
import { runPlain, startKubernetesExec, type KubernetesExecContext } from './kubernetes-process.js';
import { kubernetesMoveDeadlineArgv } from './kubernetes-scripts.js';

const provider = 'kubernetes';
/** How long a failed exec waits to see whether its pod ended (the failure then is that end), in ms. */
const execFailureGraceMs = 2_000;

export interface KubernetesSandboxInit {
  api: KubernetesApi;
  pod: string;
  name: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  workdir: string | undefined;
  ports: number[];
  /** What is left of the lifetime, in milliseconds (undefined: unknown). */
  lifetimeMs: number | undefined;
  idleTimeoutMs: number | undefined;
  /** The hard cap of the keeper's deadline, epoch seconds. */
  capSeconds: number;
}

/** A sandbox pod behind the neutral contract. */
export interface KubernetesSandbox extends Sandbox {
  /** The pod's namespace. */
  readonly namespace: string;
  /** The pod as last read from the API server (for what the neutral API does not cover). */
  readonly native: { readonly pod: string; readonly namespace: string; readonly api: KubernetesApi };
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
}

export class KubernetesSandboxImpl implements KubernetesSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly lifecycle: SandboxLifecycle;
  readonly #init: KubernetesSandboxInit;
  readonly #context: KubernetesExecContext;
  #tunnels: Promise<Record<number, Tunnel>> | undefined;
  readonly #servers: Server[] = [];
  #entrypoint: EntrypointStdio | undefined;
  #watching: Promise<void> | undefined;

  constructor(init: KubernetesSandboxInit) {
    this.#init = init;
    this.id = init.pod;
    this.name = init.name;
    this.warnings = init.warnings;
    this.lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: init.pod,
      events: init.events,
      idleTimeoutMs: init.idleTimeoutMs,
      teardown: async () => {
        for (const server of this.#servers) server.close();
        // The Secret and NetworkPolicy go with the pod (ownerReferences).
        await init.api.deletePod(init.pod);
      },
    });
    if (init.lifetimeMs !== undefined) this.lifecycle.armLifetime(Math.max(1, init.lifetimeMs));
    this.#context = {
      connection: init.api.connection,
      namespace: init.api.namespace,
      pod: init.pod,
      lifecycle: this.lifecycle,
      events: init.events,
      workdir: init.workdir,
      settleEnd: () => this.#settleEnd(),
    };
    // Kubernetes has no watch API for files: files.watch runs the kit's inotifywait watcher in the pod.
    this.files = {
      ...defineFiles({ provider, fallback: this, lifecycle: this.lifecycle }),
      watch: (path, options) => watchViaExec(this, path, options, { provider, lifecycle: this.lifecycle }),
    };
  }

  get namespace(): string {
    return this.#init.api.namespace;
  }

  get native(): { readonly pod: string; readonly namespace: string; readonly api: KubernetesApi } {
    return { pod: this.id, namespace: this.namespace, api: this.#init.api };
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#stdio().stdout;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#stdio().stderr;
  }

  get stdin(): WritableStream<Uint8Array> {
    return this.#stdio().stdin;
  }

  #stdio(): EntrypointStdio {
    this.#entrypoint ??= entrypointStdio(undefined, { provider, sandboxId: this.id, events: this.#init.events });
    return this.#entrypoint;
  }

  /** Starts the create `command` under the notifier; its streams become the sandbox's stdio. */
  async startEntrypoint(argv: string[], env: Record<string, string>, signal: AbortSignal | undefined): Promise<void> {
    // The create's signal covers the start only (withStartSignal): a later abort must not kill it.
    const process = await withStartSignal(signal, (starting) =>
      startKubernetesExec(this.#context, { command: argv, argv, env, entrypoint: true, signal: starting }),
    );
    this.#entrypoint = entrypointStdio(process, { provider, sandboxId: this.id, events: this.#init.events });
    // The pod ends with it (the keeper exits with its status): observe that.
    void process.wait().then(
      () => this.#observeEnd(),
      () => undefined,
    );
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options, false);
  }

  async #exec(command: unknown, options: ExecOptions, stdinNull: boolean): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, kubernetesCapabilities);
    this.lifecycle.assertRunning();
    return startKubernetesExec(this.#context, {
      command: call.command,
      argv: call.argv,
      env: call.options.env,
      cwd: call.options.cwd,
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      pty: call.options.pty,
      stdinNull,
    }).catch((error: unknown) => {
      if (SandboxNotFoundError.isInstance(error)) void this.#observeEnd();
      throw error;
    });
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, kubernetesCapabilities);
    return runViaExec((c, o) => this.#exec(c, o, call.options.stdin === undefined), call.command, call.options, provider);
  }

  /**
   * One listener on 127.0.0.1 per declared port, opened at the first call: each accepted
   * connection is its own port-forward WebSocket to the pod. The URLs live while this process
   * (and the sandbox) does.
   */
  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.lifecycle.assertRunning();
    this.#tunnels ??= this.#openTunnels();
    return this.#tunnels;
  }

  async #openTunnels(): Promise<Record<number, Tunnel>> {
    const entries = await Promise.all(
      this.#init.ports.map(async (port) => {
        const server = createServer((client) => {
          client.on('error', () => undefined);
          void relayPortForward(this.#init.api.connection, { namespace: this.namespace, pod: this.id, port }, client).catch(
            () => undefined,
          );
        });
        this.#servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve());
        });
        // The listener never keeps the process alive on its own.
        server.unref();
        const address = server.address();
        const hostPort = typeof address === 'object' && address ? address.port : 0;
        return [
          port,
          { port, url: `http://127.0.0.1:${hostPort}`, host: '127.0.0.1', hostPort, encrypted: false } satisfies Tunnel,
        ] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    options.signal?.throwIfAborted();
    this.lifecycle.assertAlive();
    const pod = await this.#pod(options.signal);
    await this.#init.api.patchPod(this.id, planKubernetesTagUpdate(pod, checked), options.signal);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    this.lifecycle.assertAlive();
    return tagsFromKubernetesPod(await this.#pod(options.signal));
  }

  /**
   * Moves the keeper's deadline in the pod (and its annotation), so the new lifetime holds after
   * this process exits. The pod's hard cap (`activeDeadlineSeconds`, which can only shrink) is
   * creation + 24 h: a lifetime past it is a `SandboxInvalidArgumentError`.
   */
  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    const checked = parseOptions(millisecondsSchema, timeoutMs, { provider, what: 'timeoutMs' });
    if (checked > kubernetesMaxTimeoutMs)
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs is at most ${kubernetesMaxTimeoutMs} (24 hours) on the kubernetes provider`,
        argument: 'timeoutMs',
        provider,
      });
    options.signal?.throwIfAborted();
    this.lifecycle.assertRunning();
    const deadline = Math.min(Math.ceil((Date.now() + checked) / 1000), this.#init.capSeconds);
    const moved = await runPlain(this.#context, kubernetesMoveDeadlineArgv(deadline, this.#init.capSeconds), options.signal);
    if (moved.exitCode !== 0) throw new SandboxProviderError({ message: `Moving the deadline failed: ${moved.stderr.trim()}`, provider });
    await this.#init.api.patchPod(this.id, { metadata: { annotations: { [kubernetesKeys.deadline]: String(deadline) } } }, options.signal);
    this.lifecycle.armLifetime(Math.max(1, deadline * 1000 - Date.now()));
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.lifecycle.isRunning()) return this.lifecycle.poll();
    const pod = await this.#init.api.findPod(this.id, options.signal);
    const ended = pod ? kubernetesEndReason(pod) : { state: 'terminated' as const, reason: 'terminated' as const };
    if (!ended) return this.lifecycle.status;
    await this.lifecycle.end(ended).catch(() => undefined);
    return this.lifecycle.status;
  }

  /** Watches the pod (not polling) until it ends, whatever ends it; or the lifecycle ends first. */
  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    if (this.lifecycle.isRunning()) void this.#observeEnd();
    return this.lifecycle.wait(options);
  }

  /**
   * After an exec failed without an exit status: watches the pod for up to `execFailureGraceMs`,
   * so that a failure caused by the pod ending (its entrypoint exited, say) is seen as that end.
   */
  async #settleEnd(): Promise<void> {
    void this.#observeEnd();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, execFailureGraceMs);
      timer.unref?.();
    });
    await Promise.race([this.lifecycle.wait().then(() => undefined), grace]);
    clearTimeout(timer);
  }

  /** One watch per sandbox, started on demand: an end it sees ends the lifecycle once. */
  #observeEnd(): Promise<void> {
    this.#watching ??= (async () => {
      let ended: SandboxEnded | undefined;
      const stop = new AbortController();
      void this.lifecycle.wait().then(() => stop.abort());
      try {
        await this.#init.api.watchPod(
          this.id,
          undefined,
          (pod) => {
            ended = pod ? kubernetesEndReason(pod) : { state: 'terminated', reason: 'terminated' };
            return ended !== undefined;
          },
          stop.signal,
        );
      } catch {
        // Aborted (the lifecycle ended first) or the watch failed: a later wait() watches again.
        this.#watching = undefined;
        return;
      }
      if (ended) await this.lifecycle.end(ended).catch(() => undefined);
    })();
    return this.#watching;
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (this.lifecycle.ended) return;
    await this.lifecycle.end({ state: 'terminated', reason: 'terminated' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  async #pod(signal?: AbortSignal): Promise<V1Pod> {
    try {
      return await this.#init.api.getPod(this.id, signal);
    } catch (error) {
      if (SandboxNotFoundError.isInstance(error)) {
        void this.lifecycle.end({ state: 'terminated', reason: 'terminated' }).catch(() => undefined);
        throw this.lifecycle.notFound('its pod is gone');
      }
      throw error;
    }
  }
}
