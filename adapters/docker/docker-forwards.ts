import type Docker from 'dockerode';
import { SandboxCapabilityUnsupportedError, SandboxProviderError } from '../../src/kit/index.js';
import { runInContainer } from './docker-engine.js';
import { forwardSocketPath } from './docker-options.js';

// The forwarder listens on the container's loopback and relays each connection to the bind-mounted
// host socket. Written for node or python3, whichever the image has (the engine cannot run a
// helper of ours in the container's network namespace, and images rarely carry socat).
const nodeForwarder = `const net = require('net'); const [port, path] = process.argv.slice(1);
net.createServer((client) => { const upstream = net.connect(path); client.pipe(upstream).pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); }; client.on('error', end); upstream.on('error', end); }).listen(Number(port), '127.0.0.1');`;

const pythonForwarder = `import socket, sys, threading
port, path = int(sys.argv[1]), sys.argv[2]
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); server.bind(('127.0.0.1', port)); server.listen(64)
def pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data: break
            target.sendall(data)
    except OSError: pass
    finally:
        try: target.shutdown(socket.SHUT_WR)
        except OSError: pass
while True:
    client, _ = server.accept(); upstream = socket.socket(socket.AF_UNIX)
    try: upstream.connect(path)
    except OSError: client.close(); continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start(); threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()`;

const starter = [
  'port=$1; path=$2',
  'if command -v node >/dev/null 2>&1; then (setsid node -e "$3" "$port" "$path" >/dev/null 2>&1 </dev/null &)',
  'elif command -v python3 >/dev/null 2>&1; then (setsid python3 -c "$4" "$port" "$path" >/dev/null 2>&1 </dev/null &)',
  'else exit 3; fi',
  'hex=$(printf "%04X" "$port"); n=0',
  'while ! grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp; do n=$((n + 1)); [ $n -gt 500 ] && exit 4; sleep 0.02; done',
].join('\n');

/**
 * Starts the in-container forwarder from 127.0.0.1:`port` to the unix socket at `socketPath` (a
 * path inside the container) and waits until it listens. Resolves false when the image has
 * neither node nor python3; throws `SandboxProviderError` when the forwarder did not start.
 */
export async function startContainerForwarder(
  container: Docker.Container,
  port: number,
  socketPath: string,
  signal?: AbortSignal,
): Promise<boolean> {
  signal?.throwIfAborted();
  const result = await runInContainer(
    container,
    ['/bin/sh', '-c', starter, 'sandport-forward', String(port), socketPath, nodeForwarder, pythonForwarder],
    { signal },
  );
  if (result.exitCode === 3) return false;
  if (result.exitCode !== 0) {
    throw new SandboxProviderError({
      message: `The forwarder for port ${port} did not start (exit ${result.exitCode}): ${result.stderr.trim()}`,
      provider: 'docker',
    });
  }
  return true;
}

/** Starts one forwarder per port of `hostForwards` and waits until each listens. */
export async function startForwards(container: Docker.Container, ports: number[], signal?: AbortSignal): Promise<void> {
  for (const port of ports) {
    if (!(await startContainerForwarder(container, port, forwardSocketPath(port), signal))) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'providerOptions.docker.hostForwards needs node or python3 in the image (the forwarder runs inside the container)',
        capability: 'hostForwards',
        provider: 'docker',
      });
    }
  }
}
