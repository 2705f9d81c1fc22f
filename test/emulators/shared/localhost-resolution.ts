/**
 * Name resolution of `*.localhost` in this process. RFC 6761 makes `*.localhost` loopback (curl
 * and browsers resolve it themselves), but Node asks getaddrinfo, and this machine's resolver
 * answers ENOTFOUND for names such as `8080-x.e2b.localhost` or `my-app.fly.localhost`. The
 * emulators' edge proxies (E2B's tunnels, Fly's public host names) serve such names on loopback,
 * so a process that talks to them installs this `dns.lookup` hook: it answers 127.0.0.1 (or ::1)
 * for names ending in `.localhost` and leaves every other name to the system. It covers `fetch`,
 * `node:http` and the SDKs. The hook is counted: the last undo removes it.
 */
import dns from 'node:dns';

let hookUsers = 0;
let originalLookup: typeof dns.lookup | undefined;

function isLocalhostName(hostname: string): boolean {
  return /(^|\.)localhost\.?$/i.test(hostname);
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
      const family = given.family === 6 || given.family === 'IPv6' ? 6 : 4;
      const address = family === 6 ? '::1' : '127.0.0.1';
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
