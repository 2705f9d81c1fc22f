/**
 * What the Vercel emulator knows, in Vercel's own model: a *sandbox* is the durable, named thing
 * (config, tags, its snapshots); a *session* is one run of it, a local bubblewrap sandbox. Stopping
 * a session ends its local sandbox; a persistent sandbox (the default) snapshots its filesystem
 * first, and the next session (a resume: `GET /v2/sandboxes/:name?resume=true`, which the SDK
 * makes by itself when a call meets a stopped session's 410) starts from that snapshot; a
 * non-persistent one starts clean. The handler groups (vercel-sandboxes.ts, vercel-commands.ts,
 * vercel-files.ts, vercel-snapshots.ts, vercel-edge.ts) read and change it, and the wire shapes
 * of answers are built here, to the SDK's validators (`dist/api-client/validators.js`).
 */
import type { LocalSandbox, LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { CreateSandboxOptions, SandboxSnapshotRef } from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { SandboxRegistry, type RegisteredSandbox } from '../shared/sandbox-registry.js';
import type { CommandRecord } from './vercel-commands.js';
import { HttpError, type VercelRequest } from './vercel-http.js';
import { defaultCwd, type ResolvedImage } from './vercel-images.js';
import { apiPolicy, planLocalNetwork, type LocalNetwork, type RequestedPolicy } from './vercel-network.js';

export type SessionStatus = 'pending' | 'running' | 'stopping' | 'stopped' | 'failed' | 'aborted' | 'snapshotting';

/** Vercel's default region, and the one every session lands in. */
export const region = 'iad1';
/** Vercel's default session timeout (5 minutes) and the longest one (24 hours). */
export const defaultTimeoutMs = 5 * 60 * 1000;
export const maxTimeoutMs = 24 * 60 * 60 * 1000;
/** At most this many ports per sandbox, as on Vercel. */
export const maxPorts = 15;
/** At most this many tags per sandbox, as on Vercel. */
export const maxTags = 5;
/** Memory per vCPU, fixed on Vercel. */
export const memoryPerVcpu = 2048;
/** The vCPU counts Vercel offers. */
export const vcpuChoices = [1, 2, 4, 8] as const;
/** Snapshots expire after 30 days unless told otherwise. */
export const defaultSnapshotExpirationMs = 30 * 24 * 60 * 60 * 1000;

export interface KeepLastSnapshots {
  count: number;
  expiration?: number;
  deleteEvicted?: boolean;
}

/** A route from a port to the edge's host name. */
export interface Route {
  readonly port: number;
  readonly subdomain: string;
}

export interface VercelSandbox {
  readonly name: string;
  readonly projectId: string;
  persistent: boolean;
  vcpus: number;
  memory: number;
  image: ResolvedImage;
  timeout: number;
  /** The sandbox's default policy (what a new session starts with). */
  networkPolicy: RequestedPolicy;
  env: Record<string, string>;
  tags: Record<string, string>;
  ports: number[];
  readonly createdAt: number;
  updatedAt: number;
  statusUpdatedAt: number;
  currentSnapshotId: string | undefined;
  snapshotExpiration: number | undefined;
  keepLastSnapshots: KeepLastSnapshots | undefined;
  /** Every session, oldest first; the last is the current one. */
  readonly sessions: VercelSession[];
  /** Set while a resume starts the next session, so that two calls start one. */
  resuming: Promise<VercelSession> | undefined;
  deleted: boolean;
}

export interface VercelSession {
  readonly id: string;
  readonly sandbox: VercelSandbox;
  status: SessionStatus;
  readonly requestedAt: number;
  startedAt: number | undefined;
  requestedStopAt: number | undefined;
  stoppedAt: number | undefined;
  snapshottedAt: number | undefined;
  updatedAt: number;
  /** Milliseconds from its start until it is stopped; `extend-timeout` adds to it. */
  timeout: number;
  readonly vcpus: number;
  readonly memory: number;
  readonly runtime: string | undefined;
  readonly sourceSnapshotId: string | undefined;
  networkPolicy: RequestedPolicy;
  /** What its local sandbox's network is now. */
  localNetwork: LocalNetwork;
  entry: RegisteredSandbox<LocalSandbox, undefined> | undefined;
  routes: Route[];
  readonly commands: Map<string, CommandRecord>;
  timer: NodeJS.Timeout | undefined;
  stopping: Promise<void> | undefined;
}

export interface VercelSnapshot {
  readonly id: string;
  readonly sourceSessionId: string;
  readonly sandboxName: string;
  status: 'created' | 'deleted' | 'failed';
  readonly sizeBytes: number;
  readonly expiresAt: number | undefined;
  readonly createdAt: number;
  updatedAt: number;
  lastUsedAt: number | undefined;
  readonly creationMethod: 'manual' | 'auto';
  readonly parentId: string | undefined;
  /** The local provider's snapshot, until deleted. */
  readonly local: SandboxSnapshotRef;
}

export interface VercelStateOptions {
  provider: LocalSandboxProvider;
  token: string;
  teamId: string;
  projectId: string;
  /** `http://vercel.localhost:<edgePort>`: what routes' `url` are built from. */
  tunnelBaseUrl: string;
}

export class VercelState {
  readonly provider: LocalSandboxProvider;
  readonly token: string;
  readonly teamId: string;
  readonly projectId: string;
  readonly tunnelBaseUrl: string;
  /** The local sandboxes, one per session. */
  readonly locals: SandboxRegistry<LocalSandbox, undefined>;
  readonly sandboxes = new Map<string, VercelSandbox>();
  readonly sessions = new Map<string, VercelSession>();
  readonly snapshots = new Map<string, VercelSnapshot>();
  /** Route subdomains to their session. */
  readonly subdomains = new Map<string, { session: VercelSession; port: number }>();
  /** Call counts by `METHOD pattern`. */
  readonly calls = new Map<string, number>();
  private lastStamp = 0;

  constructor(options: VercelStateOptions) {
    this.provider = options.provider;
    this.token = options.token;
    this.teamId = options.teamId;
    this.projectId = options.projectId;
    this.tunnelBaseUrl = options.tunnelBaseUrl;
    this.locals = new SandboxRegistry(options.provider, { newId: () => `local_${randomToken(12)}`, scopeNoun: 'project' });
  }

  /** Milliseconds since the epoch, strictly increasing (a stable sort key). */
  now(): number {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return this.lastStamp;
  }

  /**
   * Refuses a call without the emulator's token (401) or for another team (403), as Vercel does.
   * The SDK sends `Authorization: Bearer <token>` and `?teamId=` on every call.
   */
  checkAuth(request: VercelRequest): void {
    const header = request.headers.authorization;
    if (header !== `Bearer ${this.token}`) {
      throw new HttpError(401, 'unauthorized', 'The request is missing an authentication token or the token is invalid');
    }
    const team = request.url.searchParams.get('teamId');
    if (team !== null && team !== this.teamId) {
      throw new HttpError(403, 'forbidden', `Not authorized to access team "${team}"`);
    }
  }

  /** Refuses another project than the emulator's (404, as for a project that does not exist). */
  checkProject(projectId: string | null | undefined): void {
    if (projectId !== undefined && projectId !== null && projectId !== this.projectId) {
      throw new HttpError(404, 'project_not_found', `Project "${projectId}" not found`);
    }
  }

  /** A sandbox by name; 404 when there is none (or it was deleted). */
  sandbox(name: string): VercelSandbox {
    const found = this.sandboxes.get(name);
    if (!found || found.deleted) throw new HttpError(404, 'not_found', `Sandbox "${name}" not found`);
    return found;
  }

  /** A session by id; 404 when it never existed. */
  session(id: string): VercelSession {
    const found = this.sessions.get(id);
    if (!found) throw new HttpError(404, 'not_found', `Session "${id}" not found`);
    return found;
  }

  /**
   * The running session a command or file call is for, with its local sandbox. A stopped one is
   * Vercel's 410 (`sandbox_stopped`), stopping and snapshotting ones its 422s: the SDK resumes
   * the sandbox on each of them and retries the call.
   */
  runningSession(id: string): VercelSession & { entry: RegisteredSandbox<LocalSandbox, undefined> } {
    const session = this.session(id);
    if (session.status === 'stopping') throw new HttpError(422, 'sandbox_stopping', `Session ${id} is stopping`);
    if (session.status === 'snapshotting') throw new HttpError(422, 'sandbox_snapshotting', `Session ${id} is being snapshotted`);
    if (session.status !== 'running' || !session.entry || session.entry.end) {
      throw new HttpError(410, 'sandbox_stopped', `Session ${id} is ${session.status === 'running' ? 'gone' : session.status}`);
    }
    return session as VercelSession & { entry: RegisteredSandbox<LocalSandbox, undefined> };
  }

  /**
   * Runs `work` against a session's local sandbox. When it fails (or `failed` says its outcome is
   * a failure) because the session stopped meanwhile, the answer is Vercel's 410, which the SDK
   * meets with a resume, not the local sandbox's own error.
   */
  async whileRunning<T>(session: VercelSession, work: () => Promise<T>, failed: (value: T) => boolean = () => false): Promise<T> {
    const ended = () => session.status !== 'running' || !session.entry || session.entry.end !== undefined;
    const stopped = () => new HttpError(410, 'sandbox_stopped', `Session ${session.id} stopped during the call`);
    let value: T;
    try {
      value = await work();
    } catch (error) {
      if (!(error instanceof HttpError) && ended()) throw stopped();
      throw error;
    }
    if (failed(value) && ended()) throw stopped();
    return value;
  }

  current(sandbox: VercelSandbox): VercelSession {
    return sandbox.sessions[sandbox.sessions.length - 1]!;
  }

  // ---- sessions ------------------------------------------------------------------------------

  /**
   * Starts a session of `sandbox` from `snapshot` (a resume or a create from a snapshot) or from
   * its image. Resolves once its local sandbox runs. A failure marks the session `failed`.
   */
  async startSession(sandbox: VercelSandbox, snapshot: VercelSnapshot | undefined): Promise<VercelSession> {
    const requestedAt = this.now();
    const localNetwork = planLocalNetwork(sandbox.networkPolicy, 'sandbox creation');
    const session: VercelSession = {
      id: `sbx_${randomToken(24)}`,
      sandbox,
      status: 'pending',
      requestedAt,
      startedAt: undefined,
      requestedStopAt: undefined,
      stoppedAt: undefined,
      snapshottedAt: undefined,
      updatedAt: requestedAt,
      timeout: sandbox.timeout,
      vcpus: sandbox.vcpus,
      memory: sandbox.memory,
      runtime: sandbox.image.runtime,
      sourceSnapshotId: snapshot?.id,
      networkPolicy: sandbox.networkPolicy,
      localNetwork,
      entry: undefined,
      routes: sandbox.ports.map((port) => ({ port, subdomain: this.newSubdomain() })),
      commands: new Map(),
      timer: undefined,
      stopping: undefined,
    };
    sandbox.sessions.push(session);
    this.sessions.set(session.id, session);
    for (const route of session.routes) this.subdomains.set(route.subdomain, { session, port: route.port });
    const options: CreateSandboxOptions = {
      image: snapshot ? snapshot.local : sandbox.image.localImage,
      network: localNetwork,
      ports: sandbox.ports,
      workdir: defaultCwd,
      // The emulator ends the session itself (its timer); this is a backstop for a lost timer.
      timeoutMs: maxTimeoutMs,
    };
    try {
      session.entry = await this.locals.create(options, { data: () => undefined });
    } catch (error) {
      session.status = 'failed';
      session.updatedAt = sandbox.statusUpdatedAt = this.now();
      throw error;
    }
    if (snapshot) snapshot.lastUsedAt = this.now();
    session.status = 'running';
    session.startedAt = session.updatedAt = sandbox.statusUpdatedAt = this.now();
    this.armTimer(session);
    // A local sandbox that ends by itself (its backstop, a crash) ends the session with it.
    void session.entry.ended.then(() => {
      if (session.status === 'running') {
        session.status = 'stopped';
        session.stoppedAt = session.updatedAt = sandbox.statusUpdatedAt = this.now();
        this.clearTimer(session);
      }
    });
    return session;
  }

  /** (Re)arms the session's stop at `startedAt + timeout`. */
  armTimer(session: VercelSession): void {
    this.clearTimer(session);
    const due = (session.startedAt ?? session.requestedAt) + session.timeout - Date.now();
    session.timer = setTimeout(() => void this.stopSession(session, 'auto').catch(() => undefined), Math.max(0, due));
    session.timer.unref();
  }

  clearTimer(session: VercelSession): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = undefined;
  }

  /**
   * Stops a session: `auto` (a stop or its timeout) snapshots a persistent sandbox first,
   * `manual` (a snapshot call) always does and answers that snapshot. Idempotent: a stopped
   * session stays as it is, and concurrent stops share one.
   */
  async stopSession(session: VercelSession, kind: 'auto' | 'manual', expiration?: number): Promise<VercelSnapshot | undefined> {
    if (session.stopping) {
      await session.stopping;
      return undefined;
    }
    if (session.status !== 'running' || !session.entry) return undefined;
    const entry = session.entry;
    const sandbox = session.sandbox;
    const snapshotIt = kind === 'manual' || sandbox.persistent;
    let taken: VercelSnapshot | undefined;
    session.status = kind === 'manual' ? 'snapshotting' : 'stopping';
    session.requestedStopAt = session.updatedAt = sandbox.statusUpdatedAt = this.now();
    this.clearTimer(session);
    const work = (async () => {
      if (snapshotIt && !entry.end) {
        const local = await entry.local.snapshot();
        taken = this.recordSnapshot(session, local, kind, expiration);
        session.snapshottedAt = this.now();
      }
      await entry.local.terminate().catch(() => undefined);
    })();
    session.stopping = work.then(
      () => undefined,
      () => undefined,
    );
    try {
      await work;
      session.status = 'stopped';
    } catch (error) {
      await entry.local.terminate().catch(() => undefined);
      session.status = 'failed';
      throw error;
    } finally {
      session.stoppedAt = session.updatedAt = sandbox.statusUpdatedAt = this.now();
      for (const route of session.routes) this.subdomains.delete(route.subdomain);
      // Output of a stopped session's commands is not kept (its readers got their error line).
      for (const command of session.commands.values()) void command.ended.then(() => command.history.clear());
    }
    return taken;
  }

  private recordSnapshot(
    session: VercelSession,
    local: SandboxSnapshotRef,
    kind: 'auto' | 'manual',
    expiration: number | undefined,
  ): VercelSnapshot {
    const sandbox = session.sandbox;
    const createdAt = this.now();
    const lifetime = expiration ?? sandbox.keepLastSnapshots?.expiration ?? sandbox.snapshotExpiration ?? defaultSnapshotExpirationMs;
    const snapshot: VercelSnapshot = {
      id: `snap_${randomToken(24)}`,
      sourceSessionId: session.id,
      sandboxName: sandbox.name,
      status: 'created',
      sizeBytes: 0,
      expiresAt: lifetime === 0 ? undefined : createdAt + lifetime,
      createdAt,
      updatedAt: createdAt,
      lastUsedAt: undefined,
      creationMethod: kind,
      parentId: session.sourceSnapshotId,
      local,
    };
    this.snapshots.set(snapshot.id, snapshot);
    sandbox.currentSnapshotId = snapshot.id;
    this.evictSnapshots(sandbox);
    return snapshot;
  }

  /** `keepLastSnapshots`: only the newest `count` snapshots of the sandbox stay. */
  private evictSnapshots(sandbox: VercelSandbox): void {
    const keep = sandbox.keepLastSnapshots;
    if (!keep) return;
    const own = [...this.snapshots.values()]
      .filter((snapshot) => snapshot.sandboxName === sandbox.name && snapshot.status === 'created')
      .sort((a, b) => b.createdAt - a.createdAt);
    for (const evicted of own.slice(keep.count)) {
      if (keep.deleteEvicted !== false) void this.deleteSnapshot(evicted);
    }
  }

  /** Marks a snapshot deleted and removes its local snapshot. Idempotent. */
  async deleteSnapshot(snapshot: VercelSnapshot): Promise<void> {
    if (snapshot.status === 'deleted') return;
    snapshot.status = 'deleted';
    snapshot.updatedAt = this.now();
    await this.provider.deleteSnapshot(snapshot.local).catch(() => undefined);
  }

  /** A snapshot that can be started from; 404 unknown, 410 `snapshot_not_found` deleted or expired. */
  usableSnapshot(id: string): VercelSnapshot {
    const snapshot = this.snapshots.get(id);
    if (!snapshot) throw new HttpError(404, 'not_found', `Snapshot "${id}" not found`);
    if (snapshot.status !== 'created' || (snapshot.expiresAt !== undefined && snapshot.expiresAt < Date.now())) {
      throw new HttpError(410, 'snapshot_not_found', `Snapshot "${id}" was deleted or expired`);
    }
    return snapshot;
  }

  /**
   * The sandbox's running session, or a new one (a resume: from its current snapshot when it is
   * persistent, else from its image). Concurrent resumes share one.
   */
  async resume(sandbox: VercelSandbox): Promise<{ session: VercelSession; resumed: boolean }> {
    const current = this.current(sandbox);
    if (current.status === 'running' || current.status === 'pending') return { session: current, resumed: false };
    if (current.stopping) await current.stopping;
    if (sandbox.deleted) throw new HttpError(404, 'not_found', `Sandbox "${sandbox.name}" not found`);
    if (!sandbox.resuming) {
      sandbox.resuming = (async () => {
        const snapshot = sandbox.persistent && sandbox.currentSnapshotId ? this.usableSnapshot(sandbox.currentSnapshotId) : undefined;
        return this.startSession(sandbox, snapshot);
      })().finally(() => (sandbox.resuming = undefined));
    }
    return { session: await sandbox.resuming, resumed: true };
  }

  newSubdomain(): string {
    return `sb-${randomToken(14).toLowerCase()}`;
  }

  /** Stops every session and removes every local snapshot the emulator made. */
  async close(): Promise<void> {
    for (const session of this.sessions.values()) this.clearTimer(session);
    await this.locals.terminateAll();
    await Promise.all([...this.snapshots.values()].map((snapshot) => this.deleteSnapshot(snapshot)));
  }

  // ---- wire shapes -----------------------------------------------------------------------------

  sessionBody(session: VercelSession): Record<string, unknown> {
    const ended = session.stoppedAt !== undefined && session.startedAt !== undefined;
    return {
      id: session.id,
      memory: session.memory,
      vcpus: session.vcpus,
      region,
      runtime: session.runtime,
      timeout: session.timeout,
      status: session.status,
      requestedAt: session.requestedAt,
      startedAt: session.startedAt,
      requestedStopAt: session.requestedStopAt,
      stoppedAt: session.stoppedAt,
      duration: ended ? session.stoppedAt! - session.startedAt! : undefined,
      sourceSnapshotId: session.sourceSnapshotId,
      snapshottedAt: session.snapshottedAt,
      createdAt: session.requestedAt,
      cwd: defaultCwd,
      updatedAt: session.updatedAt,
      networkPolicy: apiPolicy(session.networkPolicy),
    };
  }

  sandboxBody(sandbox: VercelSandbox): Record<string, unknown> {
    const current = this.current(sandbox);
    const durations = sandbox.sessions
      .filter((session) => session.startedAt !== undefined)
      .map((session) => (session.stoppedAt ?? Date.now()) - session.startedAt!);
    return {
      name: sandbox.name,
      persistent: sandbox.persistent,
      region,
      vcpus: sandbox.vcpus,
      memory: sandbox.memory,
      runtime: sandbox.image.runtime,
      image: sandbox.image.image,
      timeout: sandbox.timeout,
      networkPolicy: apiPolicy(sandbox.networkPolicy),
      totalDurationMs: durations.reduce((sum, value) => sum + value, 0),
      createdAt: sandbox.createdAt,
      updatedAt: sandbox.updatedAt,
      currentSessionId: current.id,
      currentSnapshotId: sandbox.currentSnapshotId,
      status: current.status,
      statusUpdatedAt: sandbox.statusUpdatedAt,
      cwd: defaultCwd,
      tags: sandbox.tags,
      snapshotExpiration: sandbox.snapshotExpiration,
      keepLastSnapshots: sandbox.keepLastSnapshots,
    };
  }

  routesBody(session: VercelSession): Array<Record<string, unknown>> {
    const base = new URL(this.tunnelBaseUrl);
    return session.routes.map((route) => ({
      url: `${base.protocol}//${route.subdomain}.${base.host}`,
      subdomain: route.subdomain,
      port: route.port,
    }));
  }

  snapshotBody(snapshot: VercelSnapshot): Record<string, unknown> {
    return {
      id: snapshot.id,
      sourceSessionId: snapshot.sourceSessionId,
      region,
      regions: [region],
      status: snapshot.status,
      sizeBytes: snapshot.sizeBytes,
      expiresAt: snapshot.expiresAt,
      createdAt: snapshot.createdAt,
      updatedAt: snapshot.updatedAt,
      lastUsedAt: snapshot.lastUsedAt,
      creationMethod: snapshot.creationMethod,
      parentId: snapshot.parentId,
    };
  }

  /** `{ sandbox, session, routes }` of a sandbox's current session. */
  sandboxAndSession(sandbox: VercelSandbox, resumed?: boolean): Record<string, unknown> {
    const session = this.current(sandbox);
    return {
      sandbox: this.sandboxBody(sandbox),
      session: this.sessionBody(session),
      routes: this.routesBody(session),
      ...(resumed === undefined ? {} : { resumed }),
    };
  }
}
