/**
 * A small typed client for Fly's Machines REST API on `fetch`: every answer is validated with zod
 * (lenient: fields Fly adds later pass through), failures become sandport errors (fly-errors.ts),
 * idempotent calls are retried on transient failures (429 after its `Retry-After`, 5xx, dropped
 * connections), and nothing else ever is.
 */
import { z } from 'zod';
import {
  SandboxAuthenticationError,
  SandboxError,
  SandboxProviderError,
  retryIdempotent,
  type SandboxEmitter,
} from '../../src/kit/index.js';
import { FlyApiError, mapFlyError } from './fly-errors.js';
import type { FlyMachineConfig } from './fly-options.js';

const provider = 'fly';

/** Fly's public Machines API. */
export const flyDefaultApiHostname = 'https://api.machines.dev';
/** Longest `Retry-After` honoured before a retry, in milliseconds (a longer one fails the call). */
const maxRetryAfterMs = 10_000;

export const flyMachineSchema = z
  .object({
    id: z.string(),
    name: z.string().optional(),
    state: z.string(),
    region: z.string().optional(),
    instance_id: z.string().optional(),
    private_ip: z.string().optional(),
    created_at: z.string().optional(),
    updated_at: z.string().optional(),
    events: z
      .array(
        z
          .object({
            type: z.string().optional(),
            status: z.string().optional(),
            timestamp: z.number().optional(),
            request: z.unknown().optional(),
          })
          .passthrough(),
      )
      .nullish(),
    config: z
      .object({
        image: z.string().optional(),
        metadata: z.record(z.string(), z.string()).nullish(),
        env: z.record(z.string(), z.string()).nullish(),
        services: z
          .array(
            z
              .object({
                internal_port: z.number().int(),
                ports: z.array(z.object({ port: z.number().int().optional() }).passthrough()).nullish(),
              })
              .passthrough(),
          )
          .nullish(),
      })
      .passthrough()
      .nullish(),
  })
  .passthrough();
export type FlyMachine = z.infer<typeof flyMachineSchema>;

export const flyExecResponseSchema = z
  .object({
    exit_code: z.number().int().nullish(),
    exit_signal: z.number().int().nullish(),
    stdout: z.string().nullish(),
    stderr: z.string().nullish(),
  })
  .passthrough();
export type FlyExecResponse = { exitCode: number; stdout: string; stderr: string };

export const flyAppSchema = z.object({ id: z.string().optional(), name: z.string(), status: z.string().optional() }).passthrough();
export const flyListAppsSchema = z
  .object({
    total_apps: z.number().int().optional(),
    apps: z
      .array(z.object({ id: z.string().optional(), name: z.string(), machine_count: z.number().int().optional() }).passthrough())
      .nullish(),
  })
  .passthrough();
export const flyVolumeSchema = z
  .object({ id: z.string(), name: z.string(), state: z.string().optional(), attached_machine_id: z.string().nullish() })
  .passthrough();
export type FlyVolume = z.infer<typeof flyVolumeSchema>;
export const flyMetadataSchema = z.record(z.string(), z.string());

/** The init's exit code of the latest `exit` event of a machine, when it has one. */
export function flyExitCode(machine: FlyMachine): number | undefined {
  const exits = (machine.events ?? []).filter((event) => event.type === 'exit');
  const latest = exits.sort((a, b) => (b.timestamp ?? 0) - (a.timestamp ?? 0))[0];
  const code = (latest?.request as { exit_event?: { exit_code?: unknown } } | undefined)?.exit_event?.exit_code;
  return typeof code === 'number' ? code : undefined;
}

/** The states of a machine that has not ended (a `suspended` one is paused). */
export const flyLiveStates: ReadonlySet<string> = new Set([
  'created',
  'starting',
  'started',
  'suspending',
  'suspended',
  'replacing',
  'updating',
]);

export interface FlyClientOptions {
  /** Base URL of the Machines API (an emulator: `http://127.0.0.1:port`). @default FLY_API_HOSTNAME, else `https://api.machines.dev` */
  apiHostname?: string | undefined;
  /** API token (`fly tokens create`). @default FLY_API_TOKEN */
  token?: string | undefined;
  /** Retry and warning events go here. */
  events?: SandboxEmitter | undefined;
  /** Retries of an idempotent call. @default 3 */
  retries?: number | undefined;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch | undefined;
}

export interface FlyRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT';
  path: string;
  query?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  /** For messages and retry events. */
  operation: string;
  /** Safe to repeat: retried on transient failures. */
  idempotent: boolean;
  signal?: AbortSignal | undefined;
  sandboxId?: string | undefined;
  argument?: string | undefined;
}

export class FlyClient {
  readonly apiHostname: string;
  readonly #token: string | undefined;
  readonly #events: SandboxEmitter | undefined;
  readonly #retries: number;
  readonly #fetch: typeof fetch;

  /** Does no I/O; a missing token fails the first call (`SandboxAuthenticationError`). */
  constructor(options: FlyClientOptions = {}) {
    this.apiHostname = (options.apiHostname ?? process.env.FLY_API_HOSTNAME ?? flyDefaultApiHostname).replace(/\/+$/, '');
    this.#token = options.token ?? process.env.FLY_API_TOKEN;
    this.#events = options.events;
    this.#retries = options.retries ?? 3;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** One API call, validated by `schema` (`undefined` for an empty answer), mapped and retried as described above. */
  async request<T>(schema: z.ZodType<T> | undefined, request: FlyRequest): Promise<T> {
    const once = () => this.#once(schema, request);
    if (!request.idempotent) return once();
    return retryIdempotent(request.operation, once, {
      provider,
      events: this.#events,
      signal: request.signal,
      retries: this.#retries,
    });
  }

  async #once<T>(schema: z.ZodType<T> | undefined, request: FlyRequest): Promise<T> {
    const { method, path, query, body, operation, signal, sandboxId, argument } = request;
    if (!this.#token) {
      throw new SandboxAuthenticationError({
        message: 'No Fly API token: set FLY_API_TOKEN or pass token to createFlySandboxProvider',
        provider,
      });
    }
    signal?.throwIfAborted();
    const url = new URL(`${this.apiHostname}${path}`);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw mapFlyError(error, { operation, sandboxId });
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw mapFlyError(error, { operation, sandboxId });
    }
    if (!response.ok) {
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
      const failure = new FlyApiError(response.status, errorDetail(text), method, path, retryAfterMs);
      // A rate limit says when to come back: the retry waits that long first (p-retry adds its backoff).
      if (response.status === 429 && request.idempotent && retryAfterMs !== undefined && retryAfterMs <= maxRetryAfterMs)
        await sleep(retryAfterMs, signal);
      throw mapFlyError(failure, { operation, sandboxId, argument });
    }
    if (schema === undefined) return undefined as T;
    let json: unknown;
    try {
      json = text.length === 0 ? undefined : JSON.parse(text);
    } catch (error) {
      throw new SandboxProviderError({ message: `Fly answered ${operation} with something that is not JSON`, provider, cause: error });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new SandboxProviderError({
        message: `Fly's answer to ${operation} has an unexpected shape: ${parsed.error.issues
          .slice(0, 3)
          .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
          .join('; ')}`,
        provider,
        cause: parsed.error,
      });
    }
    return parsed.data;
  }

  // Apps ---------------------------------------------------------------------------------------

  /** Creates an app (on its own private network when `network` is given). Not idempotent. */
  createApp(input: { name: string; org: string; network?: string | undefined }, signal?: AbortSignal): Promise<void> {
    return this.request(undefined, {
      method: 'POST',
      path: '/v1/apps',
      body: { app_name: input.name, org_slug: input.org, ...(input.network === undefined ? {} : { network: input.network }) },
      operation: 'create',
      idempotent: false,
      signal,
    });
  }

  getApp(name: string, signal?: AbortSignal): Promise<z.infer<typeof flyAppSchema>> {
    return this.request(flyAppSchema, { method: 'GET', path: `/v1/apps/${enc(name)}`, operation: 'getApp', idempotent: true, signal });
  }

  /** Deletes an app and everything in it. Idempotent in effect; a missing app is a `SandboxNotFoundError`. */
  deleteApp(name: string, signal?: AbortSignal): Promise<void> {
    return this.request(undefined, { method: 'DELETE', path: `/v1/apps/${enc(name)}`, operation: 'terminate', idempotent: true, signal });
  }

  async listApps(org: string, signal?: AbortSignal): Promise<Array<{ name: string; machine_count?: number | undefined }>> {
    const answer = await this.request(flyListAppsSchema, {
      method: 'GET',
      path: '/v1/apps',
      query: { org_slug: org },
      operation: 'list',
      idempotent: true,
      signal,
    });
    return answer.apps ?? [];
  }

  // Machines -----------------------------------------------------------------------------------

  createMachine(
    app: string,
    input: { name?: string | undefined; region?: string | undefined; config: FlyMachineConfig },
    signal?: AbortSignal,
  ): Promise<FlyMachine> {
    return this.request(flyMachineSchema, {
      method: 'POST',
      path: `/v1/apps/${enc(app)}/machines`,
      body: {
        ...(input.name === undefined ? {} : { name: input.name }),
        ...(input.region === undefined ? {} : { region: input.region }),
        config: input.config,
      },
      operation: 'create',
      idempotent: false,
      signal,
      argument: 'create options',
    });
  }

  getMachine(app: string, id: string, signal?: AbortSignal, sandboxId?: string): Promise<FlyMachine> {
    return this.request(flyMachineSchema, {
      method: 'GET',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}`,
      operation: 'getMachine',
      idempotent: true,
      signal,
      sandboxId,
    });
  }

  /** Machines of an app, optionally only those whose metadata has every pair of `metadata` (Fly's filter). */
  listMachines(app: string, metadata: Record<string, string> = {}, signal?: AbortSignal): Promise<FlyMachine[]> {
    const query = Object.fromEntries(Object.entries(metadata).map(([key, value]) => [`metadata.${key}`, value]));
    return this.request(
      z
        .array(flyMachineSchema)
        .nullable()
        .transform((list) => list ?? []),
      {
        method: 'GET',
        path: `/v1/apps/${enc(app)}/machines`,
        query,
        operation: 'list',
        idempotent: true,
        signal,
      },
    );
  }

  /**
   * Waits until the machine is in `state`, at most `timeoutSeconds` (Fly allows 1-60). Resolves
   * `true`, or `false` when the wait ran out (Fly's 408).
   */
  async waitMachine(
    app: string,
    id: string,
    state: 'started' | 'stopped' | 'suspended' | 'destroyed',
    timeoutSeconds: number,
    signal?: AbortSignal,
    sandboxId?: string,
  ): Promise<boolean> {
    try {
      await this.request(z.unknown(), {
        method: 'GET',
        path: `/v1/apps/${enc(app)}/machines/${enc(id)}/wait`,
        query: { state, timeout: Math.max(1, Math.min(60, Math.ceil(timeoutSeconds))) },
        operation: `wait (${state})`,
        idempotent: true,
        signal,
        sandboxId,
      });
      return true;
    } catch (error) {
      if (SandboxError.isInstance(error) && error.code === 'timeout') return false;
      throw error;
    }
  }

  /** start / stop / suspend: idempotent in effect (Fly answers a machine already there with success or 412). */
  machineAction(app: string, id: string, action: 'start' | 'stop' | 'suspend', signal?: AbortSignal, sandboxId?: string): Promise<void> {
    return this.request(undefined, {
      method: 'POST',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}/${action}`,
      operation: action,
      idempotent: true,
      signal,
      sandboxId,
    });
  }

  /** Destroys a machine, running or not (`force`). Idempotent in effect; a missing machine is a `SandboxNotFoundError`. */
  deleteMachine(app: string, id: string, signal?: AbortSignal, sandboxId?: string): Promise<void> {
    return this.request(undefined, {
      method: 'DELETE',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}`,
      query: { force: true },
      operation: 'terminate',
      idempotent: true,
      signal,
      sandboxId,
    });
  }

  getMetadata(app: string, id: string, signal?: AbortSignal, sandboxId?: string): Promise<Record<string, string>> {
    return this.request(
      flyMetadataSchema.nullable().transform((value) => value ?? {}),
      {
        method: 'GET',
        path: `/v1/apps/${enc(app)}/machines/${enc(id)}/metadata`,
        operation: 'getTags',
        idempotent: true,
        signal,
        sandboxId,
      },
    );
  }

  setMetadata(app: string, id: string, key: string, value: string, signal?: AbortSignal, sandboxId?: string): Promise<void> {
    return this.request(undefined, {
      method: 'POST',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}/metadata/${enc(key)}`,
      body: { value },
      operation: 'setTags',
      idempotent: true,
      signal,
      sandboxId,
      argument: 'tags',
    });
  }

  deleteMetadata(app: string, id: string, key: string, signal?: AbortSignal, sandboxId?: string): Promise<void> {
    return this.request(undefined, {
      method: 'DELETE',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}/metadata/${enc(key)}`,
      operation: 'setTags',
      idempotent: true,
      signal,
      sandboxId,
    });
  }

  /**
   * Runs `command` (an argv) in the machine and answers when it has exited, with its whole output
   * (Fly's exec is buffered). `stdin` is given whole; `timeoutSeconds` bounds the command on Fly's
   * side. Not idempotent (never retried).
   */
  async exec(
    app: string,
    id: string,
    input: { command: readonly string[]; stdin?: string | undefined; timeoutSeconds: number },
    signal?: AbortSignal,
    sandboxId?: string,
  ): Promise<FlyExecResponse> {
    const answer = await this.request(flyExecResponseSchema, {
      method: 'POST',
      path: `/v1/apps/${enc(app)}/machines/${enc(id)}/exec`,
      body: {
        command: input.command,
        timeout: Math.max(1, Math.ceil(input.timeoutSeconds)),
        ...(input.stdin === undefined ? {} : { stdin: input.stdin }),
      },
      operation: 'exec',
      idempotent: false,
      signal,
      sandboxId,
    });
    return { exitCode: answer.exit_code ?? 0, stdout: answer.stdout ?? '', stderr: answer.stderr ?? '' };
  }

  // Volumes ------------------------------------------------------------------------------------

  listVolumes(app: string, signal?: AbortSignal): Promise<FlyVolume[]> {
    return this.request(
      z
        .array(flyVolumeSchema)
        .nullable()
        .transform((list) => list ?? []),
      {
        method: 'GET',
        path: `/v1/apps/${enc(app)}/volumes`,
        operation: 'create',
        idempotent: true,
        signal,
      },
    );
  }

  createVolume(
    app: string,
    input: { name: string; sizeGb: number; region?: string | undefined },
    signal?: AbortSignal,
  ): Promise<FlyVolume> {
    return this.request(flyVolumeSchema, {
      method: 'POST',
      path: `/v1/apps/${enc(app)}/volumes`,
      body: { name: input.name, size_gb: input.sizeGb, ...(input.region === undefined ? {} : { region: input.region }) },
      operation: 'create',
      idempotent: false,
      signal,
      argument: 'volumes',
    });
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** The `error` of Fly's `{ "error": "..." }` body, or the text itself. */
export function errorDetail(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.error === 'string') return body.error;
    if (typeof body.message === 'string') return body.message;
  } catch {
    // Not JSON: the text says what it says.
  }
  return text.slice(0, 500);
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(milliseconds: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }, milliseconds);
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
