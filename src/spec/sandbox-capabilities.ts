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
  };
  /** `Sandbox.tunnels()` returns a URL for each declared port. */
  readonly tunnels: boolean;
  /** `Sandbox.snapshot()` exists and its result is accepted as `image`. */
  readonly snapshot: boolean;
  /** `setTags`/`getTags` work and `list({ tags })` filters by them. */
  readonly tags: boolean;
  /** `SandboxProvider.fromName` exists. */
  readonly fromName: boolean;
  /** `SandboxProvider.list` exists. */
  readonly list: boolean;
  /** Whether lookups (`fromId`, `fromName`, `list`) see sandboxes created by other processes. */
  readonly crossProcessLookup: boolean;
  /** `Sandbox.extendTimeout` exists. */
  readonly extendTimeout: boolean;
  readonly network: {
    /** `network: 'block'` is enforced. */
    readonly block: boolean;
    /** `network: { allowCidrs }` is enforced. */
    readonly allowCidrs: boolean;
    /** `network: { allowDomains }` is enforced. */
    readonly allowDomains: boolean;
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
