import { SandboxCapabilityUnsupportedError, SandboxInvalidArgumentError } from '../errors/index.js';
import { requireCapability } from '../kit/capability.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox, SandboxProcess } from '../spec/sandbox.js';
import type { SandboxCapabilities } from '../spec/sandbox-capabilities.js';
import type { SandboxWarning } from '../spec/events.js';
import { eventually, type SuiteContext } from './context.js';

type FlagPaths<T, Prefix extends string = ''> = {
  [K in keyof T & string]: T[K] extends boolean | string | number ? `${Prefix}${K}` : FlagPaths<T[K], `${Prefix}${K}.`>;
}[keyof T & string];

/** Every leaf of `SandboxCapabilities`, as a dotted path (`'exec.stdin'`, `'timeouts.maxLifetimeMs'`). */
export type CapabilityFlag = FlagPaths<SandboxCapabilities>;

/**
 * Where the suite checks each flag (test ids). Typed as a record over every flag, so adding a
 * flag to `SandboxCapabilities` fails the typecheck here until the suite covers it.
 */
export const capabilityCoverage: Readonly<Record<CapabilityFlag, string>> = {
  isolation: 'capabilities.well-formed (a description, no behaviour to assert)',
  'exec.stdin': 'capabilities.refuse-exec.stdin; exec.stdin-eof, exec.run-stdin',
  'exec.kill': 'capabilities.refuse-exec.kill; exec.kill',
  'exec.signals': 'capabilities.refuse-exec.signals; exec.kill-signal',
  'exec.stdinEof': 'capabilities.refuse-exec.stdinEof; exec.stdin-eof',
  'exec.streaming': 'exec.streaming (skipped when false)',
  'exec.separateStderr': 'exec.stderr-apart, exec.stderr-merged',
  'exec.pty': 'capabilities.refuse-exec.pty; pty.*',
  'files.watch': 'capabilities.method-files.watch; watch.*',
  entrypointStdio: 'capabilities.method-entrypoint-stdio; entrypoint.*',
  tunnels: 'capabilities.refuse-tunnels; tunnels.http-and-websocket',
  tunnelsTls: 'capabilities.tunnels-tls',
  snapshot: 'capabilities.method-snapshot; snapshots.round-trip',
  deleteSnapshot: 'capabilities.method-deleteSnapshot; snapshots.round-trip',
  hostRoutes: 'capabilities.method-openHostRoute',
  tags: 'capabilities.refuse-tags, capabilities.tags-round-trip; lookup.tags-list',
  fromName: 'capabilities.method-fromName; lookup.from-name',
  list: 'capabilities.method-list; lookup.tags-list',
  crossProcessLookup: 'capabilities.well-formed (needs a second process running the adapter: test it in the adapter)',
  extendTimeout: 'capabilities.method-extendTimeout; lifecycle.extend-timeout',
  pause: 'capabilities.method-pause, capabilities.method-resume; pause.*',
  'network.block': 'capabilities.refuse-network.block; network.block',
  'network.allowCidrs': 'capabilities.refuse-network.allowCidrs (enforcement: test it in the adapter)',
  'network.allowDomains': 'capabilities.refuse-network.allowDomains (enforcement: test it in the adapter)',
  'network.allowlistViaProxy': 'network-allowlist.* (the proxy environment is set)',
  'network.update': 'capabilities.method-updateNetwork; network-allowlist.update',
  'limits.cpu': 'capabilities.refuse-limits.cpu, capabilities.limits-accepted',
  'limits.memory': 'capabilities.refuse-limits.memory, capabilities.limits-accepted (enforcement: test it in the adapter)',
  'limits.pids': 'capabilities.refuse-limits.pids, capabilities.limits-accepted (enforcement: test it in the adapter)',
  'timeouts.lifetime': 'capabilities.refuse-timeouts.lifetime; lifecycle.lifetime-timeout, events.lifetime-terminated',
  'timeouts.idle': 'capabilities.refuse-timeouts.idle; lifecycle.idle-timeout',
  'timeouts.maxLifetimeMs': 'capabilities.max-lifetime',
  volumes: 'capabilities.refuse-volumes (mounting: test it in the adapter, sources are provider-specific)',
  gpu: 'capabilities.refuse-gpu',
  'images.reference': 'capabilities.refuse-images.reference; every test (the default image)',
  'images.build': 'capabilities.refuse-images.build',
  'images.snapshot': 'capabilities.refuse-images.snapshot; snapshots.round-trip',
};

function flagValue(capabilities: SandboxCapabilities, flag: CapabilityFlag): unknown {
  return flag.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], capabilities);
}

/** A call that must be refused with `SandboxCapabilityUnsupportedError` naming `flag` when the flag is false. */
interface Refusal {
  flag: CapabilityFlag;
  /** The call, for the title. */
  call: string;
  attempt: (sandbox: () => Sandbox) => Promise<void>;
}

export function capabilityTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  const refused = (options: CreateSandboxOptions, flag: CapabilityFlag) => context.expectUnsupported(context.create(options), flag);
  // A started command for the exec refusals; killed afterwards where the provider can.
  const withProcess = async (sandbox: () => Sandbox, use: (process: SandboxProcess) => Promise<void>) => {
    const process = await sandbox().exec(['sleep', '30']);
    try {
      await use(process);
    } finally {
      if (caps.exec.kill) await process.kill().catch(() => undefined);
    }
  };
  const createRefusal = (flag: CapabilityFlag, call: string, options: CreateSandboxOptions): Refusal => ({
    flag,
    call,
    attempt: () => refused(options, flag),
  });
  const baseImage = typeof context.options.createOptions?.image === 'string' ? context.options.createOptions.image : 'debian:bookworm-slim';

  const refusals: Refusal[] = [
    createRefusal('gpu', "create({ gpu: 'any' })", { gpu: 'any' }),
    createRefusal('network.block', "create({ network: 'block' })", { network: 'block' }),
    createRefusal('network.allowCidrs', 'create({ network: { allowCidrs } })', { network: { allowCidrs: ['192.0.2.0/24'] } }),
    createRefusal('network.allowDomains', 'create({ network: { allowDomains } })', { network: { allowDomains: ['example.com'] } }),
    createRefusal('limits.cpu', 'create({ cpu })', { cpu: 1 }),
    createRefusal('limits.memory', 'create({ memoryMiB })', { memoryMiB: 512 }),
    createRefusal('limits.pids', 'create({ pidsLimit })', { pidsLimit: 256 }),
    createRefusal('timeouts.lifetime', 'create({ timeoutMs })', { timeoutMs: 60_000 }),
    createRefusal('timeouts.idle', 'create({ idleTimeoutMs })', { idleTimeoutMs: 60_000 }),
    createRefusal('images.reference', "create({ image: 'reference' })", { image: baseImage }),
    createRefusal('images.build', 'create({ image: { base, commands } })', { image: { base: baseImage, commands: ['true'] } }),
    {
      flag: 'images.snapshot',
      call: 'create({ image: snapshotRef })',
      attempt: () =>
        refused({ image: { type: 'snapshot', provider: context.provider.id, id: `suite-missing-${context.runId}` } }, 'images.snapshot'),
    },
    {
      flag: 'tunnels',
      call: 'create({ ports }) and tunnels()',
      attempt: async (sandbox) => {
        await refused({ ports: [8080] }, 'tunnels');
        await context.expectUnsupported(sandbox().tunnels(), 'tunnels');
      },
    },
    {
      flag: 'tags',
      call: 'setTags()',
      attempt: (sandbox) => context.expectUnsupported(sandbox().setTags({ suite: context.runId }), 'tags'),
    },
    {
      flag: 'exec.stdin',
      call: 'a write to stdin',
      attempt: (sandbox) =>
        withProcess(sandbox, (process) =>
          context.expectUnsupported(process.stdin.getWriter().write(new TextEncoder().encode('x\n')), 'exec.stdin'),
        ),
    },
    {
      flag: 'exec.stdinEof',
      call: 'stdin.close()',
      attempt: (sandbox) =>
        withProcess(sandbox, (process) => context.expectUnsupported(process.stdin.getWriter().close(), 'exec.stdinEof')),
    },
    {
      flag: 'exec.kill',
      call: 'kill()',
      attempt: (sandbox) => withProcess(sandbox, (process) => context.expectUnsupported(process.kill(), 'exec.kill')),
    },
    {
      flag: 'exec.signals',
      call: "kill('SIGTERM')",
      attempt: (sandbox) => withProcess(sandbox, (process) => context.expectUnsupported(process.kill('SIGTERM'), 'exec.signals')),
    },
    {
      flag: 'exec.pty',
      call: 'exec(command, { pty })',
      attempt: (sandbox) => context.expectUnsupported(sandbox().exec(['true'], { pty: { cols: 80, rows: 24 } }), 'exec.pty'),
    },
    createRefusal('volumes', 'create({ volumes })', { volumes: { '/mnt/suite': '/tmp' } }),
  ];

  describe('capabilities', () => {
    const sandbox = context.sharedSandbox();

    context.test('capabilities.well-formed', 'capabilities has every flag, each of the right type', async () => {
      const actual = context.provider.capabilities;
      for (const flag of Object.keys(capabilityCoverage) as CapabilityFlag[]) {
        const value = flagValue(actual, flag);
        if (flag === 'isolation') expect(['namespaces', 'container', 'gvisor', 'microvm']).toContain(value);
        else if (flag === 'volumes') expect(['host-path', 'named', 'host-path-or-named', false]).toContain(value);
        else if (flag === 'timeouts.maxLifetimeMs')
          expect(Number.isInteger(value) && (value as number) > 0, `${flag}: ${String(value)}`).toBe(true);
        else expect(typeof value, flag).toBe('boolean');
      }
    });

    for (const refusal of refusals) {
      const supported = flagValue(caps, refusal.flag) !== false;
      context.test(
        `capabilities.refuse-${refusal.flag}`,
        `${refusal.call} is SandboxCapabilityUnsupportedError('${refusal.flag}') when ${refusal.flag} is false`,
        () => refusal.attempt(sandbox),
        supported ? `the provider supports ${refusal.flag}` : undefined,
      );
    }

    // An optional method exists exactly when its flag is true; the core reaches sandbox methods
    // through `requireCapability`, which must refuse the missing ones.
    const flagOf = {
      snapshot: 'snapshot',
      extendTimeout: 'extendTimeout',
      pause: 'pause',
      resume: 'pause',
      updateNetwork: 'network.update',
    } as const;
    const enabled = { ...caps, 'network.update': caps.network.update };
    for (const method of ['snapshot', 'extendTimeout', 'pause', 'resume', 'updateNetwork'] as const) {
      const flag = flagOf[method];
      context.test(`capabilities.method-${method}`, `sandbox.${method} exists exactly when capabilities.${flag}`, async () => {
        expect(typeof sandbox()[method] === 'function', `typeof sandbox.${method}`).toBe(enabled[flag]);
        if (enabled[flag]) return;
        let thrown: unknown;
        try {
          requireCapability(sandbox(), method);
        } catch (error) {
          thrown = error;
        }
        expect(SandboxCapabilityUnsupportedError.isInstance(thrown)).toBe(true);
        expect((thrown as SandboxCapabilityUnsupportedError).capability).toBe(flag);
      });
    }
    context.test('capabilities.method-files.watch', 'sandbox.files.watch exists exactly when capabilities.files.watch', async () => {
      expect(typeof sandbox().files.watch === 'function', 'typeof sandbox.files.watch').toBe(caps.files.watch);
    });
    context.test(
      'capabilities.method-entrypoint-stdio',
      'sandbox.stdout, stderr and stdin exist exactly when capabilities.entrypointStdio',
      async () => {
        expect(sandbox().stdout instanceof ReadableStream, 'sandbox.stdout is a ReadableStream').toBe(caps.entrypointStdio);
        expect(sandbox().stderr instanceof ReadableStream, 'sandbox.stderr is a ReadableStream').toBe(caps.entrypointStdio);
        expect(sandbox().stdin instanceof WritableStream, 'sandbox.stdin is a WritableStream').toBe(caps.entrypointStdio);
      },
    );
    const providerMethods = [
      ['fromName', 'fromName'],
      ['list', 'list'],
      ['deleteSnapshot', 'deleteSnapshot'],
      ['openHostRoute', 'hostRoutes'],
    ] as const;
    for (const [method, flag] of providerMethods) {
      context.test(`capabilities.method-${method}`, `provider.${method} exists exactly when capabilities.${flag}`, async () => {
        const provider = context.provider as unknown as Record<string, unknown>;
        expect(context.provider.specificationVersion).toBe('sandbox-v1');
        expect(typeof provider[method] === 'function', `typeof provider.${method}`).toBe(caps[flag]);
      });
    }

    context.test(
      'capabilities.max-lifetime',
      'create({ timeoutMs: maxLifetimeMs + 1 }) is SandboxInvalidArgumentError naming timeoutMs',
      async () => {
        const error = await context.expectError(
          context.create({ timeoutMs: caps.timeouts.maxLifetimeMs + 1 }),
          SandboxInvalidArgumentError,
        );
        expect(error.argument).toBe('timeoutMs');
      },
      caps.timeouts.lifetime ? undefined : 'provider has no lifetime timeout',
    );

    context.test(
      'capabilities.tags-round-trip',
      'setTags replaces the tags and getTags reads them back',
      async () => {
        const tagged = await context.create({ tags: { suite: context.runId, step: 'created' } });
        expect(await tagged.getTags()).toEqual({ suite: context.runId, step: 'created' });
        await tagged.setTags({ suite: context.runId, step: 'replaced', extra: 'yes' });
        expect(await tagged.getTags()).toEqual({ suite: context.runId, step: 'replaced', extra: 'yes' });
        await tagged.setTags({});
        expect(await tagged.getTags()).toEqual({});
        await tagged.terminate();
      },
      caps.tags ? undefined : 'provider has no tags',
    );

    const limits: CreateSandboxOptions = {
      ...(caps.limits.cpu ? { cpu: 1 } : {}),
      ...(caps.limits.memory ? { memoryMiB: 512 } : {}),
      ...(caps.limits.pids ? { pidsLimit: 256 } : {}),
    };
    context.test(
      'capabilities.limits-accepted',
      'the limits the capabilities claim are accepted at create',
      async () => {
        const limited = await context.create(limits);
        expect((await limited.run(['true'])).exitCode).toBe(0);
        await limited.terminate();
      },
      Object.keys(limits).length > 0 ? undefined : 'provider enforces no limits',
    );

    context.test(
      'capabilities.tunnels-tls',
      caps.tunnelsTls
        ? 'ports: [{ port, encrypted: true }] gives an encrypted https tunnel'
        : 'ports: [{ port, encrypted: true }] gives a plain tunnel and a warning, not an error (tunnelsTls false)',
      async () => {
        const warned: Array<{ sandboxId: string | undefined; warning: SandboxWarning }> = [];
        const onWarning = (event: { sandboxId: string | undefined; warning: SandboxWarning }) => warned.push(event);
        context.provider.events.on('warning', onWarning);
        try {
          const created = await context.create({ ports: [{ port: 8080, encrypted: true }] });
          const tunnel = (await created.tunnels())[8080];
          expect(tunnel).toBeDefined();
          if (caps.tunnelsTls) {
            expect(tunnel!.encrypted).toBe(true);
            expect(tunnel!.url.startsWith('https:')).toBe(true);
          } else {
            expect(tunnel!.encrypted).toBe(false);
            const found = await eventually(
              () => created.warnings.length > 0 || warned.some((event) => event.sandboxId === created.id),
              5_000,
            );
            expect(found, `no warning for sandbox ${created.id} in sandbox.warnings or the warning event`).toBe(true);
          }
          await created.terminate();
        } finally {
          context.provider.events.off('warning', onWarning);
        }
      },
      caps.tunnels ? undefined : 'provider has no tunnels',
    );
  });
}
