import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { CreateSandboxOptions, SandboxImageBuild } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { AgentSessionError } from './agent-errors.js';

/** The Claude Code version sandport is tested with; `ensureClaudeCode` installs it by default. */
export const defaultClaudeCodeVersion = '2.1.330';

/** Where `install: 'upload'` puts the binary inside the sandbox by default. */
export const defaultClaudeCodeUploadPath = '/tmp/sandport/claude-code/claude';

/**
 * Providers whose sandboxes get the CLI from their image only: `install: 'upload'` is refused
 * there (reason `cli-install-unsupported`, naming the image recipe). Their file writes are exec
 * or bridge round trips in parts (Fly: 4 MiB base64 execs, some 95 for the ~380 MB binary;
 * Cloudflare: 8 MiB PUTs through the Worker), paid again for every sandbox since neither has a
 * snapshot to start the next one from, while the image is the app's to build anyway. And neither
 * can carry the CLI's stream-json session over exec: Fly's exec returns output only when the
 * command ends (`exec.streaming: false`), the Cloudflare bridge has no stdin (`exec.stdin: false`).
 * Keys are `SandboxProvider.id`s; values say why.
 */
export const claudeCodeImageOnlyProviders: Readonly<Record<string, string>> = Object.freeze({
  fly: 'Fly Machines run the image the app deploys, and files reach them in 4 MiB exec calls; build the image with the CLI in it and pass it as `image`',
  cloudflare:
    'Cloudflare sandboxes run the container image of the deployed Worker (its Dockerfile), and `image` cannot be set per sandbox; add the CLI to that Dockerfile',
});

/**
 * The image recipe that has the CLI in it, as a `SandboxImageBuild` for providers that build
 * images at create (`capabilities.images.build`: Docker, Modal, E2B), and the same step for a
 * Dockerfile (`RUN <commands[0]>`) where the image is built elsewhere (Fly, Cloudflare).
 * `base` needs Node ≥ 18 with npm, and npm registry access at build time. Pure; never throws.
 *
 * @example
 * const sandbox = await provider.create({ image: claudeCodeImage('node:20-bookworm-slim') });
 * // Dockerfile: FROM node:20-bookworm-slim
 * //             RUN npm install -g --no-fund --no-audit @anthropic-ai/claude-code@2.1.330
 */
export function claudeCodeImage(base = 'node:20-bookworm-slim', version = defaultClaudeCodeVersion): SandboxImageBuild {
  return { base, commands: [claudeCodeInstallCommand(version)] };
}

function claudeCodeInstallCommand(version: string): string {
  return `npm install -g --no-fund --no-audit @anthropic-ai/claude-code@${version}`;
}

export interface EnsureClaudeCodeOptions {
  /** Exact version to require (`'2.1.330'`). Omitted: any installed version is accepted. */
  version?: string;
  /** Program to check inside the sandbox, a name on `PATH` or an absolute path. @default 'claude' */
  executable?: string;
  /**
   * When the CLI is missing or another version:
   * - `'npm'` runs `npm install -g @anthropic-ai/claude-code@<version>` inside the sandbox (needs
   *   Node ≥ 18 and network access to the npm registry there);
   * - `'upload'` copies the host's native binary (`hostBinary`) into the sandbox through its files
   *   API, to `uploadPath`, mode 0755: no network or Node in the sandbox, but its OS, CPU and libc
   *   must be the host's (checked in the sandbox before the copy). The way for Modal and E2B
   *   sandboxes (a few seconds for ~380 MB; snapshot the sandbox afterwards to pay it once). Refused
   *   on the providers of `claudeCodeImageOnlyProviders` (Fly, Cloudflare);
   * - `false` throws instead.
   * Where neither works, bake the CLI into the image: `claudeCodeImage()`.
   * @default 'npm'
   */
  install?: 'npm' | 'upload' | false;
  /** Host path of the native binary `install: 'upload'` copies. @default as in `claudeCodeHostMount` */
  hostBinary?: string;
  /** Absolute path in the sandbox `install: 'upload'` writes to. @default defaultClaudeCodeUploadPath */
  uploadPath?: string;
  /** Limit for the install (npm run, or upload). @default 600_000 (10 minutes) */
  installTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ClaudeCodeInstallation {
  /** What to run inside the sandbox (pass as `executable` to `AgentSession.start`). */
  readonly executable: string;
  /** The version `claude --version` printed. */
  readonly version: string;
  /** True when this call installed it. */
  readonly installed: boolean;
}

/**
 * Makes sure the `claude` CLI runs in the sandbox: checks `<executable> --version` and, when it
 * is missing or not the pinned version, installs it as `install` says: with npm (the default),
 * or by uploading the host's binary (see `install`). On local and Docker, mount the host's
 * binary instead (`claudeCodeHostMount`) and call this to check it.
 *
 * Idempotent: a second call finds what the first installed (an upload is found at `uploadPath`).
 * Throws `SandboxInvalidArgumentError` for a bad `version` or `uploadPath`, and
 * `AgentSessionError` with reason `cli-not-found` (missing and `install: false`),
 * `cli-version-mismatch` (another version and `install: false`, or a host binary of another
 * version to upload), `cli-install-unsupported` (an upload where the provider or the sandbox's
 * platform cannot take it; the message names `claudeCodeImage()`), or `cli-install-failed`.
 * An abort rejects with `signal.reason`.
 */
export async function ensureClaudeCode(sandbox: Sandbox, options: EnsureClaudeCodeOptions = {}): Promise<ClaudeCodeInstallation> {
  const { version, signal } = options;
  const executable = options.executable ?? 'claude';
  if (version !== undefined && !/^\d+\.\d+\.\d+([-.][0-9A-Za-z.]+)?$/.test(version)) {
    throw new SandboxInvalidArgumentError({
      message: `version must be an exact version like 2.1.330, got ${JSON.stringify(version)}`,
      argument: 'version',
    });
  }
  const uploadPath = options.uploadPath ?? defaultClaudeCodeUploadPath;
  if (options.install === 'upload' && (!uploadPath.startsWith('/') || uploadPath.endsWith('/'))) {
    throw new SandboxInvalidArgumentError({
      message: `uploadPath must be an absolute file path, got ${JSON.stringify(uploadPath)}`,
      argument: 'uploadPath',
    });
  }
  signal?.throwIfAborted();
  const found = await installedVersion(sandbox, executable, signal);
  if (found && (version === undefined || found === version)) return { executable, version: found, installed: false };
  if (options.install === false) {
    throw new AgentSessionError({
      reason: found ? 'cli-version-mismatch' : 'cli-not-found',
      message: found
        ? `Claude Code ${found} is installed in sandbox ${sandbox.id}, ${version} is required`
        : `Claude Code (${executable}) is not installed in sandbox ${sandbox.id}`,
      provider: sandbox.provider,
    });
  }
  if (options.install === 'upload') return uploadClaudeCode(sandbox, { ...options, uploadPath });
  return npmInstall(sandbox, options);
}

async function npmInstall(sandbox: Sandbox, options: EnsureClaudeCodeOptions): Promise<ClaudeCodeInstallation> {
  const { signal } = options;
  const target = options.version ?? defaultClaudeCodeVersion;
  const result = await sandbox
    .run(['npm', 'install', '-g', '--no-fund', '--no-audit', `@anthropic-ai/claude-code@${target}`], {
      timeoutMs: options.installTimeoutMs ?? 600_000,
      signal,
    })
    .catch((error: unknown) => {
      if (signal?.aborted) throw signal.reason;
      throw new AgentSessionError({
        reason: 'cli-install-failed',
        message: `Could not run npm in sandbox ${sandbox.id}: ${(error as Error).message}`,
        cause: error,
        provider: sandbox.provider,
      });
    });
  if (result.exitCode !== 0) {
    throw new AgentSessionError({
      reason: 'cli-install-failed',
      message: `npm install of @anthropic-ai/claude-code@${target} failed in sandbox ${sandbox.id} (exit ${result.exitCode})`,
      exitCode: result.exitCode,
      stderrTail: result.stderr.slice(-4000),
      provider: sandbox.provider,
    });
  }
  const installed = await installedVersion(sandbox, 'claude', signal);
  if (installed !== target) {
    throw new AgentSessionError({
      reason: 'cli-install-failed',
      message: `After npm install, claude --version reports ${installed ?? 'nothing'}, expected ${target}`,
      provider: sandbox.provider,
    });
  }
  return { executable: 'claude', version: installed, installed: true };
}

function unsupported(sandbox: Sandbox, why: string): AgentSessionError {
  const recipe = claudeCodeImage();
  return new AgentSessionError({
    reason: 'cli-install-unsupported',
    message:
      `Cannot upload Claude Code into sandbox ${sandbox.id} (${sandbox.provider}): ${why}. ` +
      `Use an image with the CLI in it: image: claudeCodeImage() (${JSON.stringify(recipe)}), ` +
      `or in a Dockerfile: RUN ${claudeCodeInstallCommand(defaultClaudeCodeVersion)}`,
    provider: sandbox.provider,
  });
}

async function uploadClaudeCode(
  sandbox: Sandbox,
  options: EnsureClaudeCodeOptions & { uploadPath: string },
): Promise<ClaudeCodeInstallation> {
  const { signal, uploadPath } = options;
  const refused = claudeCodeImageOnlyProviders[sandbox.provider];
  if (refused) throw unsupported(sandbox, refused);
  // An earlier upload (this sandbox's, or one its image or snapshot carries) is as good as a new one.
  const previous = await installedVersion(sandbox, uploadPath, signal);
  if (previous && (options.version === undefined || previous === options.version)) {
    return { executable: uploadPath, version: previous, installed: false };
  }
  const binary = options.hostBinary ?? findHostClaudeBinary();
  if (!binary || !existsSync(binary)) {
    throw new SandboxInvalidArgumentError({
      message: 'No native claude binary found on the host to upload; install @anthropic-ai/claude-code or pass hostBinary',
      argument: 'hostBinary',
    });
  }
  const hostVersion = packagedVersion(binary);
  if (options.version !== undefined && hostVersion !== undefined && hostVersion !== options.version) {
    throw new AgentSessionError({
      reason: 'cli-version-mismatch',
      message: `The host's claude binary (${binary}) is ${hostVersion}, ${options.version} is required`,
      provider: sandbox.provider,
    });
  }
  const platform = await sandboxPlatform(sandbox, signal);
  if (platform !== hostPlatform()) {
    throw unsupported(sandbox, `the host's binary is for ${hostPlatform()}, the sandbox is ${platform ?? 'of an unknown platform'}`);
  }
  const timeout = AbortSignal.timeout(options.installTimeoutMs ?? 600_000);
  const uploadSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const data = Readable.toWeb(createReadStream(binary)) as ReadableStream<Uint8Array>;
    await sandbox.files.write(uploadPath, data, { mode: 0o755, signal: uploadSignal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new AgentSessionError({
      reason: 'cli-install-failed',
      message: `Uploading ${binary} to ${uploadPath} in sandbox ${sandbox.id} failed: ${(error as Error).message}`,
      cause: error,
      provider: sandbox.provider,
    });
  }
  const installed = await installedVersion(sandbox, uploadPath, signal);
  if (!installed || (options.version !== undefined && installed !== options.version)) {
    throw new AgentSessionError({
      reason: 'cli-install-failed',
      message: `After the upload, ${uploadPath} --version reports ${installed ?? 'nothing'}${options.version ? `, expected ${options.version}` : ''}`,
      provider: sandbox.provider,
    });
  }
  return { executable: uploadPath, version: installed, installed: true };
}

/** `linux-x64`, `linux-arm64-musl`, …: the platform packages' naming. */
function hostPlatform(): string {
  const musl =
    process.platform === 'linux' &&
    !(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  return `${process.platform}-${process.arch}${musl ? '-musl' : ''}`;
}

/** The sandbox's platform in the same naming, from `uname` and the dynamic loader it has. */
async function sandboxPlatform(sandbox: Sandbox, signal: AbortSignal | undefined): Promise<string | undefined> {
  const probe = 'uname -sm; if ls /lib/ld-musl-* >/dev/null 2>&1; then echo musl; else echo glibc; fi';
  const result = await sandbox.run(['/bin/sh', '-c', probe], { timeoutMs: 60_000, signal }).catch(() => {
    if (signal?.aborted) throw signal.reason;
    return undefined;
  });
  if (result?.exitCode !== 0) return undefined;
  const [uname = '', libc] = result.stdout.trim().split('\n');
  const [os, machine] = uname.trim().split(/\s+/);
  const arch = { x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', arm64: 'arm64' }[machine ?? ''];
  if (os?.toLowerCase() !== 'linux' || !arch) return `${os ?? '?'}-${machine ?? '?'}`;
  return `linux-${arch}${libc === 'musl' ? '-musl' : ''}`;
}

/** The version of the platform package the binary came from, when it lies in one. */
function packagedVersion(binary: string): string | undefined {
  try {
    const manifest = JSON.parse(readFileSync(join(dirname(binary), 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    // The Agent SDK's platform package carries the SDK's version, not the CLI's.
    if (typeof manifest.name !== 'string' || !manifest.name.startsWith('@anthropic-ai/claude-code-')) return undefined;
    return typeof manifest.version === 'string' ? manifest.version : undefined;
  } catch {
    return undefined;
  }
}

async function installedVersion(sandbox: Sandbox, executable: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  try {
    const result = await sandbox.run([executable, '--version'], { timeoutMs: 60_000, signal });
    if (result.exitCode !== 0) return undefined;
    return /^(\d+\.\d+\.\d+\S*)/.exec(result.stdout.trim())?.[1];
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    // "command not found" is an invalid-argument error of exec; anything else is real.
    if (SandboxInvalidArgumentError.isInstance(error)) return undefined;
    throw error;
  }
}

export interface ClaudeCodeHostMountOptions {
  /**
   * Host path of the native `claude` binary. @default the platform package of
   * `@anthropic-ai/claude-code` (or `@anthropic-ai/claude-agent-sdk`) resolved from `process.cwd()`
   */
  hostBinary?: string;
  /** Directory inside the sandbox where the binary's directory is mounted. @default '/sandport/claude-code' */
  mountPath?: string;
}

/**
 * Create options that mount the host's `claude` binary read-only into a sandbox, for providers
 * whose volumes are host directories (`capabilities.volumes === 'host-path'`: local, Docker) and
 * whose image can run it (same OS, architecture and libc as the host, as in the local
 * provider's host view). Returns the options and the in-sandbox path to pass as `executable`.
 * Throws `SandboxInvalidArgumentError` when no binary is found.
 */
export function claudeCodeHostMount(options: ClaudeCodeHostMountOptions = {}): {
  createOptions: Pick<CreateSandboxOptions, 'volumes'>;
  executable: string;
} {
  const binary = options.hostBinary ?? findHostClaudeBinary();
  if (!binary || !existsSync(binary)) {
    throw new SandboxInvalidArgumentError({
      message: 'No native claude binary found on the host; install @anthropic-ai/claude-code or pass hostBinary',
      argument: 'hostBinary',
    });
  }
  const mountPath = (options.mountPath ?? '/sandport/claude-code').replace(/\/$/, '');
  const name = binary.slice(dirname(binary).length + 1);
  return {
    createOptions: { volumes: { [mountPath]: { source: dirname(binary), readOnly: true } } },
    executable: `${mountPath}/${name}`,
  };
}

function findHostClaudeBinary(): string | undefined {
  const require = createRequire(join(process.cwd(), 'noop.js'));
  const platform = hostPlatform();
  const candidates = [`@anthropic-ai/claude-code-${platform}/package.json`, `@anthropic-ai/claude-agent-sdk-${platform}/package.json`];
  for (const candidate of candidates) {
    try {
      const binary = join(dirname(require.resolve(candidate)), 'claude');
      // A stub or a missing platform binary is a few bytes; the real one is hundreds of MB.
      if (existsSync(binary) && statSync(binary).size > 1_000_000) return binary;
    } catch {
      // not installed
    }
  }
  return undefined;
}
