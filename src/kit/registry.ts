/**
 * An in-process registry of sandboxes, for providers whose lookups (`fromId`, `fromName`, `list`)
 * are answered in this process (the local provider, emulators): ids, unique names reserved for
 * the duration of a create, and the tag filter of `list`.
 */
import { SandboxAlreadyExistsError } from '../errors/index.js';

/** The part of an entry the registry reads. */
export interface RegistryEntry {
  readonly id: string;
  readonly name: string | undefined;
  tags(): Readonly<Record<string, string>>;
}

/** Whether `tags` carries every one of `filter`'s tags. */
export function matchesTags(tags: Readonly<Record<string, string>>, filter: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(filter ?? {}).every(([key, value]) => tags[key] === value);
}

export class SandboxRegistry<Entry extends RegistryEntry> {
  private readonly byId = new Map<string, Entry>();
  private readonly names = new Map<string, string | undefined>();

  constructor(private readonly provider: string) {}

  /**
   * Reserves a unique name before the create does any work; throws `SandboxAlreadyExistsError`
   * when a live sandbox (or a create in progress) holds it. The returned function releases it
   * (call it when the create fails).
   */
  reserveName(name: string | undefined): () => void {
    if (name === undefined) return () => undefined;
    if (this.names.has(name)) {
      throw new SandboxAlreadyExistsError({ message: `A sandbox named ${name} already exists`, provider: this.provider });
    }
    this.names.set(name, undefined);
    return () => {
      if (this.names.get(name) === undefined) this.names.delete(name);
    };
  }

  /** Adds a created sandbox (its name must have been reserved). */
  add(entry: Entry): void {
    this.byId.set(entry.id, entry);
    if (entry.name !== undefined) this.names.set(entry.name, entry.id);
  }

  /** Removes an ended sandbox and frees its name. Idempotent. */
  remove(entry: Entry): void {
    if (this.byId.get(entry.id) !== entry) return;
    this.byId.delete(entry.id);
    if (entry.name !== undefined && this.names.get(entry.name) === entry.id) this.names.delete(entry.name);
  }

  get(id: string): Entry | undefined {
    return this.byId.get(id);
  }

  byName(name: string): Entry | undefined {
    const id = this.names.get(name);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** Live entries carrying every tag of `filter`, in creation order. */
  list(filter?: Readonly<Record<string, string>>): Entry[] {
    return [...this.byId.values()].filter((entry) => matchesTags(entry.tags(), filter));
  }

  get size(): number {
    return this.byId.size;
  }
}
