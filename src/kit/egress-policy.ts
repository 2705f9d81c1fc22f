/**
 * The allowlist decision of the egress proxy, as pure functions over a compiled policy, so each
 * rule has a unit test: a name is allowed when it matches `allowDomains` (exact, or `*.suffix`
 * for any name under the suffix but not the suffix itself), an address when it is inside
 * `allowCidrs`. Addresses the sandbox must never reach by accident (loopback, link-local and
 * with it the cloud metadata address, unspecified, multicast, IPv4-mapped forms of these, and
 * every IPv6 address) are refused unless an `allowCidrs` block covers them explicitly, even
 * when an allowed name resolves to them (DNS rebinding).
 */
import type { ParsedNetworkPolicy } from '../spec/options.js';

/** A policy ready for decisions: `'block'` denies everything. */
export interface EgressPolicy {
  readonly domains: readonly string[];
  readonly cidrs: readonly string[];
}

/** A decision, with the reason for a person when denied. */
export type EgressVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/** Compiles an allowlist (or `'block'`: nothing allowed). Throws on `'allow'`. */
export declare function compileEgressPolicy(policy: Exclude<ParsedNetworkPolicy, 'allow'>): EgressPolicy;

/** Whether `hostname` (any case, an optional trailing dot) matches `allowDomains`. */
export declare function nameAllowed(policy: EgressPolicy, hostname: string): boolean;

/**
 * Whether the proxy may dial `address`: inside `allowCidrs`, or reached through an allowed name
 * (`viaAllowedName`) and not a special address. IPv4-mapped IPv6 counts as its IPv4 address.
 */
export declare function decideAddress(policy: EgressPolicy, address: string, viaAllowedName: boolean): EgressVerdict;
