/**
 * Host memory as the bounded-memory tests read it. A stream read slowly leaves garbage behind (the
 * chunks already consumed), and RSS counts it until the collector runs: without a collection
 * before each sample, a client that holds nothing can look as if it buffered tens of MiB. The
 * collector is reached without `--expose-gc` through V8's flag API, so the suite measures the same
 * way under any runner.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;

function collector(): () => void {
  if (collect) return collect;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return (collect = exposed);
  try {
    setFlagsFromString('--expose-gc');
    const fromContext = runInNewContext('gc') as unknown;
    collect = typeof fromContext === 'function' ? (fromContext as () => void) : () => undefined;
  } catch {
    collect = () => undefined;
  }
  return collect;
}

/** This process's resident set size in bytes, after a full collection when one can be triggered. */
export function residentBytes(): number {
  collector()();
  return process.memoryUsage().rss;
}
