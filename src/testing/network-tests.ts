import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Sandbox } from '../spec/sandbox.js';
import { eventually, sleep, type SuiteContext } from './context.js';
import { serverCommand } from './servers.js';
import { webSocketEcho } from './ws-client.js';

async function detectRuntime(sandbox: Sandbox): Promise<'node' | 'python3' | undefined> {
  const result = await sandbox.run('command -v node >/dev/null && echo node || { command -v python3 >/dev/null && echo python3; }');
  const runtime = result.stdout.trim();
  return runtime === 'node' || runtime === 'python3' ? runtime : undefined;
}

export function networkTests(context: SuiteContext): void {
  const { describe, expect, beforeAll, afterAll } = context.options;
  const caps = context.capabilities;

  describe('tunnels', () => {
    context.test(
      'tunnels.http-and-websocket',
      'an HTTP server and a WebSocket server in the sandbox are reached from the host (needs node or python3 in the image)',
      async (test) => {
        const sandbox = await context.create({ ports: [8080, 8081] });
        const runtime = await detectRuntime(sandbox);
        if (!runtime) return test.skip('the image has neither node nor python3');
        const tunnels = await sandbox.tunnels();
        expect(Object.keys(tunnels).sort()).toEqual(['8080', '8081']);
        expect(tunnels[8080]!.port).toBe(8080);
        await sandbox.run(serverCommand(runtime, 8080, 8081));
        const reachable = await eventually(
          async () => {
            try {
              const response = await fetch(`${tunnels[8080]!.url}/ping`, { signal: AbortSignal.timeout(3_000) });
              return response.ok && (await response.text()) === 'hello from /ping';
            } catch {
              return false;
            }
          },
          20_000,
          200,
        );
        expect(reachable).toBe(true);
        expect(await webSocketEcho(tunnels[8081]!.url, 'hi there')).toBe('echo:hi there');
        await sandbox.terminate();
      },
      caps.tunnels ? undefined : 'provider has no tunnels',
    );
  });

  describe('network', () => {
    let server: Server;
    let port = 0;
    let connections = 0;
    let loopbackConnections = 0;
    beforeAll(async () => {
      // A listener the test opened itself, on every host address; the sandbox must reach none of them.
      server = createServer((socket) => {
        connections++;
        if (socket.localAddress?.replace('::ffff:', '').startsWith('127.')) loopbackConnections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    const hostAddresses = () => [
      '127.0.0.1',
      '10.0.2.2',
      ...Object.values(networkInterfaces())
        .flat()
        .filter((entry) => entry && entry.family === 'IPv4' && !entry.internal)
        .map((entry) => entry!.address),
    ];

    const probeCommands = ['bash', 'timeout'];
    async function probe(sandbox: Sandbox): Promise<string[]> {
      // `probed` proves the loop ran; exit status 124 (timeout) or 1 (refused) is a miss.
      const script =
        'for host in "$@"; do if timeout 3 bash -c "exec 3<>/dev/tcp/$host/$0" 2>/dev/null; then echo "reached $host"; fi; done; echo probed';
      const result = await sandbox.run(['/bin/sh', '-c', script, String(port), ...hostAddresses()]);
      const lines = result.stdout.split('\n').filter(Boolean);
      expect(lines.at(-1)).toBe('probed');
      return lines.slice(0, -1);
    }

    context.test(
      'network.block',
      "network 'block' leaves only loopback and reaches nothing outside (needs bash and timeout in the image)",
      async (test) => {
        const sandbox = await context.create({ network: 'block' });
        const interfaces = (await sandbox.run(['cat', '/proc/net/dev'])).stdout;
        const names = interfaces
          .split('\n')
          .slice(2)
          .map((line) => line.split(':')[0]!.trim())
          .filter(Boolean);
        expect(names).toEqual(['lo']);
        await context.requireCommands(sandbox, probeCommands, test);
        connections = 0;
        expect(await probe(sandbox)).toEqual([]);
        expect(connections).toBe(0);
        await sandbox.terminate();
      },
      caps.network.block ? undefined : 'provider cannot block the network',
    );

    // Outbound traffic may reach the host's public addresses, as any other machine could; its
    // loopback services must stay out of reach.
    context.test(
      'network.default-no-host-loopback',
      'the default network never reaches the host loopback (needs bash and timeout in the image)',
      async (test) => {
        const sandbox = await context.create();
        // Without bash every probe fails silently and the test would pass without testing.
        await context.requireCommands(sandbox, probeCommands, test);
        loopbackConnections = 0;
        const reached = await probe(sandbox);
        expect(reached.filter((line) => line === 'reached 127.0.0.1' || line === 'reached 10.0.2.2')).toEqual([]);
        await sleep(100);
        expect(loopbackConnections).toBe(0);
        await sandbox.terminate();
      },
    );
  });
}
