/**
 * The conformance suite against a real Kubernetes cluster (≥ 1.30, for the v5 exec protocol).
 * Runs only with SANDPORT_KUBERNETES_LIVE=1 and a kube config (KUBECONFIG or ~/.kube/config);
 * prints that it was skipped otherwise.
 *   SANDPORT_KUBERNETES_LIVE=1 KUBECONFIG=~/.kube/config npx vitest run test/adapters/kubernetes.live.test.ts
 * SANDPORT_KUBERNETES_NAMESPACE names the namespace (it needs the RBAC the README lists),
 * SANDPORT_KUBERNETES_IMAGE the image (sh, coreutils, GNU find; node or python3 for the tunnel
 * tests; util-linux `script` for the terminal tests), SANDPORT_KUBERNETES_INTERNAL_CIDRS the
 * cluster's ranges (comma-separated) for outbound-only networking.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubernetesSandboxProvider, kubernetesCapabilities } from '../../adapters/kubernetes/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const hasConfig = Boolean(process.env.KUBECONFIG) || existsSync(join(homedir(), '.kube', 'config'));
const live = process.env.SANDPORT_KUBERNETES_LIVE === '1' && hasConfig;
if (!live)
  console.warn(
    'skipping the live Kubernetes conformance run: it needs SANDPORT_KUBERNETES_LIVE=1 and a kube config (KUBECONFIG or ~/.kube/config)',
  );

describe.skipIf(!live)(`kubernetes provider (live)${live ? '' : ' (skipped: set SANDPORT_KUBERNETES_LIVE=1 with a kube config)'}`, () => {
  defineSandboxConformanceSuite({
    name: 'kubernetes-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    capabilities: kubernetesCapabilities,
    createProvider: () =>
      createKubernetesSandboxProvider({
        ...(process.env.SANDPORT_KUBERNETES_NAMESPACE ? { namespace: process.env.SANDPORT_KUBERNETES_NAMESPACE } : {}),
        ...(process.env.SANDPORT_KUBERNETES_IMAGE ? { defaultImage: process.env.SANDPORT_KUBERNETES_IMAGE } : {}),
        ...(process.env.SANDPORT_KUBERNETES_INTERNAL_CIDRS
          ? { internalCidrs: process.env.SANDPORT_KUBERNETES_INTERNAL_CIDRS.split(',') }
          : {}),
      }),
    testTimeoutMs: 300_000,
  });
});
