/**
 * Real attacks on a network allowlist, shared by the local and Docker attack files: each bypass
 * named in issue 15, tried from inside a sandbox with curl and bash against the provider's
 * egress proxy. The "internet" is the test internet (test/egress-internet.ts): a destination
 * that a bypass reached would answer `hello from <address>`, so a leak is visible, and
 * `internet.dialed` shows whether the proxy ever dialled a refused address. The host-loopback
 * attack uses a provider on the system network (real `dns.lookup` and `net.connect`) and a
 * server this file opened on 127.0.0.1, so a leak there would land on a real host port.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateSandboxOptions, NetworkPolicy, Sandbox, SandboxProvider } from '../../src/index.js';
import type { EgressEvent } from '../../src/spec/events.js';
import type { EgressNetwork } from '../../src/kit/index.js';
import { startTestInternet, testInternetNames, type TestInternet } from '../egress-internet.js';

export interface EgressAttackOptions {
  /** A provider whose egress proxy resolves and dials through `network` (the system network when undefined). */
  makeProvider(network: EgressNetwork | undefined): SandboxProvider;
  /** Merged into every create (an image with curl and bash). */
  createOptions?: CreateSandboxOptions;
}

/** Inside the sandbox, what curl got: its exit code and everything it printed (headers with `-i`). */
interface CurlResult {
  exitCode: number;
  output: string;
}

const allowedAddress = testInternetNames['allowed.test']!;
const deniedAddress = testInternetNames['denied.test']!;
/** What every test-internet server answers on `/`: seeing it means the destination was reached. */
const leaked = /hello from/;

export function defineEgressAttacks(name: string, options: EgressAttackOptions): void {
  describe(`${name}: egress allowlist under attack`, () => {
    let internet: TestInternet;
    let provider: SandboxProvider;
    const sandboxes: Sandbox[] = [];
    const egress: EgressEvent[] = [];
    beforeAll(async () => {
      internet = await startTestInternet();
      provider = options.makeProvider(internet);
      provider.events.on('egress', (event) => egress.push(event));
    });
    afterAll(async () => {
      await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
      await internet?.close();
    });

    const create = async (network: NetworkPolicy, on: SandboxProvider = provider) => {
      const sandbox = await on.create({ ...options.createOptions, network });
      sandboxes.push(sandbox);
      return sandbox;
    };
    /**
     * curl in the sandbox, with headers (`-i`), bounded so that a dropped packet cannot hang.
     * `--noproxy ''` overrides the sandbox's NO_PROXY (its own loopback), so that loopback URLs
     * go to the proxy too; a later `--noproxy '*'` in `args` wins over it.
     */
    const curl = async (sandbox: Sandbox, args: readonly string[]): Promise<CurlResult> => {
      const result = await sandbox.run([
        'curl',
        '-sS',
        '-k',
        '-i',
        '--connect-timeout',
        '10',
        '--max-time',
        '20',
        '--noproxy',
        '',
        ...args,
      ]);
      return { exitCode: result.exitCode, output: `${result.stdout}\n${result.stderr}` };
    };
    /** Every test-internet dial to `address` since `from` (an index into `internet.dialed`). */
    const dialsTo = (address: string, from = 0) => internet.dialed.slice(from).filter((dial) => dial.address === address);
    const eventsOf = (sandbox: Sandbox) => egress.filter((event) => event.sandboxId === sandbox.id);
    /** Waits for the sandbox's egress events to settle (an allowed one arrives at the close). */
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

    it('proves the isolation first: an allowlisted sandbox has only loopback, no route, and the proxy works for an allowed name', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      const devices = (await sandbox.run(['cat', '/proc/net/dev'])).stdout
        .split('\n')
        .slice(2)
        .map((line) => line.split(':')[0]!.trim())
        .filter(Boolean);
      expect(devices).toEqual(['lo']);
      // Only the header line: no IPv4 route at all, and IPv6 has only the loopback address.
      expect((await sandbox.run(['cat', '/proc/net/route'])).stdout.trim().split('\n')).toHaveLength(1);
      const v6 = (await sandbox.run(['/bin/sh', '-c', 'cat /proc/net/if_inet6 2>/dev/null; true'])).stdout.trim();
      for (const line of v6.split('\n').filter(Boolean)) expect(line).toMatch(/ lo$/);
      const through = await curl(sandbox, ['https://allowed.test/']);
      expect(through.exitCode, through.output).toBe(0);
      expect(through.output).toContain(`hello from ${allowedAddress}`);
      expect(through.output).toMatch(/x-test-sni: allowed\.test/i);
    });

    it('a raw IP address not in allowCidrs is refused, over HTTP, CONNECT and SOCKS5, and never dialled', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      const mark = internet.dialed.length;
      const plain = await curl(sandbox, [`http://${deniedAddress}/`]);
      expect(plain.output).toMatch(/^HTTP\/1\.[01] 403/m);
      expect(plain.output).toMatch(/x-sandport-egress: denied/i);
      expect(plain.output).not.toMatch(leaked);
      // The address of an allowed name is still a raw address: only the name is allowed.
      for (const url of [`https://${deniedAddress}/`, `https://${allowedAddress}/`]) {
        const tunnel = await curl(sandbox, [url]);
        expect(tunnel.exitCode, tunnel.output).not.toBe(0);
        expect(tunnel.output).not.toMatch(leaked);
      }
      const socks = await curl(sandbox, ['--socks5-hostname', '127.0.0.1:3128', `http://${deniedAddress}/`]);
      expect(socks.exitCode, socks.output).not.toBe(0);
      expect(socks.output).not.toMatch(leaked);
      expect(dialsTo(deniedAddress, mark)).toEqual([]);
      expect(dialsTo(allowedAddress, mark)).toEqual([]);
      await settle();
      const denied = eventsOf(sandbox).filter((event) => event.decision === 'denied');
      expect(denied.map((event) => event.host).sort()).toEqual([allowedAddress, deniedAddress, deniedAddress, deniedAddress].sort());
      expect(denied.map((event) => event.protocol).sort()).toEqual(['connect', 'connect', 'http', 'socks5']);
    });

    it('allowCidrs lets exactly its block through, by address', async () => {
      const sandbox = await create({ allowCidrs: [`${allowedAddress}/32`] });
      const inside = await curl(sandbox, [`http://${allowedAddress}/`]);
      expect(inside.output).toContain(`hello from ${allowedAddress}`);
      const outside = await curl(sandbox, [`http://${deniedAddress}/`]);
      expect(outside.output).toMatch(/x-sandport-egress: denied/i);
      expect(outside.output).not.toMatch(leaked);
    });

    it('a CONNECT to an allowed name whose TLS ClientHello names another host (SNI) is cut off', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      // curl asks the proxy for allowed.test:443 and then speaks TLS for denied.test inside it.
      const smuggled = await curl(sandbox, ['--connect-to', 'denied.test:443:allowed.test:443', 'https://denied.test/']);
      expect(smuggled.exitCode, smuggled.output).not.toBe(0);
      expect(smuggled.output).not.toMatch(leaked);
      expect(smuggled.output).not.toMatch(/x-test-sni/i);
      // The same with a hand-written ClientHello over bash's /dev/tcp, no TLS library involved.
      const hello = clientHello('denied.test');
      const raw = await sandbox.run([
        'bash',
        '-c',
        'exec 3<>/dev/tcp/127.0.0.1/3128; printf "CONNECT allowed.test:443 HTTP/1.1\\r\\nHost: allowed.test:443\\r\\n\\r\\n" >&3; ' +
          'timeout 5 head -c 12 <&3; echo; printf "$0" >&3; timeout 5 cat <&3 | od -An -tx1 | head -c 60; echo; echo done',
        hello,
      ]);
      expect(raw.stdout).toMatch(/^HTTP\/1\.[01] 200/);
      const afterHello = raw.stdout.split('\n').slice(1).join('').replace(/\s/g, '');
      // A TLS server would answer with a ServerHello record (0x16); the proxy closed instead.
      expect(afterHello.startsWith('16'), raw.stdout).toBe(false);
      expect(raw.stdout).toContain('done');
      await settle();
      const refusals = eventsOf(sandbox).filter((event) => event.decision === 'denied' && event.host === 'allowed.test');
      expect(refusals.length).toBeGreaterThanOrEqual(2);
      for (const event of refusals) expect(event.reason).toMatch(/sni|servername|server name|denied\.test/i);
    });

    it('no DNS leaves the sandbox: names do not resolve, no resolver is reachable over UDP or TCP 53, and SOCKS5 UDP ASSOCIATE is refused', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      const lookup = await sandbox.run(['/bin/sh', '-c', 'getent hosts allowed.test denied.test; echo rc=$?']);
      expect(lookup.stdout.trim()).toMatch(/^rc=[1-9]\d*$/);
      const direct = await curl(sandbox, ['--noproxy', '*', 'http://allowed.test/']);
      expect(direct.exitCode).not.toBe(0);
      expect(direct.output).toMatch(/resolve/i);
      // slirp4netns's resolver address and a documentation address: no route to either (a probe
      // of the host's own resolvers would send them traffic if isolation ever broke).
      const probe = await sandbox.run([
        'bash',
        '-c',
        'for s in 10.0.2.3 192.0.2.53; do ' +
          '(timeout 3 bash -c "echo x > /dev/udp/$s/53") 2>/dev/null && echo "udp $s"; ' +
          '(timeout 3 bash -c "exec 3<>/dev/tcp/$s/53") 2>/dev/null && echo "tcp $s"; done; echo probed',
      ]);
      expect(probe.stdout.trim()).toBe('probed');
      // SOCKS5 greeting (no auth), then UDP ASSOCIATE (command 3): the reply code must not be 0.
      const associate = await sandbox.run([
        'bash',
        '-c',
        'exec 3<>/dev/tcp/127.0.0.1/3128; printf "\\x05\\x01\\x00" >&3; timeout 5 head -c 2 <&3 | od -An -tx1; ' +
          'printf "\\x05\\x03\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00" >&3; timeout 5 head -c 2 <&3 | od -An -tx1; echo done',
      ]);
      const replies = associate.stdout.trim().split('\n');
      expect(replies[0]!.trim()).toBe('05 00');
      expect(replies.at(-1)).toBe('done');
      if (replies.length === 3) expect(replies[1]!.trim()).not.toBe('05 00');
    });

    it('IPv6 literals, IPv4-mapped and link-local addresses are refused, and a name resolving to IPv6 too, unless allowCidrs lists them', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test', 'v6.test'] });
      const mark = internet.dialed.length;
      for (const host of [
        '[2001:db8::10]',
        '[::1]',
        '[::ffff:127.0.0.1]',
        '[::ffff:198.51.100.10]',
        '[fe80::1]',
        '169.254.1.1',
        'v6.test',
      ]) {
        const result = await curl(sandbox, [`http://${host}/`]);
        expect(result.output, host).toMatch(/x-sandport-egress: denied/i);
        expect(result.output, host).not.toMatch(leaked);
      }
      expect(internet.dialed.slice(mark)).toEqual([]);
      const listed = await create({ allowCidrs: ['2001:db8::/32'] });
      const reached = await curl(listed, ['http://[2001:db8::10]/']);
      expect(reached.output).toContain('hello from 2001:db8::10');
    });

    it('the cloud metadata address and names rebinding to loopback or metadata are refused, even when allowlisted by name', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test', 'rebind.test', 'metadata.test'] });
      const mark = internet.dialed.length;
      for (const url of [
        'http://169.254.169.254/',
        'http://metadata.test/',
        'http://rebind.test/',
        'https://rebind.test/',
        'http://127.0.0.1/',
      ]) {
        const result = await curl(sandbox, [url]);
        expect(result.output, url).not.toMatch(leaked);
        expect(result.exitCode !== 0 || /x-sandport-egress: denied/i.test(result.output), `${url}: ${result.output}`).toBe(true);
      }
      expect(dialsTo('169.254.169.254', mark)).toEqual([]);
      expect(dialsTo('127.0.0.1', mark)).toEqual([]);
      // Listed explicitly, the metadata address is reachable: the refusal is the default, not a hole.
      const listed = await create({ allowCidrs: ['169.254.169.254/32'] });
      expect((await curl(listed, ['http://169.254.169.254/'])).output).toContain('hello from 169.254.169.254');
    });

    it('a redirect from an allowed host to a denied one is refused at the next connection', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      for (const target of ['https://denied.test/', 'http://denied.test/', 'http://169.254.169.254/', `http://${deniedAddress}/`]) {
        const result = await curl(sandbox, ['-L', `https://allowed.test/redirect?to=${encodeURIComponent(target)}`]);
        expect(result.output, target).toMatch(/^HTTP\/1\.[01] 302/m);
        expect(result.output, target).not.toMatch(leaked);
      }
      expect(dialsTo(deniedAddress)).toEqual([]);
    });

    it('SOCKS5 to a denied name is refused; SOCKS5 to an allowed one works; SOCKS4 is refused', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      const allowed = await curl(sandbox, ['--socks5-hostname', '127.0.0.1:3128', 'https://allowed.test/']);
      expect(allowed.output).toContain(`hello from ${allowedAddress}`);
      for (const args of [
        ['--socks5-hostname', '127.0.0.1:3128', 'https://denied.test/'],
        ['--socks5-hostname', '127.0.0.1:3128', 'http://denied.test/'],
        ['--socks4a', '127.0.0.1:3128', 'http://allowed.test/'],
        ['--socks4', '127.0.0.1:3128', `http://${allowedAddress}/`],
      ]) {
        const result = await curl(sandbox, args);
        expect(result.exitCode, args.join(' ')).not.toBe(0);
        expect(result.output, args.join(' ')).not.toMatch(leaked);
      }
      expect(dialsTo(deniedAddress)).toEqual([]);
      await settle();
      expect(
        eventsOf(sandbox).some((event) => event.protocol === 'socks5' && event.decision === 'denied' && event.host === 'denied.test'),
      ).toBe(true);
    });

    it('a program that ignores the proxy reaches nothing: no route to any address, and the proxy refuses a request that is not a proxy request', async () => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      for (const url of ['http://allowed.test/', `http://${allowedAddress}/`, `https://${allowedAddress}/`]) {
        const result = await curl(sandbox, ['--noproxy', '*', url]);
        expect(result.exitCode, url).not.toBe(0);
        expect(result.output, url).not.toMatch(leaked);
      }
      const tcp = await sandbox.run([
        'bash',
        '-c',
        `for a in ${allowedAddress} ${deniedAddress} 192.0.2.1; do (timeout 3 bash -c "exec 3<>/dev/tcp/$a/80") 2>/dev/null && echo "reached $a"; done; echo probed`,
      ]);
      expect(tcp.stdout.trim()).toBe('probed');
      // A transparent-proxy style request (origin form, a Host header) is not forwarded.
      const origin = await sandbox.run([
        'bash',
        '-c',
        'exec 3<>/dev/tcp/127.0.0.1/3128; printf "GET / HTTP/1.1\\r\\nHost: denied.test\\r\\nConnection: close\\r\\n\\r\\n" >&3; timeout 5 cat <&3; echo; echo done',
      ]);
      expect(origin.stdout).toContain('done');
      expect(origin.stdout).not.toMatch(leaked);
      expect(dialsTo(deniedAddress)).toEqual([]);
    });

    it('the clients the image has go through the proxy variables (wget, python3 urllib, pip, npm, git) and are refused a denied name; node 20 fetch fails closed', async (context) => {
      const sandbox = await create({ allowDomains: ['allowed.test'] });
      const has = async (command: string) => (await sandbox.run(['/bin/sh', '-c', `command -v ${command}`])).exitCode === 0;
      // Each client: a command for a host, what it prints when it reached the test internet, and
      // what it prints when the proxy refused it (so neither outcome is a vacuous pass).
      const clients: Array<{ name: string; needs: string; command: (host: string) => string; reached: RegExp; refused: RegExp }> = [
        {
          name: 'wget',
          needs: 'wget',
          command: (host) => `wget -qO- --no-check-certificate https://${host}/; echo " exit=$?"`,
          reached: /hello from/,
          refused: /^ exit=[1-9]/,
        },
        {
          name: 'python3 urllib',
          needs: 'python3',
          command: (host) =>
            `python3 -c "import ssl,urllib.request;print(urllib.request.urlopen('https://${host}/',context=ssl._create_unverified_context()).read().decode())" 2>&1 | tail -1`,
          reached: /hello from/,
          refused: /403|Tunnel connection failed/,
        },
        {
          name: 'pip',
          needs: 'pip3',
          // pip says what it fetched only in its log.
          command: (host) =>
            `python3 -m pip download --log /tmp/pip-${host}.log --retries 0 --timeout 5 --no-deps --trusted-host ${host} --index-url https://${host}/simple/ -d /tmp/pip sandport-none >/dev/null 2>&1; grep 'Could not fetch URL' /tmp/pip-${host}.log`,
          reached: /404 Client Error: Not Found for url: https:\/\/allowed\.test\/simple\/sandport-none\//,
          refused: /ProxyError\('Cannot connect to proxy\.', OSError\('Tunnel connection failed: 403 Forbidden'\)\)/,
        },
        {
          name: 'npm',
          needs: 'npm',
          command: (host) =>
            `cd /tmp && npm --registry https://${host}/ --strict-ssl=false --fetch-retries=0 --update-notifier=false view sandport-none 2>&1`,
          reached: /404 Not Found - GET https:\/\/allowed\.test\/sandport-none/,
          refused: /403 Forbidden - GET https:\/\/denied\.test\/sandport-none/,
        },
        {
          name: 'git',
          needs: 'git',
          command: (host) => `GIT_SSL_NO_VERIFY=1 git ls-remote https://${host}/repo.git 2>&1`,
          reached: /repository 'https:\/\/allowed\.test\/repo\.git\/' not found/,
          refused: /CONNECT tunnel failed, response 403/,
        },
      ];
      const tried: string[] = [];
      for (const client of clients) {
        if (!(await has(client.needs))) continue;
        tried.push(client.name);
        const allowed = (await sandbox.run(['/bin/sh', '-c', client.command('allowed.test')])).stdout;
        expect(allowed, `${client.name} to allowed.test`).toMatch(client.reached);
        const denied = (await sandbox.run(['/bin/sh', '-c', client.command('denied.test')])).stdout;
        expect(denied, `${client.name} to denied.test`).toMatch(client.refused);
        expect(denied, `${client.name} to denied.test`).not.toMatch(leaked);
      }
      if (await has('node')) {
        tried.push('node fetch');
        // Node reads the proxy variables only with NODE_USE_ENV_PROXY on versions that have it
        // (never 20): without the proxy there is no DNS and no route, so it fails closed.
        const fetched = await sandbox.run([
          'node',
          '-e',
          "fetch('http://allowed.test/').then((r) => r.text()).then((t) => console.log('got', t), (e) => console.log('failed', e.cause && e.cause.code))",
        ]);
        const major = Number((await sandbox.run(['node', '-p', 'process.versions.node.split(".")[0]'])).stdout.trim());
        if (major <= 20) expect(fetched.stdout).toMatch(/^failed /);
        expect(fetched.stdout).not.toMatch(leaked);
      }
      if (tried.length === 0) return context.skip('the image has none of wget, python3, pip, npm, git, node');
      console.log(`${name}: clients tried through the egress proxy: ${tried.join(', ')}`);
    });

    describe('host loopback on the system network', () => {
      let server: Server;
      let port = 0;
      let connections = 0;
      /** Connections to the host service still open, as the service sees them. */
      const open = new Set<Socket>();
      let eager: Server;
      let eagerPort = 0;
      let systemProvider: SandboxProvider;
      beforeAll(async () => {
        server = createServer((socket) => {
          connections++;
          open.add(socket);
          socket.on('close', () => open.delete(socket));
          socket.on('error', () => socket.destroy());
          // Anything but `GET /` (a `/hold`, bytes through a tunnel) gets no answer and keeps
          // the connection, as a long download would.
          socket.once('data', (request) => {
            if (request.toString().startsWith('GET / ')) {
              socket.end('HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nhost service');
            }
          });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        port = (server.address() as { port: number }).port;
        // A service that answers and closes before it reads anything (a banner, an error page).
        eager = createServer((socket) => {
          open.add(socket);
          socket.on('close', () => open.delete(socket));
          socket.on('error', () => socket.destroy());
          socket.end('HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nhost service');
          // Discard what arrives after the answer: a paused node socket holding unread bytes never
          // emits 'end' (nor 'close') even once the peer's FIN is in, which would look like a leak.
          socket.resume();
        });
        await new Promise<void>((resolve) => eager.listen(0, '127.0.0.1', resolve));
        eagerPort = (eager.address() as { port: number }).port;
        systemProvider = options.makeProvider(undefined);
      });
      afterAll(async () => {
        for (const socket of open) socket.destroy();
        await Promise.all([server, eager].map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))));
      });

      it('the host loopback (127.0.0.1, localhost, ::1, a port this test opened) is refused, even with localhost allowlisted by name', async () => {
        const sandbox = await create({ allowDomains: ['localhost'] }, systemProvider);
        connections = 0;
        for (const url of [
          `http://127.0.0.1:${port}/`,
          `http://localhost:${port}/`,
          `http://[::1]:${port}/`,
          `http://[::ffff:127.0.0.1]:${port}/`,
        ]) {
          for (const via of [[], ['--socks5-hostname', '127.0.0.1:3128']]) {
            const result = await curl(sandbox, [...via, url]);
            expect(result.output, `${via.join(' ')} ${url}`).not.toContain('host service');
          }
        }
        // The sandbox's own 127.0.0.1 is its own: the host port is not there either.
        const direct = await sandbox.run([
          'bash',
          '-c',
          `(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/${port}") 2>/dev/null && echo reached; echo probed`,
        ]);
        expect(direct.stdout.trim()).toBe('probed');
        expect(connections).toBe(0);
      });

      it('listed explicitly in allowCidrs, the host loopback port is reached (the refusal is a default, not an accident)', async () => {
        const sandbox = await create({ allowCidrs: ['127.0.0.1/32'] }, systemProvider);
        connections = 0;
        const result = await curl(sandbox, ['--proxy', 'http://127.0.0.1:3128', `http://127.0.0.1:${port}/`]);
        expect(result.output).toContain('host service');
        expect(connections).toBe(1);
      });

      it('every connection through the proxy ends with the client, and terminate cuts the ones still open', async () => {
        const sandbox = await create({ allowCidrs: ['127.0.0.1/32'] }, systemProvider);
        for (const socket of open) socket.destroy();
        // One finished request: once curl has its answer and exits, the upstream side is closed too.
        const done = await curl(sandbox, ['--proxy', 'http://127.0.0.1:3128', `http://127.0.0.1:${port}/`]);
        expect(done.output).toContain('host service');
        expect(await waitUntil(() => open.size === 0), `${open.size} upstream connection(s) left open after the client exited`).toBe(true);
        const early = await curl(sandbox, ['--proxy', 'http://127.0.0.1:3128', `http://127.0.0.1:${eagerPort}/`]);
        expect(early.output).toContain('host service');
        expect(
          await waitUntil(() => open.size === 0),
          `${open.size} upstream connection(s) to a service that closed first left open after the client exited`,
        ).toBe(true);
        // One held open from a background process (plain HTTP and a CONNECT tunnel), then terminate.
        await sandbox.run([
          '/bin/sh',
          '-c',
          // Every descriptor to /dev/null, so that the exec ends while they run.
          `(curl -s --noproxy '' --proxy http://127.0.0.1:3128 http://127.0.0.1:${port}/hold) </dev/null >/dev/null 2>&1 & ` +
            `(sleep 600 | curl -s --noproxy '' -p --proxy http://127.0.0.1:3128 telnet://127.0.0.1:${port}) </dev/null >/dev/null 2>&1 &`,
        ]);
        expect(await waitUntil(() => open.size >= 2), 'the held connections reached the host service').toBe(true);
        await sandbox.terminate();
        expect(await waitUntil(() => open.size === 0), `${open.size} upstream connection(s) outlived the sandbox`).toBe(true);
      });
    });
  });
}

/** Polls `check` every 100 ms for up to 10 s (an event that trails the action that causes it). */
async function waitUntil(check: () => boolean): Promise<boolean> {
  for (let waited = 0; waited < 10_000; waited += 100) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return check();
}

/**
 * A minimal TLS 1.2 ClientHello naming `servername` (SNI), as a printf format of `\xNN` escapes:
 * enough for a proxy to read the name, built here so that no TLS library decides what is sent.
 */
function clientHello(servername: string): string {
  const name = Buffer.from(servername, 'ascii');
  const u16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
  const serverNameList = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
  const sniExtension = Buffer.concat([u16(0), u16(serverNameList.length + 2), u16(serverNameList.length), serverNameList]);
  const extensions = Buffer.concat([u16(sniExtension.length), sniExtension]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(2),
    Buffer.from([0xc0, 0x2f]),
    Buffer.from([1, 0]),
    extensions,
  ]);
  const handshake = Buffer.concat([Buffer.from([1, 0]), u16(body.length), body]);
  const record = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(handshake.length), handshake]);
  return [...record].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('');
}
