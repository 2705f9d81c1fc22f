/**
 * E2B's egress rules as the network policy of the local sandbox that emulates it (pure plans,
 * unit-tested in e2b-network.test.ts).
 *
 * E2B's semantics (the SDK's `SandboxNetworkOpts`): egress is open unless `denyOut` (or
 * `allowInternetAccess: false`, the same as `denyOut: ['0.0.0.0/0']`) closes it, and `allowOut`
 * wins over `denyOut`; `allowOut` takes CIDR blocks, IP addresses and host names. So:
 * - no deny of all traffic: open (`'allow'`), whatever `allowOut` says (it only makes exceptions);
 * - all traffic denied, nothing allowed out: `'block'` (no route at all);
 * - all traffic denied, some allowed out: the local provider's allowlist (its egress proxy),
 *   addresses as /32 or /128 blocks; `0.0.0.0/0` among them is all traffic again (`'allow'`);
 * - a deny of some destinations only (allow the rest): a local sandbox cannot honour it, a 400
 *   naming `denyOut`.
 * A live update (`PUT /sandboxes/:id/network`) maps to the local sandbox's `updateNetwork`,
 * which is honest between allowlists and `'block'` on a sandbox created with an allowlist. E2B
 * can make every other change (open a blocked sandbox, restrict an open one); the emulator cannot
 * (the local sandbox's route was fixed at create), so those are a 501 naming the call.
 */
import { isIP } from 'node:net';
import { HttpError } from './e2b-http.js';

/** E2B's "all traffic" (the SDK's `ALL_TRAFFIC`). */
export const allTraffic = '0.0.0.0/0';

/** The network policy the local sandbox is created with, or changed to. */
export type LocalNetwork = 'allow' | 'block' | { allowCidrs: string[]; allowDomains: string[] };

/** The egress part of a create's `network` or of an update's body. */
export interface E2bEgress {
  allowOut?: string[] | undefined;
  denyOut?: string[] | undefined;
  egressProxy?: unknown;
  rules?: Record<string, unknown[]> | undefined;
}

/** E2B's 400 for what the local sandbox cannot honour, naming the field. */
export function unsupported(field: string, why: string): HttpError {
  return new HttpError(400, `${field}: ${why} (the E2B emulator runs sandboxes in the local provider)`);
}

// A host name, optionally with a leading `*.` (the local provider's allowDomains accept the same).
const hostName = /^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;

/** One `allowOut` entry as a CIDR block or a host name. Throws 400 naming `<field>.<index>`. */
function classify(entry: string, field: string): { cidr: string } | { domain: string } {
  const slash = entry.indexOf('/');
  if (slash >= 0) {
    const address = entry.slice(0, slash);
    const bits = entry.slice(slash + 1);
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    if (family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= max) return { cidr: entry };
  } else if (isIP(entry) === 4) {
    return { cidr: `${entry}/32` };
  } else if (isIP(entry) === 6) {
    return { cidr: `${entry}/128` };
  } else if (entry.length <= 253 && hostName.test(entry)) {
    return { domain: entry };
  }
  throw new HttpError(400, `${field}: "${entry}" is not a CIDR block, an IP address or a host name`);
}

/**
 * What of E2B's egress settings the local sandbox honours (see the file's comment). Throws 400
 * for a partial `denyOut`, `egressProxy`, `rules` and malformed `allowOut` entries. `prefix` is
 * where the fields sit in the request (`network.` for a create, nothing for an update).
 */
export function planEgress(
  allowInternetAccess: boolean | null | undefined,
  egress: E2bEgress | null | undefined,
  prefix: string,
): LocalNetwork {
  const allowOut = egress?.allowOut ?? [];
  const denyOut = egress?.denyOut ?? [];
  if (egress?.egressProxy != null) throw unsupported(`${prefix}egressProxy`, 'egress through a SOCKS5 proxy is not supported');
  if (egress?.rules && Object.keys(egress.rules).length > 0) {
    throw unsupported(`${prefix}rules`, 'per-domain transform rules of egress requests are not supported');
  }
  const deniesAll = allowInternetAccess === false || denyOut.includes(allTraffic);
  if (!deniesAll) {
    if (denyOut.length > 0) {
      throw unsupported(
        `${prefix}denyOut`,
        `denying single destinations (${denyOut.join(', ')}) while allowing the rest cannot be honoured: a local sandbox allows a list or nothing; deny all traffic ('${allTraffic}') and list what is allowed in allowOut`,
      );
    }
    // Nothing is denied: allowOut only makes exceptions to denies, so everything is open.
    return 'allow';
  }
  // Other denyOut entries are covered by the deny of all traffic; allowOut wins over all of them.
  const allowCidrs: string[] = [];
  const allowDomains: string[] = [];
  allowOut.forEach((entry, index) => {
    const classified = classify(entry, `${prefix}allowOut.${index}`);
    if ('cidr' in classified) allowCidrs.push(classified.cidr);
    else allowDomains.push(classified.domain);
  });
  if (allowCidrs.includes(allTraffic)) return 'allow';
  if (allowCidrs.length === 0 && allowDomains.length === 0) return 'block';
  return { allowCidrs, allowDomains };
}

/**
 * What a live update does to the local sandbox: nothing, or its `updateNetwork` with `policy`,
 * after which it runs with `state` (a blocked allowlisted sandbox is an empty allowlist: still
 * one whose list can change again).
 */
export type NetworkChange =
  | { kind: 'keep' }
  | {
      kind: 'update';
      policy: 'block' | { allowCidrs: string[]; allowDomains: string[] };
      state: { allowCidrs: string[]; allowDomains: string[] };
    };

/**
 * The local side of a live update from `current` (what the local sandbox runs with) to `next`
 * (pure). Throws E2B-shaped 501 naming the call for the changes E2B makes and the emulator cannot.
 */
export function planNetworkChange(current: LocalNetwork, next: LocalNetwork, sandboxId: string): NetworkChange {
  const notEmulated = (why: string) =>
    new HttpError(
      501,
      `PUT /sandboxes/${sandboxId}/network (updateNetwork) is not emulated for this change: ${why} (the E2B emulator runs sandboxes in the local provider, whose network is fixed at create except between allowlists)`,
    );
  if (typeof current === 'object') {
    if (next === 'allow') {
      throw notEmulated(
        'opening a sandbox created with an allowlist to all traffic needs a route out that its local sandbox was created without',
      );
    }
    return { kind: 'update', policy: next, state: next === 'block' ? { allowCidrs: [], allowDomains: [] } : next };
  }
  if (next === current) return { kind: 'keep' };
  if (current === 'block') {
    throw notEmulated(
      `a sandbox created with all egress denied and nothing allowed out has no route and no egress proxy to ${next === 'allow' ? 'open' : 'allow a list through'}; create it with denyOut ['${allTraffic}'] and an allowOut list to change the list later`,
    );
  }
  throw notEmulated(
    `a sandbox created with open egress keeps its route out; create it with denyOut ['${allTraffic}'] and an allowOut list to ${next === 'block' ? 'block it' : 'change the list'} later`,
  );
}
