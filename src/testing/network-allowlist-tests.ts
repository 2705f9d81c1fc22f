import { SandboxCapabilityUnsupportedError } from '../errors/index.js';
import type { EgressEvent } from '../spec/events.js';
import type { NetworkPolicy } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { eventually, type ConformanceTest, type SuiteContext } from './context.js';

/** How long an allowed connection's `egress` event may trail the close of its connection. */
const eventDelayMs = 10_000;

/** What curl inside the sandbox got: whether it reached the destination, and what it read. */
interface Fetched {
  readonly exitCode: number;
  /** The HTTP status of the final response, 0 when there was none. */
  readonly status: number;
  readonly body: string;
  readonly stderr: string;
}

/**
 * Fetches `url` with curl inside the sandbox. `-k`: the suite tests reachability, not
 * certificates (test internets serve self-signed ones). Bounded, so a dropped packet cannot
 * hang the test; a refusal by a proxy comes back at once.
 */
async function fetchIn(sandbox: Sandbox, url: string, extra: readonly string[] = []): Promise<Fetched> {
  const result = await sandbox.run([
    'curl',
    '-sS',
    '-k',
    '--connect-timeout',
    '10',
    '--max-time',
    '20',
    '-w',
    '\n%{http_code}',
    ...extra,
    url,
  ]);
  const cut = result.stdout.lastIndexOf('\n');
  const status = Number(result.stdout.slice(cut + 1)) || 0;
  return { exitCode: result.exitCode, status, body: result.stdout.slice(0, Math.max(cut, 0)), stderr: result.stderr };
}

/** A 2xx answer from the destination itself. */
const reached = (fetched: Fetched) => fetched.exitCode === 0 && fetched.status >= 200 && fetched.status < 300;

const describeFetch = (fetched: Fetched) =>
  `curl exit ${fetched.exitCode}, status ${fetched.status}, body ${JSON.stringify(fetched.body.slice(0, 200))}, stderr ${JSON.stringify(fetched.stderr.slice(0, 300))}`;

/** `url` with its host replaced by `address` (an IPv6 address gets its brackets). */
function withHost(url: string, address: string): string {
  const parsed = new URL(url);
  parsed.hostname = address.includes(':') ? `[${address}]` : address;
  return parsed.href;
}

const portOf = (url: URL) => Number(url.port || (url.protocol === 'https:' ? 443 : 80));

/**
 * Network allowlists, run where the harness hands the suite destinations the sandbox can reach
 * (`networkTargets`): an allowlisted name is reachable, anything else is refused, live updates
 * change what the next connection reaches, and providers that filter through a proxy of ours
 * report each connection as an `egress` event and leave a program that ignores the proxy with
 * no way out. The client is curl inside the sandbox.
 */
export function networkAllowlistTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  const targets = context.options.networkTargets;
  const unsupported = !targets
    ? 'no networkTargets given (the harness provides reachable destinations, for example from a test internet)'
    : !caps.network.allowDomains
      ? 'provider cannot enforce allowDomains'
      : undefined;
  if (!targets && caps.network.allowDomains) {
    console.warn(`[sandport conformance] ${context.options.name}: skipping network-allowlist.*: ${unsupported}`);
  }
  const allowed = targets ? new URL(targets.allowedUrl) : undefined;
  const denied = targets ? new URL(targets.deniedUrl) : undefined;

  /** A sandbox under `network`, skipping the test when the image has no curl. */
  async function sandboxWith(network: NetworkPolicy, test: ConformanceTest): Promise<Sandbox> {
    const sandbox = await context.create({ network });
    await context.requireCommands(sandbox, ['curl'], test);
    return sandbox;
  }

  /** Every `egress` event of `provider.events` from now until `stop()` (filter by `sandboxId`). */
  function recordEgress(): { events: EgressEvent[]; stop(): void } {
    const events: EgressEvent[] = [];
    const listener = (event: EgressEvent) => events.push(event);
    context.provider.events.on('egress', listener);
    return { events, stop: () => context.provider.events.off('egress', listener) };
  }

  describe('network allowlist', () => {
    context.test(
      'network-allowlist.allowed-name',
      'a name on allowDomains is reachable, and the body is the destination’s (needs curl in the image)',
      async (test) => {
        const sandbox = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
        const fetched = await fetchIn(sandbox, targets!.allowedUrl);
        expect(reached(fetched), describeFetch(fetched)).toBe(true);
        expect(fetched.body).toBe(targets!.allowedBody);
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'network-allowlist.denied-name',
      'a name not on allowDomains is refused, while the allowed one is reached from the same sandbox (needs curl in the image)',
      async (test) => {
        const sandbox = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
        const refused = await fetchIn(sandbox, targets!.deniedUrl);
        expect(reached(refused), describeFetch(refused)).toBe(false);
        // The refusal is the policy's, not a broken network: the allowed name still answers.
        const fetched = await fetchIn(sandbox, targets!.allowedUrl);
        expect(reached(fetched), describeFetch(fetched)).toBe(true);
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'network-allowlist.raw-address',
      'a raw IP address not in allowCidrs is refused, even the address an allowed name resolves to; allowCidrs lets it through (needs curl in the image)',
      async (test) => {
        const address = targets!.allowedAddress;
        if (!address) return test.skip('networkTargets has no allowedAddress');
        const byName = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
        const refused = await fetchIn(byName, withHost(targets!.allowedUrl, address));
        expect(reached(refused), describeFetch(refused)).toBe(false);
        await byName.terminate();
        if (!caps.network.allowCidrs) return;
        const cidr = address.includes(':') ? `${address}/128` : `${address}/32`;
        const byCidr = await sandboxWith({ allowCidrs: [cidr] }, test);
        const fetched = await fetchIn(byCidr, withHost(targets!.allowedUrl, address));
        expect(reached(fetched), describeFetch(fetched)).toBe(true);
        expect(fetched.body).toBe(targets!.allowedBody);
        await byCidr.terminate();
      },
      unsupported,
    );

    context.test(
      'network-allowlist.wildcard',
      'a `*.` entry allows names under it, not the name itself (needs curl in the image)',
      async (test) => {
        if (!targets!.otherAllowedUrl) return test.skip('networkTargets has no otherAllowedUrl');
        const other = new URL(targets!.otherAllowedUrl);
        const parent = other.hostname.split('.').slice(1).join('.');
        if (!parent.includes('.')) return test.skip(`otherAllowedUrl's host ${other.hostname} has no parent domain to wildcard`);
        const sandbox = await sandboxWith({ allowDomains: [`*.${parent}`] }, test);
        const fetched = await fetchIn(sandbox, targets!.otherAllowedUrl);
        expect(reached(fetched), describeFetch(fetched)).toBe(true);
        const outside = await fetchIn(sandbox, targets!.deniedUrl);
        expect(reached(outside), describeFetch(outside)).toBe(false);
        if (allowed!.hostname === parent) {
          const apex = await fetchIn(sandbox, targets!.allowedUrl);
          expect(reached(apex), `*.${parent} must not match ${parent} itself: ${describeFetch(apex)}`).toBe(false);
        }
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'network-allowlist.empty',
      'an empty allowlist allows nothing (needs curl in the image)',
      async (test) => {
        const sandbox = await sandboxWith({ allowDomains: [], allowCidrs: [] }, test);
        for (const url of [targets!.allowedUrl, targets!.deniedUrl]) {
          const fetched = await fetchIn(sandbox, url);
          expect(reached(fetched), `${url}: ${describeFetch(fetched)}`).toBe(false);
        }
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'network-allowlist.update',
      'updateNetwork changes what the next connection may reach; to allow it is made, or refused with nothing changed (needs curl in the image)',
      async (test) => {
        const sandbox = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
        const update = sandbox.updateNetwork!.bind(sandbox);
        expect(reached(await fetchIn(sandbox, targets!.deniedUrl))).toBe(false);

        await update({ allowDomains: [allowed!.hostname, denied!.hostname] });
        const widened = await fetchIn(sandbox, targets!.deniedUrl);
        expect(reached(widened), `after adding ${denied!.hostname}: ${describeFetch(widened)}`).toBe(true);
        // Idempotent: the same policy again is no change.
        await update({ allowDomains: [allowed!.hostname, denied!.hostname] });

        await update('block');
        const blocked = await fetchIn(sandbox, targets!.allowedUrl);
        expect(reached(blocked), `after 'block': ${describeFetch(blocked)}`).toBe(false);

        await update({ allowDomains: [allowed!.hostname] });
        // To 'allow': a provider whose sandbox's network was fixed at create refuses it and changes
        // nothing; one that can open it live (a cloud service's own rules) lets everything out.
        const toAllow = await update('allow').then(
          () => undefined,
          (error: unknown) => error,
        );
        if (toAllow === undefined) {
          const opened = await fetchIn(sandbox, targets!.deniedUrl);
          expect(reached(opened), `after 'allow': ${describeFetch(opened)}`).toBe(true);
        } else {
          expect(
            SandboxCapabilityUnsupportedError.isInstance(toAllow),
            `updateNetwork('allow') is either made or refused with SandboxCapabilityUnsupportedError, not ${String(toAllow)}`,
          ).toBe(true);
          expect((toAllow as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
          const kept = await fetchIn(sandbox, targets!.allowedUrl);
          expect(reached(kept), `the refused update left the allowlist: ${describeFetch(kept)}`).toBe(true);
          expect(reached(await fetchIn(sandbox, targets!.deniedUrl)), 'the refused update opened nothing').toBe(false);
        }
        await sandbox.terminate();
      },
      unsupported ?? (caps.network.update ? undefined : 'provider cannot change a running sandbox’s network (network.update false)'),
    );

    context.test(
      'network-allowlist.proxy-environment',
      'the sandbox’s environment names the egress proxy, upper and lower case, and sandbox.warnings says programs must honour it',
      async () => {
        const sandbox = await context.create({ network: { allowDomains: [allowed!.hostname] } });
        const said = sandbox.warnings.filter((warning) => warning.type === 'unsupported-setting' && warning.setting === 'network');
        expect(said, 'a warning on setting "network" says the allowlist is a proxy').toHaveLength(1);
        const names = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'];
        const printed = await sandbox.run(['env']);
        const env = Object.fromEntries(printed.stdout.split('\n').map((line) => line.split(/=(.*)/s)));
        for (const name of names) expect(env[name], `${name} in the sandbox`).toMatch(/^(http|socks5h?):\/\/.+:\d+/);
        await sandbox.terminate();
      },
      unsupported ?? (caps.network.allowlistViaProxy ? undefined : 'provider filters traffic itself (allowlistViaProxy false)'),
    );

    context.test(
      'network-allowlist.egress-events',
      'each connection is an egress event: denied at once with a reason, allowed with its bytes (needs curl in the image)',
      async (test) => {
        const recorder = recordEgress();
        try {
          const sandbox = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
          const mine = () => recorder.events.filter((event) => event.sandboxId === sandbox.id);
          expect(reached(await fetchIn(sandbox, targets!.allowedUrl))).toBe(true);
          expect(reached(await fetchIn(sandbox, targets!.deniedUrl))).toBe(false);
          const find = (decision: EgressEvent['decision'], host: string) =>
            mine().find((event) => event.decision === decision && event.host === host);
          expect(await eventually(() => find('allowed', allowed!.hostname) !== undefined, eventDelayMs), 'an allowed egress event').toBe(
            true,
          );
          expect(await eventually(() => find('denied', denied!.hostname) !== undefined, eventDelayMs), 'a denied egress event').toBe(true);
          const allowedEvent = find('allowed', allowed!.hostname)!;
          expect(allowedEvent.provider).toBe(context.provider.id);
          expect(allowedEvent.port).toBe(portOf(allowed!));
          expect(allowedEvent.protocol).toBe(allowed!.protocol === 'https:' ? 'connect' : 'http');
          expect(typeof allowedEvent.address, 'the address dialled').toBe('string');
          expect(allowedEvent.reason).toBeUndefined();
          expect(allowedEvent.bytesSent).toBeGreaterThan(0);
          // At least the body came back through the proxy.
          expect(allowedEvent.bytesReceived).toBeGreaterThanOrEqual(targets!.allowedBody.length);
          expect(allowedEvent.durationMs).toBeGreaterThanOrEqual(0);
          const deniedEvent = find('denied', denied!.hostname)!;
          expect(deniedEvent.port).toBe(portOf(denied!));
          expect(typeof deniedEvent.reason, 'why it was denied').toBe('string');
          expect(deniedEvent.reason!.length).toBeGreaterThan(0);
          expect(deniedEvent.bytesSent).toBe(0);
          expect(deniedEvent.bytesReceived).toBe(0);
          expect(mine().every((event) => event.provider === context.provider.id)).toBe(true);
          await sandbox.terminate();
        } finally {
          recorder.stop();
        }
      },
      unsupported ?? (caps.network.allowlistViaProxy ? undefined : 'provider filters traffic itself (allowlistViaProxy false)'),
    );

    context.test(
      'network-allowlist.ignores-proxy',
      'a program that ignores the proxy environment reaches nothing, not even an allowed destination (needs curl in the image)',
      async (test) => {
        const sandbox = await sandboxWith({ allowDomains: [allowed!.hostname] }, test);
        const recorder = recordEgress();
        try {
          // The control: through the proxy, the name is reached.
          expect(reached(await fetchIn(sandbox, targets!.allowedUrl))).toBe(true);
          const urls = [targets!.allowedUrl, ...(targets!.allowedAddress ? [withHost(targets!.allowedUrl, targets!.allowedAddress)] : [])];
          for (const url of urls) {
            const direct = await fetchIn(sandbox, url, ['--noproxy', '*']);
            expect(reached(direct), `${url} without the proxy: ${describeFetch(direct)}`).toBe(false);
          }
          const resolved = await sandbox.run(['/bin/sh', '-c', `getent hosts ${allowed!.hostname}; echo rc=$?`]);
          expect(resolved.stdout.trim(), 'the sandbox resolves no names itself').toMatch(/^rc=[1-9]\d*$/);
          // Only the control connection went through the proxy.
          await eventually(() => recorder.events.some((event) => event.sandboxId === sandbox.id), eventDelayMs);
          expect(recorder.events.filter((event) => event.sandboxId === sandbox.id)).toHaveLength(1);
        } finally {
          recorder.stop();
        }
        await sandbox.terminate();
      },
      unsupported ?? (caps.network.allowlistViaProxy ? undefined : 'provider filters traffic itself (allowlistViaProxy false)'),
    );
  });
}
