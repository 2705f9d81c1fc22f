import type { Attributes } from '@opentelemetry/api';
import type { WriteFileData } from '../spec/options.js';
import type { FileInfo, Sandbox, SandboxFiles } from '../spec/sandbox.js';
import { inSpan, type Telemetry } from './telemetry-spans.js';

/**
 * `sandbox.files` whose calls make `sandport.files.<method>` spans with `file.path` (and the
 * bytes moved, where known). `watch` is present exactly when the underlying files have it.
 * `readStream` and `watch` spans cover opening the stream or the watch, not its life.
 */
export function instrumentFiles(telemetry: Telemetry, sandbox: Sandbox, base: Attributes): SandboxFiles {
  const files = sandbox.files;
  const span = <T>(method: string, path: string, call: () => Promise<T>, describe?: (value: T) => Attributes) =>
    inSpan(telemetry, `sandport.files.${method}`, { ...base, 'file.path': path }, call, describe);
  const wrapped: SandboxFiles = {
    read: (path, options) =>
      span(
        'read',
        path,
        () => files.read(path, options),
        (bytes) => ({ 'sandport.file.bytes': bytes.byteLength }),
      ),
    readText: (path, options) =>
      span(
        'read_text',
        path,
        () => files.readText(path, options),
        (text) => ({ 'sandport.file.bytes': Buffer.byteLength(text) }),
      ),
    readStream: (path, options) => span('read_stream', path, () => files.readStream(path, options)),
    write: (path, data, options) => {
      const bytes = knownSize(data);
      return span(
        'write',
        path,
        () => files.write(path, data, options),
        () => (bytes === undefined ? {} : { 'sandport.file.bytes': bytes }),
      );
    },
    list: (path, options) =>
      span(
        'list',
        path,
        () => files.list(path, options),
        (entries: FileInfo[]) => ({ 'sandport.file.entries': entries.length }),
      ),
    stat: (path, options) =>
      span(
        'stat',
        path,
        () => files.stat(path, options),
        (info) => ({ 'sandport.file.type': info.type, 'sandport.file.bytes': info.size }),
      ),
    exists: (path, options) =>
      span(
        'exists',
        path,
        () => files.exists(path, options),
        (exists) => ({ 'sandport.file.exists': exists }),
      ),
    mkdir: (path, options) => span('mkdir', path, () => files.mkdir(path, options)),
    remove: (path, options) =>
      span(
        'remove',
        path,
        () => files.remove(path, options),
        () => ({ 'sandport.file.recursive': options?.recursive ?? false }),
      ),
  };
  if (files.watch) {
    const watch = files.watch.bind(files);
    wrapped.watch = (path, options) => span('watch', path, () => watch(path, options));
  }
  return wrapped;
}

/** Bytes a write will carry, when the data says so before it is written (not a stream, and not bad data). */
function knownSize(data: WriteFileData): number | undefined {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) return data.byteLength;
  return undefined;
}
