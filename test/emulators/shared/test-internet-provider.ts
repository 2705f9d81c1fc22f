/**
 * The local provider an emulator runs its sandboxes in when a test asks for the test internet
 * (`testInternet: true`, plain data, so it crosses to a spawned emulator): the provider's egress
 * proxies resolve and dial through `startTestInternet()` (test/egress-internet.ts), so an emulated
 * sandbox's allowlist reaches `allowed.test` and friends, servers opened on loopback by the
 * emulator's own process. Loaded only when asked for (the test internet makes a certificate).
 */
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';

/** A provider on the test internet, and how to close that internet once the sandboxes ended. */
export interface TestInternetProvider {
  readonly provider: LocalSandboxProvider;
  close(): Promise<void>;
}

/** @param options extra hosts (`TestInternetOptions`): plain data, as it comes from a spawned emulator's options. */
export async function localProviderOnTestInternet(options: TestInternetOptions = {}): Promise<TestInternetProvider> {
  const { startTestInternet } = await import('../../egress-internet.js');
  const internet = await startTestInternet(options);
  return { provider: createLocalSandboxProvider({ egressNetwork: internet }), close: () => internet.close() };
}

/**
 * Every name of the test internet (its own and `options.hosts`), for an emulated sandbox whose
 * open internet is the test internet: an allowlist of these is what "everything" reaches there.
 */
export async function testInternetDomains(options: boolean | TestInternetOptions | undefined): Promise<string[]> {
  const { testInternetNames } = await import('../../egress-internet.js');
  const hosts = typeof options === 'object' ? Object.keys(options.hosts ?? {}) : [];
  return [...new Set([...Object.keys(testInternetNames), ...hosts])];
}
