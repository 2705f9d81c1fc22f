/**
 * Behavioural facts about a provider. This object is the single source of truth for what a
 * provider can do: the core's capability assertions and the conformance suite's skips both read it.
 * An optional method exists on a sandbox exactly when its flag here is true.
 */
export interface SandboxCapabilities {
  /** How the sandbox is isolated from its host. */
  readonly isolation: 'namespaces' | 'container' | 'gvisor' | 'microvm';
  readonly exec: {
    /** `SandboxProcess.stdin` carries data to the command (otherwise the stream errors on write). */
    readonly stdin: boolean;
    /** `kill()` stops the command and every process it started. */
    readonly kill: boolean;
    /** `kill(signal)` delivers the named signal (otherwise only a hard kill is possible). */
    readonly signals: boolean;
    /**
     * Closing `stdin` delivers end-of-file to the command (`cat` exits). False where a provider's
     * input channel has no EOF (Daytona sessions): closing it then throws
     * `SandboxCapabilityUnsupportedError` instead of leaving the command waiting.
     */
    readonly stdinEof: boolean;
    /**
     * Output arrives while the command runs. False for providers whose exec returns the whole
     * output when the command exits (Fly's exec API): the streams then fill at exit.
     */
    readonly streaming: boolean;
    /** stdout and stderr arrive apart. False where the provider merges them (all output is on stdout). */
    readonly separateStderr: boolean;
    /** `exec(command, { pty })` runs the command on a terminal, and its process has `resize`. */
    readonly pty: boolean;
  };
  readonly files: {
    /** `SandboxFiles.watch` exists. */
    readonly watch: boolean;
  };
  /** `Sandbox.stdout`, `stderr` and `stdin` reach the create `command`'s own stdio. */
  readonly entrypointStdio: boolean;
  /** `Sandbox.tunnels()` returns a URL for each declared port. */
  readonly tunnels: boolean;
  /**
   * Tunnels can be TLS-encrypted: `ports: [{ port, encrypted: true }]` gives an `https:`/`wss:`
   * URL. When false, asking for encryption is a returned warning and the tunnel is plain.
   */
  readonly tunnelsTls: boolean;
  /** `Sandbox.snapshot()` exists and its result is accepted as `image`. */
  readonly snapshot: boolean;
  /** `SandboxProvider.deleteSnapshot` exists. */
  readonly deleteSnapshot: boolean;
  /**
   * `SandboxProvider.openHostRoute` exists: a port inside the sandbox can reach one service of
   * the host (a Unix socket), which is how the agent's credential proxy reaches its sandboxes.
   */
  readonly hostRoutes: boolean;
  /** `setTags`/`getTags` work and `list({ tags })` filters by them. */
  readonly tags: boolean;
  /** `SandboxProvider.fromName` exists. */
  readonly fromName: boolean;
  /** `SandboxProvider.list` exists. */
  readonly list: boolean;
  /** Whether lookups (`fromId`, `fromName`, `list`) see sandboxes created by other processes. */
  readonly crossProcessLookup: boolean;
  /**
   * `Sandbox.pause` and `resume` exist: a paused sandbox keeps its processes (memory included)
   * and files but runs nothing, and its timeouts stand still.
   */
  readonly pause: boolean;
  /** `Sandbox.extendTimeout` exists. */
  readonly extendTimeout: boolean;
  readonly network: {
    /** `network: 'block'` is enforced. */
    readonly block: boolean;
    /** `network: { allowCidrs }` is enforced. */
    readonly allowCidrs: boolean;
    /** `network: { allowDomains }` is enforced. */
    readonly allowDomains: boolean;
    /**
     * An allowlist is enforced by an egress proxy that programs must use: the sandbox has no
     * route out, and its environment names the proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`
     * and their lower-case forms). curl, pip, npm, git and most HTTP libraries honour it; a
     * program that ignores it reaches nothing (the policy fails closed). `false` where the
     * provider filters traffic itself.
     */
    readonly allowlistViaProxy: boolean;
    /** `Sandbox.updateNetwork` exists: a running sandbox's allowlist can be replaced. */
    readonly update: boolean;
  };
  /** Which resource limits are enforced (the others are refused at create). */
  readonly limits: { readonly cpu: boolean; readonly memory: boolean; readonly pids: boolean };
  readonly timeouts: {
    readonly lifetime: boolean;
    readonly idle: boolean;
    /** Longest accepted `timeoutMs`, in milliseconds. */
    readonly maxLifetimeMs: number;
  };
  /** What `volumes` sources are: host directories, named provider volumes, or not supported. */
  readonly volumes: 'host-path' | 'named' | 'host-path-or-named' | false;
  /** `gpu` is accepted. */
  readonly gpu: boolean;
  /** `image` forms accepted: a reference string, `{ base, commands }`, a snapshot. */
  readonly images: { readonly reference: boolean; readonly build: boolean; readonly snapshot: boolean };
}
