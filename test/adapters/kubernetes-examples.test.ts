/**
 * Runs examples/kubernetes-*.ts against the Kubernetes emulator, as a user would run them against
 * a cluster: the adapter finds it through KUBECONFIG (the emulator's kube config file); then each
 * again on the local provider with its one provider line swapped, as its header says. The
 * examples import `sandport/kubernetes`, which resolves to dist/ (built by `npm test`'s pretest).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample, runWithProviderLine } from '../examples/example-runner.js';
import { spawnKubernetesEmulator, type KubernetesEmulatorProcess } from '../emulators/kubernetes/spawn.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'kubernetes', 'index.js'));
if (!built) console.warn('skipping the Kubernetes examples: dist/kubernetes is missing (run `npm run build`)');
const kubernetesLine = "const provider: SandboxProvider = (await import('sandport/kubernetes')).createKubernetesSandboxProvider();";
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

const examples: Array<[string, RegExp]> = [
  [
    'kubernetes-run-command.ts',
    /stdout: hello from the pod\nstderr: a warning\nexit 3\nsorted: apple, fig, pear\ntick 1 \/ tick 2 \/ tick 3 \(exit 0\)/,
  ],
  ['kubernetes-server-and-tunnel.ts', /GET http:\/\/127\.0\.0\.1:\d+ -> served from the pod/],
  ['kubernetes-limits-and-network.ts', /outbound connection: blocked\nsandbox running, lifetime capped at 120 s/],
  ['kubernetes-many-sandboxes.ts', /listed by tag: 4\nanswers: 7, 14, 21, 28\nworker tag of the third: 3\nall terminated/],
];

describe.skipIf(!built)(`kubernetes examples${built ? '' : ' (skipped: dist/kubernetes is missing, run npm run build)'}`, () => {
  let emulator: KubernetesEmulatorProcess | undefined;
  beforeAll(async () => {
    emulator = await spawnKubernetesEmulator();
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it.each(examples)(
    'examples/%s against the emulator',
    async (file, expected) => {
      const result = await runExample(join(root, 'examples', file), { ...process.env, KUBECONFIG: emulator!.kubeconfigPath });
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );

  it.each(examples)(
    'examples/%s on the local provider by changing one line',
    async (file, expected) => {
      const result = await runWithProviderLine(file, kubernetesLine, localLine, process.env);
      expect(result.providerLines, 'the one provider line').toBe(1);
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
