import { connect, createServer, type Server } from 'node:net';
import type { Tunnel } from '../../src/kit/index.js';

/**
 * Publishes one sandbox port on the host's loopback. The sandbox has no route to the host, so
 * the launcher runs a bridge inside the sandbox's network namespace that listens on a unix
 * socket in the sandbox's host directory; this server forwards each TCP connection to it.
 */
export async function openTunnel(port: number, socketPath: string): Promise<{ tunnel: Tunnel; server: Server }> {
  const server = createServer((client) => {
    const upstream = connect(socketPath);
    client.pipe(upstream).pipe(client);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  const address = server.address();
  const hostPort = typeof address === 'object' && address ? address.port : 0;
  return { server, tunnel: { port, url: `http://127.0.0.1:${hostPort}`, host: '127.0.0.1', hostPort, encrypted: false } };
}
