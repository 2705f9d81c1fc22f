import dns from 'node:dns';
import { describe, expect, it } from 'vitest';
import { installLocalhostResolution, loopbackAddressFor } from './localhost-resolution.js';

/** `dns.lookup` as `fetch` and `node:http` call it (the promise API does not go through the hook). */
function lookup(hostname: string, options: dns.LookupOptions): Promise<unknown> {
  return new Promise((resolve, reject) =>
    dns.lookup(hostname, options, (error, address, family) =>
      error ? reject(error) : resolve(options.all ? address : { address, family }),
    ),
  );
}

describe('loopbackAddressFor', () => {
  it('gives each <app>.fly.localhost a stable address of its own in 127.0.0.0/8, other .localhost names 127.0.0.1', () => {
    const a = loopbackAddressFor('my-app.fly.localhost');
    expect(a).toMatch(/^127\.(\d+)\.(\d+)\.(\d+)$/);
    expect(a).not.toBe('127.0.0.1');
    expect(loopbackAddressFor('MY-APP.fly.localhost.')).toBe(a);
    expect(loopbackAddressFor('other-app.fly.localhost')).not.toBe(a);
    expect(loopbackAddressFor('8080-abc.e2b.localhost')).toBe('127.0.0.1');
    expect(loopbackAddressFor('localhost')).toBe('127.0.0.1');
    expect(loopbackAddressFor('example.com')).toBeUndefined();
  });

  it('is what the installed hook answers, IPv4 for per-app names whatever family is asked', async () => {
    const undo = installLocalhostResolution();
    try {
      expect(await lookup('my-app.fly.localhost', { family: 4 })).toEqual({
        address: loopbackAddressFor('my-app.fly.localhost'),
        family: 4,
      });
      expect(await lookup('my-app.fly.localhost', { all: true, family: 6 })).toEqual([
        { address: loopbackAddressFor('my-app.fly.localhost'), family: 4 },
      ]);
      expect(await lookup('x.e2b.localhost', { family: 6 })).toEqual({ address: '::1', family: 6 });
    } finally {
      undo();
    }
  });
});
