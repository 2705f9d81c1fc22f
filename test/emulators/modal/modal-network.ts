/**
 * Modal's outbound network settings on the local sandbox that emulates a Modal sandbox, and the
 * live policy update (`Sandbox.updateNetworkPolicy`, the router's `TaskSetNetworkAccess`).
 *
 * Modal's semantics (modal@0.11.1's `SandboxCreateParams` and `SandboxUpdateNetworkPolicyParams`):
 * `blockNetwork` (BLOCKED) has no network at all; `outboundCidrAllowlist` and/or
 * `outboundDomainAllowlist` (ALLOWLIST) allow a connection whose address is in a CIDR block or
 * whose name is on the domain list (`*.example.com` for names under it), an empty list allowing
 * nothing, and a wildcard entry (`0.0.0.0/0` or `*`) allowing everything; neither is OPEN.
 * Locally: BLOCKED is `'block'`, an allowlist is the local provider's allowlist (its egress
 * proxy), a wildcard allowlist and OPEN are `'allow'`.
 *
 * The update replaces both lists. It maps to the local sandbox's `updateNetwork`, honest between
 * allowlists on a sandbox created with one. Modal can also open such a sandbox to everything (a
 * wildcard), and narrow one created open or with a wildcard; a local sandbox cannot (its route is
 * fixed at create), so those are UNIMPLEMENTED naming the call. Not emulated either: Modal ends
 * established connections the new policy no longer permits; the local proxy applies the new
 * policy to new connections and leaves open ones alone.
 */
import * as grpc from '@grpc/grpc-js';
import { SandboxCapabilityUnsupportedError } from '../../../src/kit/index.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import type { ModalState } from './modal-state.js';

/** The network policy the local sandbox is created with, or changed to. */
export type LocalNetwork = 'allow' | 'block' | { allowCidrs: string[]; allowDomains: string[] };

/** NetworkAccess.network_access_type. */
export const networkAccessType = { unspecified: 0, open: 1, blocked: 2, allowlist: 3 } as const;

/** Entries Modal documents as allowing everything. */
const wildcards = new Set(['0.0.0.0/0', '*']);

/** An ALLOWLIST's lists as the local policy (pure). */
export function allowlistNetwork(access: Json | null | undefined): LocalNetwork {
  const allowCidrs: string[] = [...(access?.allowedCidrs ?? [])];
  const allowDomains: string[] = [...(access?.allowedDomains ?? [])];
  if ([...allowCidrs, ...allowDomains].some((entry) => wildcards.has(entry))) return 'allow';
  return { allowCidrs, allowDomains };
}

/** A create's `SandboxDefinition` network settings as the local policy (pure). */
export function createNetwork(definition: Json): LocalNetwork {
  const access = definition.networkAccess?.networkAccessType ?? networkAccessType.unspecified;
  if (definition.blockNetwork || access === networkAccessType.blocked) return 'block';
  if (access === networkAccessType.allowlist) return allowlistNetwork(definition.networkAccess);
  return 'allow';
}

/** What a live update does to the local sandbox: nothing, or its `updateNetwork` with `policy`. */
export type NetworkChange = { kind: 'keep' } | { kind: 'update'; policy: { allowCidrs: string[]; allowDomains: string[] } };

/**
 * The local side of a live update from `current` to `next` (pure). Throws UNIMPLEMENTED naming
 * the call for the changes Modal makes and the emulator cannot.
 */
export function planNetworkChange(current: LocalNetwork, next: LocalNetwork): NetworkChange {
  const notEmulated = (why: string) =>
    new RpcError(
      grpc.status.UNIMPLEMENTED,
      `TaskSetNetworkAccess (Sandbox.updateNetworkPolicy) is not emulated for this change: ${why} (the Modal emulator runs sandboxes in the local provider, whose network is fixed at create except between allowlists)`,
    );
  if (typeof current === 'object') {
    if (next === 'allow') {
      throw notEmulated(
        'opening a sandbox created with an allowlist to everything needs a route out that its local sandbox was created without',
      );
    }
    if (next === 'block') throw new Error('unreachable: an update is always an allowlist');
    return { kind: 'update', policy: next };
  }
  if (current === 'block') {
    throw notEmulated(
      'a sandbox created with blockNetwork has no network; create it with an empty outboundCidrAllowlist to change its policy later',
    );
  }
  if (next === 'allow') return { kind: 'keep' };
  throw notEmulated(
    'a sandbox created without an allowlist (or with a wildcard) keeps its route out; create it with an outboundCidrAllowlist or outboundDomainAllowlist to narrow it later',
  );
}

export function networkHandlers(state: ModalState): Pick<RpcHandlers, 'taskSetNetworkAccess'> {
  return {
    async taskSetNetworkAccess(request) {
      const found = state.runningTask(request.taskId);
      const access = request.networkAccess;
      // What the service's own message says it takes: open access is an allow-all allowlist.
      if (access?.networkAccessType !== networkAccessType.allowlist) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'TaskSetNetworkAccess: only an ALLOWLIST network access is supported');
      }
      const change = planNetworkChange(found.data.network, allowlistNetwork(access));
      if (change.kind === 'update') {
        await found.local.updateNetwork(change.policy).catch((error: unknown) => {
          if (SandboxCapabilityUnsupportedError.isInstance(error)) {
            throw new RpcError(
              grpc.status.UNIMPLEMENTED,
              `TaskSetNetworkAccess (Sandbox.updateNetworkPolicy) is not emulated here: ${error.message}`,
            );
          }
          throw asRpcError(error);
        });
        found.data.network = change.policy;
      }
      return {};
    },
  };
}
