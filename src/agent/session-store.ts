import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { SignalOptions } from '../spec/options.js';
import { checkRelativePath } from './session-files.js';

/** One file of a saved session, relative to the CLI's project directory. */
export interface SessionFile {
  /** `<sessionId>.jsonl` (the transcript) or `<sessionId>/subagents/agent-….jsonl`, `<sessionId>/tool-results/…`. */
  readonly path: string;
  readonly data: Uint8Array;
}

/** What a store keeps next to the files of a session. */
export interface SessionMetadata {
  readonly sessionId: string;
  /** Sandbox working directory the session ran in (informational: resume may use another). */
  readonly cwd: string;
  /** Milliseconds since the Unix epoch of this save. */
  readonly updatedAt: number;
  /** Cumulative cost of the session so far, in US dollars (an estimate, from the CLI). */
  readonly totalCostUsd: number;
  /** Completed turns so far. */
  readonly turns: number;
  /** Session this one was forked from, when it was. */
  readonly forkedFrom?: string;
  /** `claude --version` of the CLI that wrote it, when known. */
  readonly cliVersion?: string;
}

/** Everything needed to resume a session in a new sandbox. */
export interface SessionSnapshot {
  readonly metadata: SessionMetadata;
  readonly files: readonly SessionFile[];
}

/**
 * Where `AgentSession` keeps sessions so that they outlive their sandbox. Small on purpose: a
 * database row or an object-store prefix per session is enough. Implementations must make
 * `save` atomic per session (a reader sees the old or the new snapshot, never a mix).
 */
export interface SessionStore {
  /** Replaces the stored snapshot of `snapshot.metadata.sessionId`. Idempotent. */
  save(snapshot: SessionSnapshot, options?: SignalOptions): Promise<void>;
  /** The stored snapshot, or `undefined` when there is none. Idempotent. */
  load(sessionId: string, options?: SignalOptions): Promise<SessionSnapshot | undefined>;
  /** Removes a session; a missing one is not an error. Idempotent. */
  delete?(sessionId: string, options?: SignalOptions): Promise<void>;
  /** Metadata of every stored session, newest first. */
  list?(options?: SignalOptions): Promise<SessionMetadata[]>;
}

const sessionIdPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

function checkSessionId(sessionId: string): void {
  if (typeof sessionId !== 'string' || !sessionIdPattern.test(sessionId)) {
    throw new SandboxInvalidArgumentError({ message: `Not a session id: ${JSON.stringify(sessionId)}`, argument: 'sessionId' });
  }
}

/**
 * A `SessionStore` in a host directory: `<root>/<sessionId>/metadata.json` and
 * `<root>/<sessionId>/files/<path>`. A save is written aside and renamed into place.
 */
export class DirectorySessionStore implements SessionStore {
  constructor(readonly root: string) {}

  async save(snapshot: SessionSnapshot, options: SignalOptions = {}): Promise<void> {
    const { sessionId } = snapshot.metadata;
    checkSessionId(sessionId);
    options.signal?.throwIfAborted();
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const staging = join(this.root, `.staging-${sessionId}-${randomBytes(4).toString('hex')}`);
    try {
      for (const file of snapshot.files) {
        checkRelativePath(file.path);
        const target = join(staging, 'files', file.path);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, file.data);
      }
      await mkdir(staging, { recursive: true });
      await writeFile(join(staging, 'metadata.json'), JSON.stringify(snapshot.metadata));
      options.signal?.throwIfAborted();
      const final = join(this.root, sessionId);
      const old = join(this.root, `.old-${sessionId}-${randomBytes(4).toString('hex')}`);
      await rename(final, old).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      await rename(staging, final);
      await rm(old, { recursive: true, force: true });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  async load(sessionId: string, options: SignalOptions = {}): Promise<SessionSnapshot | undefined> {
    checkSessionId(sessionId);
    options.signal?.throwIfAborted();
    const base = join(this.root, sessionId);
    const metadataText = await readFile(join(base, 'metadata.json'), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (metadataText === undefined) return undefined;
    const files: SessionFile[] = [];
    const entries = await readdir(join(base, 'files'), { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const absolute = join(entry.parentPath, entry.name);
      files.push({ path: absolute.slice(join(base, 'files').length + 1), data: new Uint8Array(await readFile(absolute)) });
    }
    return { metadata: JSON.parse(metadataText) as SessionMetadata, files };
  }

  async delete(sessionId: string, options: SignalOptions = {}): Promise<void> {
    checkSessionId(sessionId);
    options.signal?.throwIfAborted();
    await rm(join(this.root, sessionId), { recursive: true, force: true });
  }

  async list(options: SignalOptions = {}): Promise<SessionMetadata[]> {
    options.signal?.throwIfAborted();
    const found: SessionMetadata[] = [];
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      if (!sessionIdPattern.test(name)) continue;
      const text = await readFile(join(this.root, name, 'metadata.json'), 'utf8').catch(() => undefined);
      if (text) found.push(JSON.parse(text) as SessionMetadata);
    }
    return found.sort((a, b) => b.updatedAt - a.updatedAt);
  }
}

/** A `SessionStore` in this process's memory: for tests and for sessions that need not outlive the process. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, SessionSnapshot>();

  async save(snapshot: SessionSnapshot, options: SignalOptions = {}): Promise<void> {
    checkSessionId(snapshot.metadata.sessionId);
    options.signal?.throwIfAborted();
    this.sessions.set(snapshot.metadata.sessionId, {
      metadata: { ...snapshot.metadata },
      files: snapshot.files.map((file) => ({ path: file.path, data: file.data.slice() })),
    });
  }

  async load(sessionId: string, options: SignalOptions = {}): Promise<SessionSnapshot | undefined> {
    options.signal?.throwIfAborted();
    return this.sessions.get(sessionId);
  }

  async delete(sessionId: string, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    this.sessions.delete(sessionId);
  }

  async list(options: SignalOptions = {}): Promise<SessionMetadata[]> {
    options.signal?.throwIfAborted();
    return [...this.sessions.values()].map((snapshot) => snapshot.metadata).sort((a, b) => b.updatedAt - a.updatedAt);
  }
}
