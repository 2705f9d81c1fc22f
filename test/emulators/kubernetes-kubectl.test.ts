/**
 * The Kubernetes emulator through the real `kubectl` (the machine's /usr/bin/kubectl, a gcloud
 * dispatcher that runs the client matching the server's minor version, 1.32): a second,
 * independent client agreeing with client-node is the evidence of fidelity. Discovery, run, get
 * (server-side Table), selectors, label, patch, exec -i with stdin and its exit code, logs,
 * delete; protobuf request bodies (`kubectl create secret generic`) are refused with a 415; port-forward is shown to fail loudly (kubectl speaks SPDY for it, which the emulator
 * does not serve). Skipped, saying why, where kubectl is missing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubernetesEmulator, type KubernetesEmulator } from './kubernetes/index.js';

const kubectlPath = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((path) => existsSync(path));
let emulator: KubernetesEmulator;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs kubectl against the emulator (asynchronously: the emulator answers in this process). */
function kubectl(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      kubectlPath!,
      ['--kubeconfig', emulator.kubeconfigPath, ...args],
      { encoding: 'utf8', timeout: 60_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
    child.stdin!.end(input ?? '');
  });
}

describe.skipIf(!kubectlPath)(
  `kubectl against the emulator${kubectlPath ? '' : ' (skipped: no kubectl binary at /usr/bin/kubectl or /usr/local/bin/kubectl)'}`,
  () => {
    beforeAll(async () => {
      emulator = await startKubernetesEmulator();
    }, 60_000);
    afterAll(async () => emulator?.close(), 60_000);

    it('reads discovery and the version', async () => {
      const version = await kubectl(['version', '-o', 'json']);
      expect(version.code).toBe(0);
      expect(JSON.parse(version.stdout)).toMatchObject({ serverVersion: { gitVersion: 'v1.32.0-sandport-emulator' } });
      const resources = await kubectl(['api-resources', '--no-headers', '-o', 'name']);
      expect(resources.stdout.split('\n')).toEqual(expect.arrayContaining(['pods', 'secrets', 'networkpolicies.networking.k8s.io']));
    });

    it('runs a pod, waits for Ready, and lists it as a table and by selectors', async () => {
      expect((await kubectl(['run', 'kx', '--image=busybox', '--restart=Never', '--labels=app=demo,tier=web'])).stdout).toBe(
        'pod/kx created\n',
      );
      expect((await kubectl(['wait', '--for=condition=Ready', 'pod/kx', '--timeout=60s'])).stdout).toBe('pod/kx condition met\n');
      const table = await kubectl(['get', 'pods', '-l', 'app=demo']);
      expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
      expect(table.stdout.split('\n')[1]).toMatch(/^kx\s+1\/1\s+Running\s+0\s+\d+s$/);
      expect((await kubectl(['get', 'pods', '-l', 'tier in (web),app!=other', '-o', 'name'])).stdout).toBe('pod/kx\n');
      expect((await kubectl(['get', 'pods', '--field-selector', 'status.phase=Running', '-o', 'name'])).stdout).toBe('pod/kx\n');
      expect((await kubectl(['get', 'pods', '-l', 'app=nothing', '-o', 'name'])).stdout).toBe('');
      expect((await kubectl(['get', 'pod', 'kx', '-o', 'jsonpath={.status.phase} {.spec.nodeName}'])).stdout).toBe(
        'Running sandport-emulator-node',
      );
    });

    it('labels and patches the pod', async () => {
      expect((await kubectl(['label', 'pod', 'kx', 'extra=yes'])).stdout).toBe('pod/kx labeled\n');
      expect((await kubectl(['annotate', 'pod', 'kx', 'note=hello'])).stdout).toBe('pod/kx annotated\n');
      const patched = await kubectl(['patch', 'pod', 'kx', '--type=merge', '-p', '{"metadata":{"labels":{"extra":null,"patched":"1"}}}']);
      expect(patched.stdout).toBe('pod/kx patched\n');
      const labels = JSON.parse((await kubectl(['get', 'pod', 'kx', '-o', 'jsonpath={.metadata.labels}'])).stdout) as Record<
        string,
        string
      >;
      expect(labels).toEqual({ app: 'demo', tier: 'web', patched: '1' });
      const refused = await kubectl([
        'patch',
        'pod',
        'kx',
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/restartPolicy","value":"Always"}]',
      ]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('pod updates may not change fields other than');
    });

    it('execs with stdin and exits with the command’s exit code', async () => {
      const result = await kubectl(['exec', '-i', 'kx', '--', 'sh', '-c', 'cat; echo done; exit 4'], 'hello-stdin\n');
      expect(result.stdout).toBe('hello-stdin\ndone\n');
      expect(result.stderr).toContain('command terminated with exit code 4');
      expect(result.code).toBe(4);
      const ok = await kubectl(['exec', 'kx', '--', 'sh', '-c', 'echo to-stderr >&2']);
      expect(ok).toMatchObject({ code: 0, stdout: '', stderr: 'to-stderr\n' });
    });

    it('reports a missing pod and a missing program as the API server words them', async () => {
      const missing = await kubectl(['get', 'pod', 'nope']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('pods "nope" not found');
      const program = await kubectl(['exec', 'kx', '--', 'no-such-program']);
      expect(program.code).not.toBe(0);
      expect(program.stderr).toContain('executable file not found in $PATH');
    });

    it('creates a Secret and a pod that ends, and reads its log and terminated state', async () => {
      // `kubectl create secret generic` sends a protobuf body, which the emulator refuses (415 naming it); a manifest goes as JSON.
      const generated = await kubectl(['create', 'secret', 'generic', 'creds', '--from-literal=TOKEN=abc']);
      expect(generated.code).toBe(1);
      expect(generated.stderr).toContain('the Kubernetes emulator reads JSON bodies only, not application/vnd.kubernetes.protobuf');
      const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, stringData: { TOKEN: 'abc' } });
      // Client-side validation needs the OpenAPI documents, which the emulator does not serve.
      expect((await kubectl(['create', '--validate=false', '-f', '-'], manifest)).stdout).toBe('secret/creds created\n');
      expect((await kubectl(['get', 'secret', 'creds', '-o', 'jsonpath={.data.TOKEN}'])).stdout).toBe(
        Buffer.from('abc').toString('base64'),
      );
      await kubectl(['run', 'once', '--image=busybox', '--restart=Never', '--', 'sh', '-c', 'echo from-the-log; exit 2']);
      expect((await kubectl(['wait', '--for=jsonpath={.status.phase}=Failed', 'pod/once', '--timeout=60s'])).code).toBe(0);
      expect((await kubectl(['logs', 'once'])).stdout).toBe('from-the-log\n');
      expect(
        (await kubectl(['get', 'pod', 'once', '-o', 'jsonpath={.status.containerStatuses[0].state.terminated.exitCode}'])).stdout,
      ).toBe('2');
      expect((await kubectl(['get', 'pods', 'once', '--no-headers'])).stdout).toMatch(/^once\s+0\/1\s+Error\s+0\s+/);
    });

    it("follows a running pod's log until its main process ends", async () => {
      await kubectl(['run', 'talker', '--image=busybox', '--restart=Never', '--', 'sh', '-c', 'echo one; sleep 1; echo two']);
      await kubectl(['wait', '--for=condition=Ready', 'pod/talker', '--timeout=60s']);
      const followed = await kubectl(['logs', '-f', 'talker']);
      expect(followed).toMatchObject({ code: 0, stdout: 'one\ntwo\n' });
      await kubectl(['delete', 'pod', 'talker', '--grace-period=0']);
    });

    it('fails port-forward loudly: kubectl tunnels SPDY, which the emulator does not serve', async () => {
      const forward = await kubectl(['port-forward', 'pod/kx', '0:8080', '--pod-running-timeout=5s']);
      expect(forward.code).not.toBe(0);
      expect(forward.stderr.length).toBeGreaterThan(0);
    });

    it('deletes pods and waits until they are gone', async () => {
      const deleted = await kubectl(['delete', 'pod', 'kx', 'once', '--grace-period=1']);
      expect(deleted.stdout).toBe('pod "kx" deleted\npod "once" deleted\n');
      expect((await kubectl(['get', 'pods', '-o', 'name'])).stdout).toBe('');
    });
  },
);
