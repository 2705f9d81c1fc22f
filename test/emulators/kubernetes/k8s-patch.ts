/**
 * The three patch formats the API server takes on PATCH: JSON patch (RFC 6902,
 * client-node's default), JSON merge patch (RFC 7386) and strategic merge patch, served here as a
 * merge patch whose lists of named objects (`containers`, `env`, `volumes`) merge by `name`, the
 * merge key of those lists; other lists are replaced whole. `$patch` directives and server-side
 * apply (`application/apply-patch+yaml`) are not served: a 415 names them.
 */
import { KubeStatusError } from './k8s-status.js';

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function namedList(value: Json): value is Array<Record<string, Json> & { name: string }> {
  return Array.isArray(value) && value.length > 0 && value.every((item) => isObject(item) && typeof item.name === 'string');
}

/** Strategic merge patch, approximated as above. */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$'))
      throw new KubeStatusError('UnsupportedMediaType', `the Kubernetes emulator does not serve the strategic merge directive ${key}`);
    if (value === null) delete result[key];
    else if (namedList(value) && namedList(result[key])) {
      const merged = [...(result[key] as Array<Record<string, Json> & { name: string }>)];
      for (const item of value) {
        const index = merged.findIndex((existing) => existing.name === item.name);
        if (index === -1) merged.push(structuredClone(item));
        else merged[index] = strategicMergePatch(merged[index], item) as Record<string, Json> & { name: string };
      }
      result[key] = merged;
    } else result[key] = strategicMergePatch(result[key], value);
  }
  return result;
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new KubeStatusError('BadRequest', `the JSON patch path "${pointer}" does not start with /`);
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(document: Json, parts: string[], pointer: string): { parent: Record<string, Json> | Json[]; last: string } {
  let current: Json = document;
  for (const part of parts.slice(0, -1)) {
    if (Array.isArray(current)) current = current[Number(part)];
    else if (isObject(current)) current = current[part];
    else current = undefined;
    if (current === undefined) throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
  }
  if (!Array.isArray(current) && !isObject(current))
    throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
  return { parent: current, last: parts[parts.length - 1]! };
}

function getAt(document: Json, pointer: string): Json {
  let current: Json = document;
  for (const part of decodePointer(pointer)) {
    if (Array.isArray(current)) current = current[Number(part)];
    else if (isObject(current)) current = current[part];
    else current = undefined;
  }
  if (current === undefined) throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
  return structuredClone(current);
}

function removeAt(document: Json, pointer: string): void {
  const { parent, last } = parentOf(document, decodePointer(pointer), pointer);
  if (Array.isArray(parent)) {
    const index = Number(last);
    if (!Number.isInteger(index) || index < 0 || index >= parent.length)
      throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
    parent.splice(index, 1);
  } else {
    if (!Object.hasOwn(parent, last))
      throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
    delete parent[last];
  }
}

function addAt(document: Json, pointer: string, value: Json, replace: boolean): Json {
  const parts = decodePointer(pointer);
  if (parts.length === 0) return structuredClone(value);
  const { parent, last } = parentOf(document, parts, pointer);
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length)
      throw new KubeStatusError('Invalid', `the JSON patch index in "${pointer}" is out of range`, undefined, 422);
    if (replace) parent[index] = structuredClone(value);
    else parent.splice(index, 0, structuredClone(value));
  } else {
    if (replace && !Object.hasOwn(parent, last))
      throw new KubeStatusError('Invalid', `the JSON patch path "${pointer}" does not exist`, undefined, 422);
    parent[last] = structuredClone(value);
  }
  return document;
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

/** RFC 6902. A failed `test` is a 422, as on a cluster. */
export function jsonPatch(document: Json, operations: Json): Json {
  if (!Array.isArray(operations)) throw new KubeStatusError('BadRequest', 'a JSON patch is an array of operations');
  let result = structuredClone(document);
  for (const raw of operations as Operation[]) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string')
      throw new KubeStatusError('BadRequest', `a JSON patch operation needs "op" and "path": ${JSON.stringify(raw)}`);
    switch (raw.op) {
      case 'add':
        result = addAt(result, raw.path, raw.value, false);
        break;
      case 'replace':
        result = addAt(result, raw.path, raw.value, true);
        break;
      case 'remove':
        removeAt(result, raw.path);
        break;
      case 'move': {
        const value = getAt(result, raw.from ?? '');
        removeAt(result, raw.from ?? '');
        result = addAt(result, raw.path, value, false);
        break;
      }
      case 'copy':
        result = addAt(result, raw.path, getAt(result, raw.from ?? ''), false);
        break;
      case 'test':
        if (JSON.stringify(getAt(result, raw.path)) !== JSON.stringify(raw.value)) {
          throw new KubeStatusError('Invalid', `the JSON patch test at "${raw.path}" failed`, undefined, 422);
        }
        break;
      default:
        throw new KubeStatusError('BadRequest', `unknown JSON patch operation "${raw.op}"`);
    }
  }
  return result;
}

/** Applies a PATCH body by its content type. */
export function applyPatch(document: Json, patch: Json, contentType: string | undefined): Json {
  const type = (contentType ?? '').split(';')[0]!.trim();
  switch (type) {
    case 'application/json-patch+json':
      return jsonPatch(document, patch);
    case 'application/merge-patch+json':
      return mergePatch(document, patch);
    case 'application/strategic-merge-patch+json':
      return strategicMergePatch(document, patch);
    default:
      throw new KubeStatusError(
        'UnsupportedMediaType',
        `the Kubernetes emulator does not serve the patch type "${type || '(none)'}" (it serves application/json-patch+json, application/merge-patch+json and application/strategic-merge-patch+json)`,
      );
  }
}
