import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Tunnel } from '../../src/kit/index.js';

/** The host side of a sandbox's published ports. */
export interface LocalTunnels {
  readonly tunnels: Readonly<Record<number, Tunnel>>;
  /** Closes every server and every connection through them (their fds with them). Idempotent. */
  close(): Promise<void>;
}

/**
 * Publishes sandbox ports on the host's loopback. The sandbox has no route to the host, so the
 * launcher runs a bridge inside the sandbox's network namespace that listens on a unix socket
 * in the sandbox's host directory (`<dir>/ports/<port>.sock`); each server here forwards every
 * TCP connection to it. On a failure half-way, what was opened is closed before the rejection.
 */
export async function openTunnels(ports: readonly number[], dir: string): Promise<LocalTunnels> {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    })();
    return closing;
  };
  const tunnels: Record<number, Tunnel> = {};
  try {
    for (const port of ports) {
      const server = createServer((client) => forward(client, join(dir, 'ports', `${port}.sock`), sockets));
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      server.unref();
      const address = server.address();
      const hostPort = typeof address === 'object' && address ? address.port : 0;
      tunnels[port] = { port, url: `http://127.0.0.1:${hostPort}`, host: '127.0.0.1', hostPort, encrypted: false };
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { tunnels, close };
}

function forward(client: Socket, socketPath: string, sockets: Set<Socket>): void {
  const upstream = connect(socketPath);
  sockets.add(client).add(upstream);
  client.pipe(upstream).pipe(client);
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on('error', closeBoth);
  upstream.on('error', closeBoth);
  client.on('close', closeBoth);
  upstream.on('close', closeBoth);
}
