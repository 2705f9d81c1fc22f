import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { AgentSessionError } from './agent-errors.js';

/** The Claude Code version sandport is tested with; `ensureClaudeCode` installs it by default. */
export const defaultClaudeCodeVersion = '2.1.330';

export interface EnsureClaudeCodeOptions {
  /** Exact version to require (`'2.1.330'`). Omitted: any installed version is accepted. */
  version?: string;
  /** Program to check inside the sandbox, a name on `PATH` or an absolute path. @default 'claude' */
  executable?: string;
  /**
   * When the CLI is missing or another version: `'npm'` runs
   * `npm install -g @anthropic-ai/claude-code@<version>` inside the sandbox (needs Node ≥ 18 and
   * network access to the npm registry there); `false` throws instead.
   * @default 'npm'
   */
  install?: 'npm' | false;
  /** Limit for the install. @default 600_000 (10 minutes) */
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
 * Makes sure the `claude` CLI runs in the sandbox: checks `claude --version` and, when it is
 * missing or not the pinned version, installs that version with npm.
 * Throws `AgentSessionError` with reason `cli-not-found` (missing and `install: false`),
 * `cli-version-mismatch` (another version and `install: false`), or `cli-install-failed`.
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
  const target = version ?? defaultClaudeCodeVersion;
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
  const musl =
    process.platform === 'linux' &&
    !(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  const platform = `${process.platform}-${process.arch}${musl ? '-musl' : ''}`;
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
