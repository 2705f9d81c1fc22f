/**
 * Neutral options → what the bridge Worker of `@cloudflare/sandbox` takes, as pure plans (no I/O),
 * so that every trap of the bridge is unit-tested without a network: which version a bridge is
 * (from its OpenAPI document), the connection settings and their environment variables, what a
 * create may ask for (the bridge fixes instance type, image, network and lifetime per deploy),
 * the exec request of each version (0.12 has no `env`: it is emulated with `env K=V …`), and the
 * file routes (only `/workspace`, at most 32 MiB per write).
 */
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  parseOptions,
  portRequests,
  refuseUnsupported,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxWarning,
  type Tunnel,
} from '../../src/kit/index.js';

const provider = 'cloudflare';

/** The bridge versions this adapter speaks: 0.12 (`/exec` with server-sent events) and 0.13 (`/processes`). */
export const cloudflareBridgeVersions = ['0.12', '0.13'] as const;
export type CloudflareBridgeVersion = (typeof cloudflareBridgeVersions)[number];

/** The environment variables the provider reads when its options leave the connection out. */
export const cloudflareEnvironment = {
  url: 'CLOUDFLARE_SANDBOX_BRIDGE_URL',
  token: 'CLOUDFLARE_SANDBOX_BRIDGE_TOKEN',
} as const;

/** The bridge's largest file or hydrate body, in bytes (its `MAX_WRITE_BYTES`, 32 MiB): larger writes are chunked. */
export const cloudflareMaxWriteBytes = 32 * 1024 * 1024;

/** The only directory the bridge's file routes reach. */
export const cloudflareWorkspace = '/workspace';

/**
 * Where the adapter stages files the file routes cannot reach directly (paths outside
 * `/workspace`, chunks of a large write): under `/workspace`, and left out of `persistWorkspace`.
 */
export const cloudflareStagingDirectory = '/workspace/.sandport-staging';

/**
 * The marker a create writes into the sandbox, stamped with its id, workdir and env: the bridge
 * gives any well-formed id a fresh empty container (after a restart, after `sleepAfter`), so a
 * sandbox whose marker is gone has lost its state and is reported as not found. It lives in
 * `/tmp`, which dies with the container, and never in `/workspace` (persisted with it).
 */
export const cloudflareMarkerPath = '/tmp/.sandport-sandbox.json';

/** Sandbox ids the bridge accepts (`^[a-z2-7]{1,128}$`, lowercase base32). */
export const cloudflareIdPattern = /^[a-z2-7]{1,128}$/;

/**
 * What both bridge versions can do, in the contract's terms. The flags agree for 0.12 and 0.13
 * (the capability object can then exist before any request, as construction does no I/O); what
 * differs is in {@link CloudflareBridgeFeatures}.
 */
const sharedCapabilities: SandboxCapabilities = {
  // Every Cloudflare container instance runs in its own virtual machine.
  isolation: 'microvm',
  // No version of the bridge carries stdin (the command reads /dev/null: end of input from the
  // start, so closing stdin is true to its word). Kill is the kit's marker killer, run as a second
  // exec (0.12 has no kill route; 0.13's signals one pid, not the tree): every signal, whole tree.
  exec: { stdin: false, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: false },
  files: { watch: false },
  // The bridge has no entrypoint: `command` runs as a held exec whose exit ends the sandbox, but
  // its stdin cannot be reached, so its stdio is not offered.
  entrypointStdio: false,
  // Quick tunnels (`POST /tunnel/{port}`): https URLs on trycloudflare.com.
  tunnels: true,
  tunnelsTls: true,
  // persist/hydrate covers /workspace only, not the filesystem a snapshot must restore: it is
  // offered as `persistWorkspace`/`hydrateWorkspace`, not as `snapshot`.
  snapshot: false,
  deleteSnapshot: false,
  hostRoutes: false,
  // The bridge lists nothing and keeps no labels.
  tags: false,
  fromName: false,
  list: false,
  // An id is all `fromId` needs (the marker file tells a live sandbox from a lost one).
  crossProcessLookup: true,
  pause: false,
  extendTimeout: false,
  // Network, limits, image and lifetime are fixed per Worker deploy (wrangler.jsonc).
  network: { block: false, allowCidrs: false, allowDomains: false, allowlistViaProxy: false, update: false },
  limits: { cpu: false, memory: false, pids: false },
  // No lifetime option; the Durable Object's fixed 10-minute `sleepAfter` is not configurable.
  timeouts: { lifetime: false, idle: false, maxLifetimeMs: 10 * 60 * 1000 },
  volumes: false,
  gpu: false,
  images: { reference: false, build: false, snapshot: false },
};

/**
 * The provider's capabilities (the same object whichever bridge version is detected, so that it
 * exists before any request: construction does no I/O).
 */
export const cloudflareCapabilities: SandboxCapabilities = deepFreeze(sharedCapabilities);

/**
 * The capabilities against a bridge of `version`: the same flags for 0.12 and 0.13 (what differs
 * is in {@link cloudflareBridgeFeatures}), decided per version here so that a later bridge whose
 * flags differ changes one place.
 */
export function cloudflareCapabilitiesFor(_version: CloudflareBridgeVersion): SandboxCapabilities {
  return cloudflareCapabilities;
}

/** What differs between the bridge versions, beyond the contract's flags. */
export interface CloudflareBridgeFeatures {
  readonly version: CloudflareBridgeVersion;
  /**
   * Output bytes arrive exactly as written. False on 0.12: its container decodes the command's
   * output as UTF-8 text, so bytes that are not valid UTF-8 arrive as U+FFFD.
   */
  readonly byteExactOutput: boolean;
  /** How `env` reaches a command: the bridge's own field (0.13), or `env K=V …` before the argv (0.12). */
  readonly execEnv: 'native' | 'emulated';
  /** How argv reaches the sandbox: as argv (0.13), or joined into one `bash -c` string with `$'…'` quoting (0.12). */
  readonly argv: 'native' | 'bash-quoted';
}

export function cloudflareBridgeFeatures(version: CloudflareBridgeVersion): CloudflareBridgeFeatures {
  return version === '0.13'
    ? { version, byteExactOutput: true, execEnv: 'native', argv: 'native' }
    : { version, byteExactOutput: false, execEnv: 'emulated', argv: 'bash-quoted' };
}

/** The part of the bridge's OpenAPI document that tells its version. */
const openApiSchema = z.object({
  openapi: z.string().optional(),
  info: z.object({ version: z.string().optional() }).partial().optional(),
  paths: z.record(z.string(), z.unknown()),
});

/**
 * The bridge's version from its OpenAPI document (`GET /v1/openapi.json`), by its routes: the
 * process routes are 0.13's, `/exec` is 0.12's; with both (a bridge in transition), 0.13, the
 * byte-exact one. A document with neither is `SandboxCapabilityUnsupportedError` (capability
 * `exec`), as nothing could run on it; an answer that is no OpenAPI document is
 * `SandboxInvalidArgumentError` (argument `url`: it is not the bridge).
 */
export function detectCloudflareBridgeVersion(document: unknown): CloudflareBridgeVersion {
  const parsed = openApiSchema.safeParse(document);
  if (!parsed.success)
    throw new SandboxInvalidArgumentError({
      message: 'The bridge answered /v1/openapi.json with something that is not an OpenAPI document (is url the bridge Worker?)',
      argument: 'url',
      provider,
    });
  const paths = Object.keys(parsed.data.paths);
  if (paths.some((path) => /\/sandbox\/\{[^}]+\}\/processes$/.test(path))) return '0.13';
  if (paths.some((path) => /\/sandbox\/\{[^}]+\}\/exec$/.test(path))) return '0.12';
  throw new SandboxCapabilityUnsupportedError({
    message: `The bridge's OpenAPI document (version ${parsed.data.info?.version ?? 'unknown'}) has neither /exec nor /processes: this adapter speaks bridge 0.12 and 0.13`,
    capability: 'exec',
    provider,
  });
}

/** Where and how to reach the bridge. */
export interface CloudflareConnection {
  /** The Worker's origin and base path, without a trailing slash (`https://bridge.example.workers.dev`). */
  readonly url: string;
  readonly token: string;
}

/**
 * The connection from the options, else from the environment ({@link cloudflareEnvironment}).
 * Throws `SandboxInvalidArgumentError` naming the option and its variable when one is missing,
 * or when the URL is not http(s).
 */
export function planCloudflareConnection(
  options: { url?: string | undefined; token?: string | undefined },
  environment: Record<string, string | undefined>,
): CloudflareConnection {
  const url = options.url ?? environment[cloudflareEnvironment.url];
  const token = options.token ?? environment[cloudflareEnvironment.token];
  if (url === undefined || url === '')
    throw new SandboxInvalidArgumentError({
      message: `The bridge's URL is missing: pass url or set ${cloudflareEnvironment.url} (the deployed bridge Worker, https://….workers.dev)`,
      argument: 'url',
      provider,
    });
  if (token === undefined || token === '')
    throw new SandboxInvalidArgumentError({
      message: `The bridge's token is missing: pass token or set ${cloudflareEnvironment.token} (the Worker's SANDBOX_API_KEY secret)`,
      argument: 'token',
      provider,
    });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SandboxInvalidArgumentError({ message: `The bridge's URL is not a URL: ${url}`, argument: 'url', provider });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    throw new SandboxInvalidArgumentError({ message: `The bridge's URL must be http(s): ${url}`, argument: 'url', provider });
  return { url: `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`, token };
}

/** `providerOptions.cloudflare` of `create`: nothing yet (every setting of the bridge is fixed per deploy). */
export const cloudflareCreateOptionsSchema = z.object({}).strict();

export interface CloudflareCreatePlan {
  /** The create `command`, run as a held exec once the sandbox is up. */
  entrypoint: string[] | undefined;
  /** Default cwd of every command (the bridge's own default is `/workspace`). */
  workdir: string | undefined;
  /** `env` and `secrets` of the create, applied to every exec (the bridge has no create-time env). */
  env: Record<string, string>;
  /** Declared ports, for `tunnels()`. */
  ports: number[];
  warnings: SandboxWarning[];
}

/**
 * Builds the create plan. Throws `SandboxCapabilityUnsupportedError` for what the bridge fixes
 * per deploy (image, cpu, memory, network, lifetime, idle timeout, volumes, gpu), and
 * `SandboxInvalidArgumentError` for a port the bridge refuses (below 1024, and 3000, its control
 * port). What is not a security setting is a warning: tags are dropped (nothing could list
 * them), a `name` is kept on the returned object only, secrets become plain env of every exec.
 */
export function planCloudflareCreate(options: ParsedCreateSandboxOptions): CloudflareCreatePlan {
  parseOptions(cloudflareCreateOptionsSchema, options.providerOptions?.cloudflare ?? {}, {
    provider,
    what: 'providerOptions.cloudflare',
  });
  const warnings: SandboxWarning[] = [...refuseUnsupported(options, sharedCapabilities, provider)];
  // Tags are not a security setting: kept nowhere (the bridge has no labels, no list), with a warning.
  if (options.tags !== undefined && Object.keys(options.tags).length > 0)
    warnings.push({
      type: 'unsupported-setting',
      setting: 'tags',
      details: 'The bridge keeps no labels and lists nothing: the tags are dropped (getTags and setTags are unsupported)',
    });
  if (options.name !== undefined)
    warnings.push({
      type: 'unsupported-setting',
      setting: 'name',
      details: 'The bridge has no names: the name is kept on this sandbox object only, and fromName is unsupported',
    });
  if (options.secrets !== undefined && Object.keys(options.secrets).length > 0)
    warnings.push({
      type: 'unsupported-setting',
      setting: 'secrets',
      details: 'The bridge has no secret store: secrets are passed to every command as ordinary environment variables',
    });
  const ports = portRequests(options.ports, provider).map((request) => {
    const port = planCloudflareTunnelPort(request.port);
    if (request.encrypted === false)
      warnings.push({
        type: 'unsupported-setting',
        setting: 'ports.encrypted',
        details: `Cloudflare tunnels are https only: port ${port} is encrypted`,
      });
    return port;
  });
  return {
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    workdir: options.workdir,
    env: { ...options.secrets, ...options.env },
    ports,
    warnings,
  };
}

/** A port the bridge tunnels: 1024 to 65535, never 3000 (the container's control port). Throws `SandboxInvalidArgumentError` otherwise. */
export function planCloudflareTunnelPort(port: number): number {
  if (!Number.isInteger(port) || port < 1024 || port > 65535 || port === 3000)
    throw new SandboxInvalidArgumentError({
      message: `ports: the bridge tunnels ports 1024 to 65535 except 3000 (its control port), not ${port}`,
      argument: 'ports',
      provider,
    });
  return port;
}

/** The bridge's tunnel record, as the contract's `Tunnel` (an https URL on port 443 unless it says otherwise). */
export function planCloudflareTunnel(port: number, record: { url: string }): Tunnel {
  const url = new URL(record.url);
  const encrypted = url.protocol === 'https:';
  const hostPort = url.port === '' ? (encrypted ? 443 : 80) : Number(url.port);
  return { port, url: record.url.replace(/\/+$/, ''), host: url.hostname, hostPort, encrypted };
}

/** The request body of one exec, per version. */
export type CloudflareExecRequest =
  | { version: '0.12'; body: { argv: string[]; timeout_ms?: number } }
  | { version: '0.13'; body: { argv: string[]; timeout?: number; env?: Record<string, string> } };

/**
 * The exec request for an argv already wrapped by the kit (which enters the working directory
 * itself, so the bridge's `cwd`, limited to `/workspace`, is never used). `env` is the bridge's
 * field on 0.13 and `env K=V … argv` on 0.12 (whose argv then goes through `bash -c` with `$'…'`
 * quoting, byte for byte). `backstopMs`: the bridge's own timeout, a second line behind the kit's
 * exec timeout (which kills the tree first).
 */
export function planCloudflareExec(
  version: CloudflareBridgeVersion,
  argv: readonly string[],
  options: { env?: Record<string, string> | undefined; backstopMs?: number | undefined },
): CloudflareExecRequest {
  const env = options.env ?? {};
  const names = Object.keys(env);
  if (version === '0.13') {
    return {
      version,
      body: {
        argv: [...argv],
        ...(names.length > 0 ? { env: { ...env } } : {}),
        ...(options.backstopMs === undefined ? {} : { timeout: options.backstopMs }),
      },
    };
  }
  // `env` runs the wrapper with the variables added; names are validated by the contract (no `=`).
  const prefix = names.length > 0 ? ['env', ...names.map((name) => `${name}=${env[name]}`)] : [];
  return {
    version,
    body: { argv: [...prefix, ...argv], ...(options.backstopMs === undefined ? {} : { timeout_ms: options.backstopMs }) },
  };
}

/** How a file path reaches the bridge: straight through the file route, or staged through `/workspace`. */
export type CloudflareFileRoute =
  /** `route` is the path after `/file/`, without its leading slash, percent-encoded per segment. */
  | { kind: 'direct'; route: string }
  /** Outside `/workspace`: copied to or from a staging file under it by an exec. */
  | { kind: 'staged' };

/**
 * The route of an absolute sandbox path. The bridge takes `/file/<path without its slash>` and
 * percent-decodes it, so each segment is encoded (`a b` → `a%20b`, `%` → `%25`), and refuses
 * anything that does not resolve under `/workspace`: such paths are staged. A path with `.` or
 * `..` segments or an empty one is staged too, so the bridge's normalisation never decides.
 */
export function planCloudflareFileRoute(path: string): CloudflareFileRoute {
  const inside = path === cloudflareWorkspace || path.startsWith(`${cloudflareWorkspace}/`);
  const segments = path.slice(1).split('/');
  if (!inside || segments.some((segment) => segment === '' || segment === '.' || segment === '..')) return { kind: 'staged' };
  return { kind: 'direct', route: segments.map((segment) => encodeURIComponent(segment)).join('/') };
}

/**
 * How a write of `size` bytes goes: one PUT when it fits the bridge's limit, otherwise parts of
 * at most `limit` bytes staged and joined by an exec (`cat`), as the bridge's 413 would refuse it.
 */
export function planCloudflareWriteParts(size: number, limit: number = cloudflareMaxWriteBytes): number[] {
  if (size <= limit) return [size];
  const parts: number[] = [];
  for (let left = size; left > 0; left -= limit) parts.push(Math.min(limit, left));
  return parts;
}

/** The marker a create writes (see {@link cloudflareMarkerPath}). */
export interface CloudflareMarker {
  sandboxId: string;
  workdir: string | undefined;
  env: Record<string, string>;
  ports: number[];
  createdAt: number;
}

const markerSchema = z.object({
  sandboxId: z.string(),
  workdir: z.string().optional(),
  env: z.record(z.string(), z.string()),
  ports: z.array(z.number().int()),
  createdAt: z.number(),
});

/**
 * Reads a marker file's text: the sandbox's settings when it is this sandbox's, `undefined` when
 * it is missing, malformed or another sandbox's (a workspace hydrated from elsewhere carries no
 * marker, as it lives in `/tmp`; the stamp guards against copies all the same).
 */
export function parseCloudflareMarker(text: string | undefined, sandboxId: string): CloudflareMarker | undefined {
  if (text === undefined || text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = markerSchema.safeParse(value);
  if (!parsed.success || parsed.data.sandboxId !== sandboxId) return undefined;
  return { ...parsed.data, workdir: parsed.data.workdir };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
