/**
 * Name resolution of `*.localhost` in this process. RFC 6761 makes `*.localhost` loopback (curl
 * and browsers resolve it themselves), but Node asks getaddrinfo, and this machine's resolver
 * answers ENOTFOUND for names such as `8080-x.e2b.localhost` or `my-app.fly.localhost`. The
 * emulators' edge proxies (E2B's tunnels, Fly's public host names) serve such names on loopback,
 * so a process that talks to them installs this `dns.lookup` hook: it answers 127.0.0.1 (or ::1)
 * for names ending in `.localhost` and leaves every other name to the system. It covers `fetch`,
 * `node:http` and the SDKs. The hook is counted: the last undo removes it.
 *
 * One suffix is special: `<app>.fly.localhost` resolves to an address of the app's own in
 * 127.0.0.0/8 (`loopbackAddressFor`), as `<app>.fly.dev` resolves to the app's own IP on Fly.
 * The Fly emulator's edge listens there on the app's real external ports (8080, 443, …), so a URL
 * such as `http://my-app.fly.localhost:8080` has Fly's shape and reaches that app's service on
 * that port, and no port of 127.0.0.1 is taken. The address is a hash of the app's name, so the
 * emulator (in another process) and its clients agree on it without talking.
 */
import { createHash } from 'node:crypto';
import dns from 'node:dns';

let hookUsers = 0;
let originalLookup: typeof dns.lookup | undefined;

function isLocalhostName(hostname: string): boolean {
  return /(^|\.)localhost\.?$/i.test(hostname);
}

const perAppSuffix = /^([a-z0-9-]+)\.fly\.localhost\.?$/i;

/**
 * The IPv4 loopback address a `*.localhost` name resolves to: for `<app>.fly.localhost` one of
 * 127.1.0.1-127.254.255.254 from a hash of the lowercase app name, for every other name
 * 127.0.0.1. Undefined for names outside `.localhost`.
 */
export function loopbackAddressFor(hostname: string): string | undefined {
  if (!isLocalhostName(hostname)) return undefined;
  const app = perAppSuffix.exec(hostname)?.[1];
  if (!app) return '127.0.0.1';
  const digest = createHash('sha256').update(app.toLowerCase()).digest();
  return `127.${1 + (digest[0]! % 254)}.${digest[1]!}.${1 + (digest[2]! % 254)}`;
}

/**
 * Makes `*.localhost` resolve to loopback in this process (see the file comment). Returns the
 * function that undoes it (counted: the hook goes when its last user called it). Idempotent per
 * returned function.
 */
export function installLocalhostResolution(): () => void {
  if (hookUsers++ === 0) {
    const system = dns.lookup;
    originalLookup = system;
    const hooked = function lookup(hostname: string, options: unknown, callback?: unknown) {
      const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
      const given =
        typeof options === 'function' ? {} : typeof options === 'number' ? { family: options } : ((options ?? {}) as dns.LookupOptions);
      if (typeof hostname !== 'string' || !isLocalhostName(hostname))
        return (system as (...args: unknown[]) => void).call(dns, hostname, options, callback);
      // A per-app address has no IPv6 twin: it is answered as IPv4 whatever family was asked.
      const perApp = perAppSuffix.test(hostname);
      const family = !perApp && (given.family === 6 || given.family === 'IPv6') ? 6 : 4;
      const address = family === 6 ? '::1' : loopbackAddressFor(hostname)!;
      if (given.all) process.nextTick(done, null, [{ address, family }]);
      else process.nextTick(done, null, address, family);
    };
    dns.lookup = hooked as typeof dns.lookup;
  }
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    if (--hookUsers === 0 && originalLookup) {
      dns.lookup = originalLookup;
      originalLookup = undefined;
    }
  };
}
