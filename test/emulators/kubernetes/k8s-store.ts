/**
 * The emulator's etcd: every object by resource, namespace and name, one resourceVersion counter
 * for all of them (as etcd's revision), and a bounded log of changes that watches replay from.
 * A watch from a resourceVersion older than the log is a 410 `Expired`, as on a cluster after
 * compaction. Objects go in and out as deep copies, so a handler can never change stored state
 * behind the store's back.
 */
import { randomUUID } from 'node:crypto';
import { alreadyExists, KubeStatusError, notFound } from './k8s-status.js';
import type { ResourceType } from './k8s-resources.js';

/** A stored object: plain JSON with `metadata`. */
export type KubeObject = Record<string, unknown> & { metadata: ObjectMeta };

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  generation?: number;
  [key: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: WatchEventType;
  resource: string;
  namespace: string | undefined;
  object: KubeObject;
  /** The object before a MODIFIED change (so a selector watch can tell it started or stopped matching). */
  previous?: KubeObject;
  rv: number;
}

/** Changes kept for watches to resume from, by default. */
export const defaultWatchHistory = 5000;

export function clone<T>(value: T): T {
  return structuredClone(value);
}

function key(resource: string, namespace: string | undefined, name: string): string {
  return `${resource}\0${namespace ?? ''}\0${name}`;
}

const nameAlphabet = 'bcdfghjklmnpqrstvwxz2456789';

export class KubeStore {
  private readonly objects = new Map<string, KubeObject>();
  private readonly log: StoreEvent[] = [];
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private revision = 1;

  /** @param logLength changes kept for watches to resume from */
  constructor(private readonly logLength = defaultWatchHistory) {}

  /** The current resourceVersion (of the newest change). */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /** The oldest resourceVersion a watch may start from. */
  private get oldestWatchable(): number {
    return this.log.length >= this.logLength ? this.log[0]!.rv : 0;
  }

  private emit(event: StoreEvent): void {
    this.log.push(event);
    if (this.log.length > this.logLength) this.log.shift();
    for (const listener of [...this.listeners]) listener(event);
  }

  /**
   * Stores a new object: sets uid, resourceVersion and creationTimestamp, picks a name from
   * `generateName` when none is given. Throws 409 `AlreadyExists` when the name is taken.
   */
  create(type: ResourceType, namespace: string | undefined, object: KubeObject): KubeObject {
    const stored = clone(object);
    const meta = stored.metadata;
    if (!meta.name && meta.generateName) {
      do {
        let suffix = '';
        for (let index = 0; index < 5; index++) suffix += nameAlphabet[Math.floor(Math.random() * nameAlphabet.length)];
        meta.name = `${meta.generateName}${suffix}`;
      } while (this.objects.has(key(type.resource, namespace, meta.name)));
    }
    if (this.objects.has(key(type.resource, namespace, meta.name))) throw alreadyExists(type.resource, meta.name, type.group);
    meta.uid = randomUUID();
    meta.resourceVersion = String(++this.revision);
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (type.namespaced) meta.namespace = namespace;
    else delete meta.namespace;
    delete meta.deletionTimestamp;
    this.objects.set(key(type.resource, namespace, meta.name), stored);
    this.emit({ type: 'ADDED', resource: type.resource, namespace, object: clone(stored), rv: this.revision });
    return clone(stored);
  }

  /** The object, or undefined. */
  find(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.objects.get(key(type.resource, namespace, name));
    return found && clone(found);
  }

  /** The object; a 404 `NotFound` Status otherwise. */
  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const found = this.find(type, namespace, name);
    if (!found) throw notFound(type.resource, name, type.kind, type.group);
    return found;
  }

  /** Objects of a resource, in one namespace or all, in name order (as etcd's key order). */
  list(type: ResourceType, namespace: string | undefined): KubeObject[] {
    const prefix = `${type.resource}\0`;
    return [...this.objects.entries()]
      .filter(([k, object]) => k.startsWith(prefix) && (namespace === undefined || object.metadata.namespace === namespace))
      .map(([, object]) => object)
      .sort(
        (a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name),
      )
      .map(clone);
  }

  /** Every object of every resource (for the garbage collector). */
  all(): Array<{ resource: string; object: KubeObject }> {
    return [...this.objects.entries()].map(([k, object]) => ({ resource: k.split('\0')[0]!, object: clone(object) }));
  }

  /** True when some object has this uid. */
  hasUid(uid: string): boolean {
    for (const object of this.objects.values()) if (object.metadata.uid === uid) return true;
    return false;
  }

  /**
   * Replaces an object with what `change` makes of a copy of it, bumping its resourceVersion.
   * `expectedVersion`, when given, must be the stored one (409 `Conflict` otherwise, as an
   * optimistic-concurrency update on a cluster). A change that returns an identical object is a
   * no-op (no new version, no event), as the API server skips no-op writes.
   */
  update(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    change: (object: KubeObject) => KubeObject,
    expectedVersion?: string,
  ): KubeObject {
    const k = key(type.resource, namespace, name);
    const current = this.objects.get(k);
    if (!current) throw notFound(type.resource, name, type.kind, type.group);
    if (expectedVersion && expectedVersion !== current.metadata.resourceVersion) {
      throw new KubeStatusError(
        'Conflict',
        `Operation cannot be fulfilled on ${type.group ? `${type.resource}.${type.group}` : type.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, kind: type.resource },
      );
    }
    const next = change(clone(current));
    // What the API server keeps whatever the client sent.
    next.metadata = {
      ...next.metadata,
      name,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: current.metadata.resourceVersion,
    };
    if (type.namespaced) next.metadata.namespace = namespace;
    if (current.metadata.deletionTimestamp) next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
    if (JSON.stringify(next) === JSON.stringify(current)) return clone(current);
    next.metadata.resourceVersion = String(++this.revision);
    this.objects.set(k, next);
    this.emit({ type: 'MODIFIED', resource: type.resource, namespace, object: clone(next), previous: clone(current), rv: this.revision });
    return clone(next);
  }

  /** Removes an object for good; the DELETED event carries a new resourceVersion. Returns the last state. */
  remove(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const k = key(type.resource, namespace, name);
    const current = this.objects.get(k);
    if (!current) throw notFound(type.resource, name, type.kind, type.group);
    this.objects.delete(k);
    current.metadata.resourceVersion = String(++this.revision);
    this.emit({ type: 'DELETED', resource: type.resource, namespace, object: clone(current), rv: this.revision });
    return clone(current);
  }

  /**
   * Subscribes to changes of one resource after resourceVersion `since` (replayed from the log
   * first). Throws 410 `Expired` when `since` is older than the log keeps.
   */
  watch(resource: string, since: number, listener: (event: StoreEvent) => void): () => void {
    if (since < this.oldestWatchable - 1) {
      throw new KubeStatusError('Expired', `too old resource version: ${since} (${this.oldestWatchable})`);
    }
    for (const event of this.log) if (event.rv > since && event.resource === resource) listener(event);
    const filtered = (event: StoreEvent) => {
      if (event.resource === resource) listener(event);
    };
    this.listeners.add(filtered);
    return () => this.listeners.delete(filtered);
  }
}
