/**
 * File metadata as envd keeps it (envd 0.6.2 and later): an upload's `X-Metadata-<key>` headers
 * become `user.e2b.<key>` extended attributes of the file (keys lower-cased; an upload replaces
 * the whole set, so an overwrite leaves no stale keys), and entries (Stat, ListDir, Move, MakeDir,
 * watch entries) report them as `metadata`. The attributes are set and read inside the sandbox
 * with python3 (the base template has it; `setfattr` is not there).
 *
 * What differs from envd, to keep calls fast: reading a python3 process per entry lookup would
 * slow every Stat, so entries report metadata only in sandboxes where an upload carried some
 * (attributes set out-of-band with setfattr before that are not seen), and uploads without
 * metadata clear stale keys only there too.
 */
import type { E2bSandbox } from './e2b-state.js';
import { HttpError } from './e2b-http.js';

const prefix = 'user.e2b.';
/** The Linux limit on an attribute name (255 bytes) less the prefix. */
const maxKeyBytes = 255 - prefix.length;
/** envd's budget for all of a file's metadata (names with the prefix, plus values). */
const maxTotalBytes = 4096;

const usedKey = 'e2b-fs:metadata-used';

/** Whether any upload in this sandbox carried metadata (see the file's comment). */
export function metadataInUse(sandbox: E2bSandbox): boolean {
  return sandbox.data.extra.get(usedKey) === true;
}

/**
 * The `X-Metadata-*` headers of a request, keys lower-cased; undefined when there are none.
 * Throws 400 as envd does for a key or value it cannot store.
 */
export function metadataFromHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> | undefined {
  let metadata: Record<string, string> | undefined;
  let total = 0;
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.toLowerCase().startsWith('x-metadata-') || raw === undefined) continue;
    const key = name.slice('x-metadata-'.length).toLowerCase();
    if (key === '') continue;
    const value = Array.isArray(raw) ? raw[0]! : raw;
    if (Buffer.byteLength(key) > maxKeyBytes)
      throw new HttpError(400, `invalid metadata: metadata key "${key}" exceeds ${maxKeyBytes} bytes`);
    for (const [label, text] of [
      ['key', key],
      [`value for key "${key}"`, value],
    ] as const) {
      const bytes = Buffer.from(text, 'latin1');
      const bad = bytes.findIndex((byte) => byte < 0x20 || byte > 0x7e);
      if (bad !== -1) {
        throw new HttpError(
          400,
          `invalid metadata: metadata ${label} contains non-printable-ASCII byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at offset ${bad}`,
        );
      }
    }
    total += prefix.length + key.length + value.length;
    (metadata ??= {})[key] = value;
  }
  if (total > maxTotalBytes) throw new HttpError(400, `invalid metadata: total metadata size ${total} exceeds ${maxTotalBytes} bytes`);
  return metadata;
}

// argv: the path, the metadata as JSON. Replaces the file's user.e2b.* set, prints what it holds after.
const writeScript = `import json, os, sys
path, wanted = sys.argv[1], json.loads(sys.argv[2])
for name in os.listxattr(path):
    if name.startswith('${prefix}') and name[len('${prefix}'):] not in wanted:
        os.removexattr(path, name)
for key, value in wanted.items():
    os.setxattr(path, '${prefix}' + key, value.encode())
print(json.dumps({n[len('${prefix}'):]: os.getxattr(path, n).decode('utf-8', 'replace') for n in os.listxattr(path) if n.startswith('${prefix}')}))`;

// argv: paths. Prints {path: {key: value}} for those with metadata; unreadable ones are left out.
const readScript = `import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        names = [n for n in os.listxattr(path) if n.startswith('${prefix}')]
        found = {}
        for name in names:
            try:
                found[name[len('${prefix}'):]] = os.getxattr(path, name).decode('utf-8')
            except (OSError, UnicodeDecodeError):
                pass
        if found:
            out[path] = found
    except OSError:
        pass
print(json.dumps(out))`;

const python = 'command -v python3 >/dev/null 2>&1 || exit 127; exec python3 -c "$@"';

/**
 * Replaces the metadata of the file `path` (all of it: `metadata` undefined clears it) and
 * returns what it holds now (undefined when none). Throws 500 as envd does when it cannot.
 */
export async function writeMetadata(
  sandbox: E2bSandbox,
  path: string,
  metadata: Record<string, string> | undefined,
): Promise<Record<string, string> | undefined> {
  if (metadata) sandbox.data.extra.set(usedKey, true);
  else if (!metadataInUse(sandbox)) return undefined;
  const result = await sandbox.local.run(['/bin/sh', '-c', python, 'metadata', writeScript, path, JSON.stringify(metadata ?? {})]);
  if (result.exitCode === 127) {
    if (!metadata) return undefined;
    throw new HttpError(500, 'error writing file metadata: the E2B emulator sets metadata with python3, which this template lacks');
  }
  if (result.exitCode !== 0) {
    const last = result.stderr.trim().split('\n').at(-1) ?? `exit ${result.exitCode}`;
    if (/ENOSPC|E2BIG|No space/.test(last)) throw new HttpError(507, `not enough space for file metadata: ${last}`);
    // A filesystem without extended attributes (/proc, /sys) keeps the file and drops the metadata, as envd does.
    if (/Operation not supported/.test(last)) return undefined;
    throw new HttpError(500, `error writing file metadata: ${last}`);
  }
  const stored = JSON.parse(result.stdout || '{}') as Record<string, string>;
  return Object.keys(stored).length > 0 ? stored : undefined;
}

/** The metadata of each path that has any (see the file's comment for when it is looked at). */
export async function readMetadata(sandbox: E2bSandbox, paths: readonly string[]): Promise<Map<string, Record<string, string>>> {
  const found = new Map<string, Record<string, string>>();
  if (paths.length === 0 || !metadataInUse(sandbox)) return found;
  const result = await sandbox.local.run(['/bin/sh', '-c', python, 'metadata', readScript, ...paths]);
  if (result.exitCode !== 0) return found;
  for (const [path, metadata] of Object.entries(JSON.parse(result.stdout || '{}') as Record<string, Record<string, string>>)) {
    found.set(path, metadata);
  }
  return found;
}
