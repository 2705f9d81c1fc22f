import { SandboxCapabilityUnsupportedError, SandboxProviderError } from '../errors/index.js';

export interface OptionalPeerOptions<Module> {
  /** `SandboxProvider.id` of the adapter that needs the package; also names it in the message as `sandport/<provider>`. */
  provider?: string;
  /** Who needs the package, as the message says it. @default `sandport/${provider}`, or `sandport` without a provider */
  neededBy?: string;
  /** The shell line that installs a supported version. @default `npm install <packageName>` */
  installLine?: string;
  /**
   * The import itself, written `() => import('name')` so that bundlers and type inference see a
   * literal specifier. @default `() => import(packageName)`
   */
  load?: () => Promise<Module>;
}

/**
 * Imports an optional peer dependency (a provider SDK) on first need, so that importing an adapter
 * never fails for want of it.
 *
 * Throws `SandboxCapabilityUnsupportedError` with capability `peer:<packageName>` when the package
 * is not installed; the message names the package and the line that installs it. When the package
 * is installed but fails to load (a missing dependency of its own, a syntax error, a bad
 * `exports` map), throws `SandboxProviderError` with the loader's error as `cause`: reinstalling
 * the peer would not help there, so the two must not look alike. Not retryable. Idempotent: a
 * loaded module is cached by the runtime, and a later call after an install succeeds.
 */
export async function loadOptionalPeer<Module = unknown>(packageName: string, options: OptionalPeerOptions<Module>): Promise<Module> {
  const neededBy = options.neededBy ?? (options.provider === undefined ? 'sandport' : `sandport/${options.provider}`);
  const load = options.load ?? (() => import(packageName) as Promise<Module>);
  try {
    return await load();
  } catch (error) {
    if (isMissingPackage(error, packageName)) {
      throw new SandboxCapabilityUnsupportedError({
        message: `${neededBy} needs the optional peer dependency "${packageName}": ${options.installLine ?? `npm install ${packageName}`}`,
        capability: `peer:${packageName}`,
        provider: options.provider,
        cause: error,
      });
    }
    throw new SandboxProviderError({
      message: `${neededBy} could not load "${packageName}", which is installed but failed to load: ${error instanceof Error ? error.message : String(error)}`,
      provider: options.provider,
      cause: error,
    });
  }
}

/**
 * True when the loader could not find the package itself. Node's messages quote the bare
 * specifier (`Cannot find package 'x' imported from …` from import, `Cannot find module 'x'`
 * from require); a file missing inside an installed package, or a dependency of the package that
 * is missing, is quoted as a path or another name, and is a broken install instead.
 */
function isMissingPackage(error: unknown, packageName: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  return typeof message === 'string' && (message.includes(`'${packageName}'`) || message.includes(`"${packageName}"`));
}
