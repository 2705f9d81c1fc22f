/** Option mapping of the Fly adapter: guest sizes, metadata, names, volumes, services, tunnels, refusals. No I/O. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createFlySandboxProvider,
  flyCapabilities,
  flyDefaultImage,
  planFlyAppName,
  planFlyCreate,
  planFlyDeadline,
  planFlyGuest,
  planFlyMetadata,
  planFlyMounts,
  planFlyPorts,
  planFlyServices,
  planFlyTagUpdate,
  planFlyTunnel,
  tagsFromFlyMetadata,
} from '../../adapters/fly/index.js';
import { flySandboxId, parseFlySandboxId } from '../../adapters/fly/fly-options.js';
import { parseWaitAnswer } from '../../adapters/fly/fly-process.js';
import { flyStartInput } from '../../adapters/fly/fly-scripts.js';
import { flyExitCode } from '../../adapters/fly/fly-client.js';
import { createSandboxOptionsSchema, type CreateSandboxOptions } from '../../src/kit/index.js';

function plan(options: CreateSandboxOptions) {
  return planFlyCreate(createSandboxOptionsSchema.parse(options), { now: 1_700_000_000_000 });
}

describe('planFlyCreate', () => {
  it('starts the default image with the keeper as init, destroyed when it exits and never restarted', () => {
    const created = plan({});
    expect(created.config.image).toBe(flyDefaultImage);
    expect(created.config.auto_destroy).toBe(true);
    expect(created.config.restart).toEqual({ policy: 'no' });
    // The keeper gets the deadline (5 minutes by default) and the 24-hour cap, in epoch seconds.
    const [shell, flag, , deadline, cap] = created.config.init.exec;
    expect([shell, flag]).toEqual(['/bin/sh', '-c']);
    expect(deadline).toBe(String(1_700_000_000 + 300));
    expect(cap).toBe(String(1_700_000_000 + 86_400));
    expect(created.lifetimeMs).toBe(300_000);
    expect(created.config.guest).toBeUndefined();
    expect(created.config.services).toBeUndefined();
  });

  it('passes image, env and the name; keeps secrets out of the config', () => {
    const created = plan({ image: 'registry.fly.io/app:v1', env: { A: '1' }, secrets: { TOKEN: 's3cret' }, name: 'web-1' });
    expect(created.config.image).toBe('registry.fly.io/app:v1');
    expect(created.config.env).toEqual({ A: '1' });
    expect(created.name).toBe('web-1');
    expect(created.secrets).toEqual({ TOKEN: 's3cret' });
    expect(JSON.stringify(created.config)).not.toContain('s3cret');
    expect(created.config.metadata).toMatchObject({ sandport_name: 'web-1', sandport_managed: '1' });
  });

  it('rounds a lifetime up to whole seconds for the keeper', () => {
    expect(planFlyDeadline(1000, 1500)).toBe(3);
    expect(planFlyDeadline(1000, 1000)).toBe(2);
  });

  it('refuses network blocking and allowlists: Fly has no egress firewall', () => {
    expect(() => plan({ network: 'block' })).toThrow(
      expect.objectContaining({ code: 'capability_unsupported', capability: 'network.block' }),
    );
    expect(() => plan({ network: { allowDomains: ['example.com'] } })).toThrow(
      expect.objectContaining({ code: 'capability_unsupported', capability: 'network.allowDomains' }),
    );
    expect(() => plan({ network: { allowCidrs: ['10.0.0.0/8'] } })).toThrow(
      expect.objectContaining({ code: 'capability_unsupported', capability: 'network.allowCidrs' }),
    );
  });

  it('refuses pids limits, gpus, image builds and lifetimes past 24 hours', () => {
    expect(() => plan({ pidsLimit: 64 })).toThrow(expect.objectContaining({ capability: 'limits.pids' }));
    expect(() => plan({ gpu: 'A100' })).toThrow(expect.objectContaining({ capability: 'gpu' }));
    expect(() => plan({ image: { base: 'debian', commands: ['true'] } })).toThrow(expect.objectContaining({ capability: 'images.build' }));
    expect(() => plan({ timeoutMs: 86_400_001 })).toThrow(expect.objectContaining({ code: 'invalid_argument', argument: 'timeoutMs' }));
  });

  it('reads providerOptions.fly and refuses unknown keys', () => {
    const created = plan({ providerOptions: { fly: { region: 'ams', cpuKind: 'performance', volumeSizeGb: 3 } } });
    expect(created.region).toBe('ams');
    expect(created.volumeSizeGb).toBe(3);
    expect(created.config.guest).toEqual({ cpu_kind: 'performance', cpus: 1, memory_mb: 256 });
    expect(() => plan({ providerOptions: { fly: { regoin: 'ams' } } })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });

  it('keeps the entrypoint as an argv and the idle timeout for the creating process', () => {
    expect(plan({ command: 'sleep 1' }).entrypoint).toEqual(['/bin/sh', '-c', 'sleep 1']);
    expect(plan({ command: ['node', 'server.js'] }).entrypoint).toEqual(['node', 'server.js']);
    expect(plan({ idleTimeoutMs: 5000 }).idleTimeoutMs).toBe(5000);
  });
});

describe('planFlyGuest', () => {
  it('is left to Fly when nothing is asked', () => {
    expect(planFlyGuest(undefined, undefined)).toEqual({ guest: undefined, warnings: [] });
  });

  it('takes whole vCPUs and memory in 256 MB steps as asked', () => {
    expect(planFlyGuest(2, 1024)).toEqual({ guest: { cpu_kind: 'shared', cpus: 2, memory_mb: 1024 }, warnings: [] });
  });

  it('rounds a fraction of a core and memory between steps up, with warnings', () => {
    const { guest, warnings } = planFlyGuest(0.5, 300);
    expect(guest).toEqual({ cpu_kind: 'shared', cpus: 1, memory_mb: 512 });
    expect(warnings.map((warning) => warning.type === 'unsupported-setting' && warning.setting)).toEqual(['cpu', 'memoryMiB']);
  });

  it('gives 256 MB per vCPU when only cpu is asked', () => {
    expect(planFlyGuest(4, undefined).guest).toEqual({ cpu_kind: 'shared', cpus: 4, memory_mb: 1024 });
  });
});

describe('metadata and tags', () => {
  it('puts the tags verbatim beside the marker and the name', () => {
    expect(planFlyMetadata({ team: 'a' }, 'web', { cost: 'x' })).toEqual({
      cost: 'x',
      team: 'a',
      sandport_managed: '1',
      sandport_name: 'web',
    });
  });

  it('refuses tag keys under the adapter prefix', () => {
    expect(() => planFlyMetadata({ sandport_name: 'x' }, undefined)).toThrow(expect.objectContaining({ argument: 'tags' }));
  });

  it('reads the tags back without the adapter keys and Fly’s own', () => {
    expect(tagsFromFlyMetadata({ team: 'a', sandport_managed: '1', fly_platform_version: 'v2' })).toEqual({ team: 'a' });
  });

  it('plans setTags as the metadata calls that differ', () => {
    expect(planFlyTagUpdate({ a: '1', b: '2', sandport_managed: '1' }, { a: '1', c: '3' })).toEqual({ set: [['c', '3']], remove: ['b'] });
    expect(planFlyTagUpdate({ a: '1' }, { a: '2' })).toEqual({ set: [['a', '2']], remove: [] });
  });
});

describe('volumes', () => {
  it('maps volume names to mounts sorted by path', () => {
    expect(planFlyMounts({ '/data': 'cache_1', '/a': { source: 'logs', readOnly: false } })).toEqual([
      { path: '/a', name: 'logs' },
      { path: '/data', name: 'cache_1' },
    ]);
  });

  it('refuses names Fly cannot take and read-only mounts', () => {
    expect(() => planFlyMounts({ '/data': '/host/dir' })).toThrow(expect.objectContaining({ argument: 'volumes' }));
    expect(() => planFlyMounts({ '/data': { source: 'cache', readOnly: true } })).toThrow(expect.objectContaining({ argument: 'volumes' }));
  });
});

describe('ports, services and tunnels', () => {
  it('publishes each port on the same public port, TLS unless asked otherwise, and the first on 443 and 80 too', () => {
    const ports = planFlyPorts([8080, { port: 9000, encrypted: false }]);
    expect(ports).toEqual([
      { port: 8080, encrypted: true },
      { port: 9000, encrypted: false },
    ]);
    expect(planFlyServices(ports)).toEqual([
      {
        protocol: 'tcp',
        internal_port: 8080,
        ports: [
          { port: 443, handlers: ['tls', 'http'] },
          { port: 80, handlers: ['http'] },
          { port: 8080, handlers: ['tls', 'http'] },
        ],
        autostop: false,
        autostart: false,
      },
      { protocol: 'tcp', internal_port: 9000, ports: [{ port: 9000, handlers: ['http'] }], autostop: false, autostart: false },
    ]);
    expect(() => planFlyPorts([80, 80])).toThrow(expect.objectContaining({ argument: 'ports' }));
  });

  it('builds https://<app>.fly.dev:<port> URLs, the port left out when it is the default', () => {
    const https = { app: 'sandport-1', domain: 'fly.dev', scheme: 'https' as const };
    expect(planFlyTunnel({ ...https, port: { port: 8080, encrypted: true } })).toEqual({
      url: 'https://sandport-1.fly.dev:8080',
      host: 'sandport-1.fly.dev',
      hostPort: 8080,
      encrypted: true,
    });
    expect(planFlyTunnel({ ...https, port: { port: 443, encrypted: true } }).url).toBe('https://sandport-1.fly.dev');
    expect(planFlyTunnel({ ...https, port: { port: 9000, encrypted: false } }).url).toBe('http://sandport-1.fly.dev:9000');
  });

  it('points at an emulator edge on plain http', () => {
    expect(planFlyTunnel({ app: 'a', port: { port: 8080, encrypted: true }, domain: 'fly.localhost', scheme: 'http' })).toEqual({
      url: 'http://a.fly.localhost:8080',
      host: 'a.fly.localhost',
      hostPort: 8080,
      encrypted: false,
    });
  });
});

describe('app names and ids', () => {
  it('gives an unnamed sandbox a random app and a named one an app derived from org and name', () => {
    expect(planFlyAppName('sandport', 'personal', undefined, () => 'abc')).toBe('sandport-abc');
    const named = planFlyAppName('sandport', 'personal', 'web');
    expect(named).toMatch(/^sandport-n[0-9a-f]{20}$/);
    expect(planFlyAppName('sandport', 'personal', 'web')).toBe(named);
    expect(planFlyAppName('sandport', 'other-org', 'web')).not.toBe(named);
  });

  it('round-trips sandbox ids and refuses others', () => {
    expect(parseFlySandboxId(flySandboxId('sandport-abc', '148ed123f0e789'))).toEqual({ app: 'sandport-abc', machineId: '148ed123f0e789' });
    expect(parseFlySandboxId('not an id')).toBeUndefined();
    expect(parseFlySandboxId('app:')).toBeUndefined();
  });

  it('refuses an app prefix Fly cannot take, at construction', () => {
    expect(() => createFlySandboxProvider({ appPrefix: 'Bad_Prefix' })).toThrow(expect.objectContaining({ argument: 'appPrefix' }));
  });
});

describe('the exec runner answers', () => {
  it('reads a running command, an exit with inline output, and one whose output stays in the machine', () => {
    expect(parseWaitAnswer('running\n')).toBe('running');
    const inline = parseWaitAnswer(`exit 137 3 0\ninline\n${Buffer.from('hi\n').toString('base64')}\n\n`);
    expect(inline).toMatchObject({ status: { exitCode: 137, signal: 'SIGKILL' }, outBytes: 3, errBytes: 0 });
    expect(inline !== 'running' && new TextDecoder().decode(inline.inline?.out)).toBe('hi\n');
    expect(parseWaitAnswer('exit 0 9999999 0\n')).toMatchObject({ status: { exitCode: 0 }, inline: undefined });
    expect(() => parseWaitAnswer('garbage')).toThrow(expect.objectContaining({ code: 'provider' }));
  });
});

describe('capabilities', () => {
  it('states buffered output, refused network policies and the in-machine lifetime', () => {
    expect(flyCapabilities.exec.streaming).toBe(false);
    expect(flyCapabilities.network).toEqual({
      block: false,
      allowCidrs: false,
      allowDomains: false,
      allowlistViaProxy: false,
      update: false,
    });
    expect(flyCapabilities.timeouts).toMatchObject({ lifetime: true, idle: true });
    expect(flyCapabilities.snapshot).toBe(false);
    expect(createFlySandboxProvider().capabilities).toBe(flyCapabilities);
  });
});

describe('the start input', () => {
  it('carries the argv and env so that sh gets them back byte for byte', () => {
    const argv = ['printf', "it's", 'a "b" $HOME `x`', 'line\nbreak\n', 'ünïcode', ''];
    const input = flyStartInput('x1', argv, { env: { A: "o'k\nmore", B: '$(nope)' }, stdin: 'null' });
    const [id, mode, env, quoted] = input.split('\n');
    expect([id, mode]).toEqual(['x1', 'null']);
    const script = `. "$1"; eval "set -- $(cat "$2")"; printf '%s\\0' "$@"; printf '%s\\0' "$A" "$B"`;
    const dir = mkdtempSync(join(tmpdir(), 'fly-start-input-'));
    try {
      writeFileSync(join(dir, 'env'), Buffer.from(env!, 'base64'));
      writeFileSync(join(dir, 'argv'), Buffer.from(quoted!, 'base64'));
      const result = spawnSync('/bin/sh', ['-c', script, 'sh', join(dir, 'env'), join(dir, 'argv')]);
      expect(result.stdout.toString('utf8').split('\0').slice(0, -1)).toEqual([...argv, "o'k\nmore", '$(nope)']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('puts the data of a run after the header', () => {
    expect(flyStartInput('x2', ['cat'], { stdin: 'data', data: 'aGk=' }).endsWith('\naGk=')).toBe(true);
    expect(flyStartInput('x3', ['cat'], { stdin: 'pipe', data: 'aGk=' }).endsWith('\n')).toBe(true);
  });

  it('reads the exit code of the latest exit event', () => {
    const exit = (code: number, timestamp: number) => ({ type: 'exit', timestamp, request: { exit_event: { exit_code: code } } });
    expect(flyExitCode({ id: 'm', state: 'destroyed', events: [exit(1, 1), exit(3, 2), { type: 'start', timestamp: 3 }] })).toBe(3);
    expect(flyExitCode({ id: 'm', state: 'destroyed', events: [] })).toBeUndefined();
  });
});
