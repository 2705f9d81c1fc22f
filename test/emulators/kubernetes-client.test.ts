/**
 * The Kubernetes emulator through the real `@kubernetes/client-node` 1.4 (its generated
 * CoreV1Api, NetworkingV1Api, Watch and KubeConfig, as its README shows them): discovery, pods
 * with label and field selectors and paging, watch with resume and 410, the three patch types,
 * delete with ownerReference garbage collection, Secrets, and Status error bodies. Pods run in
 * local bubblewrap sandboxes.
 */
import { CoreV1Api, KubeConfig, NetworkingV1Api, PatchStrategy, Watch, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubernetesEmulator, type KubernetesEmulator } from './kubernetes/index.js';
import { isRunning, kubeConfigFor, podBody, rawGet, rejection, waitForPod } from './kubernetes/k8s-test-client.js';
import { readFileSync } from 'node:fs';

let emulator: KubernetesEmulator;
let config: KubeConfig;
let core: CoreV1Api;
const namespace = 'default';

beforeAll(async () => {
  emulator = await startKubernetesEmulator({ startDelayMs: 0 });
  config = kubeConfigFor(emulator.kubeconfigPath);
  core = config.makeApiClient(CoreV1Api);
}, 60_000);
afterAll(async () => emulator?.close(), 60_000);

async function gone(name: string): Promise<void> {
  for (;;) {
    const listed = await core.listNamespacedPod({ namespace, fieldSelector: `metadata.name=${name}` });
    if (listed.items.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('discovery and errors', () => {
  it('serves /api, /apis and the resource lists kubectl reads, over TLS the kube config trusts', async () => {
    const resources = await core.getAPIResources();
    const names = resources.resources.map((resource) => resource.name);
    expect(names).toEqual(expect.arrayContaining(['pods', 'pods/exec', 'pods/portforward', 'pods/log', 'secrets', 'namespaces']));
    const networking = await config.makeApiClient(NetworkingV1Api).getAPIResources();
    expect(networking.resources.map((resource) => resource.name)).toContain('networkpolicies');
    expect(emulator.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('answers an unknown route with a 404 Status naming the call', async () => {
    const answer = await rawGet(config, '/apis/apps/v1/namespaces/default/deployments');
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body)).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'NotFound',
      code: 404,
      message: 'the Kubernetes emulator does not implement GET /apis/apps/v1/namespaces/default/deployments',
    });
    expect(answer.headers['kubernetes-emulator-unimplemented']).toBe('1');
  });

  it('refuses a wrong token with a 401 Unauthorized Status', async () => {
    const wrong = new KubeConfig();
    wrong.loadFromString(readFileSync(emulator.kubeconfigPath, 'utf8').replace(emulator.token, 'not-the-token'));
    expect(await rejection(wrong.makeApiClient(CoreV1Api).listNamespacedPod({ namespace }))).toMatchObject({ code: 401 });
    const answer = await rawGet(wrong, '/api/v1/namespaces/default/pods');
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
  });

  it('answers a missing pod with 404 NotFound, a duplicate with 409 AlreadyExists, a bad spec with 422 Invalid naming the field', async () => {
    expect(await rejection(core.readNamespacedPod({ namespace, name: 'nope' }))).toMatchObject({
      code: 404,
      reason: 'NotFound',
      message: 'pods "nope" not found',
      details: { name: 'nope', kind: 'pods' },
    });
    const invalid = await rejection(
      core.createNamespacedPod({ namespace, body: { metadata: { name: 'bad' }, spec: { containers: [{ name: 'main' } as never] } } }),
    );
    expect(invalid).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(invalid.message).toContain('spec.containers[0].image: Required value');
    expect(await rejection(core.createNamespacedPod({ namespace, body: podBody('Upper_Case') }))).toMatchObject({
      code: 422,
      reason: 'Invalid',
    });
    expect(await rejection(core.createNamespacedPod({ namespace: 'no-such-namespace', body: podBody('p') }))).toMatchObject({
      code: 404,
      message: 'namespaces "no-such-namespace" not found',
    });
    await core.createNamespacedPod({ namespace, body: podBody('dup') });
    expect(await rejection(core.createNamespacedPod({ namespace, body: podBody('dup') }))).toMatchObject({
      code: 409,
      reason: 'AlreadyExists',
      message: 'pods "dup" already exists',
    });
    await core.deleteNamespacedPod({ namespace, name: 'dup', gracePeriodSeconds: 0 });
  });

  it('refuses a pod whose RuntimeClass does not exist with 403 Forbidden', async () => {
    const status = await rejection(core.createNamespacedPod({ namespace, body: podBody('rc', { spec: { runtimeClassName: 'gvisor' } }) }));
    expect(status).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect(status.message).toContain('RuntimeClass "gvisor" not found');
  });

  it('refuses an unknown label selector syntax and an unsupported field selector with 400', async () => {
    expect(await rejection(core.listNamespacedPod({ namespace, labelSelector: 'a in b' }))).toMatchObject({
      code: 400,
      reason: 'BadRequest',
    });
    expect(await rejection(core.listNamespacedPod({ namespace, fieldSelector: 'spec.image=x' }))).toMatchObject({
      code: 400,
      message: 'field label not supported: spec.image',
    });
  });
});

describe('pods', () => {
  it('creates a pod that goes Pending → Running with its conditions, container state and generated name', async () => {
    const created = await core.createNamespacedPod({
      namespace,
      body: { ...podBody(''), metadata: { generateName: 'gen-', labels: { app: 'web' } } },
    });
    expect(created.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.status?.phase).toBe('Pending');
    const running = await waitForPod(config, namespace, created.metadata!.name!, isRunning);
    expect(running.spec?.nodeName).toBe('sandport-emulator-node');
    expect(running.status?.conditions?.find((condition) => condition.type === 'Ready')?.status).toBe('True');
    expect(running.status?.containerStatuses?.[0]).toMatchObject({ name: 'main', ready: true, restartCount: 0, state: { running: {} } });
    await core.deleteNamespacedPod({ namespace, name: created.metadata!.name!, gracePeriodSeconds: 0 });
  });

  it('lists by label selector (=, !=, in, notin, exists, !exists) and field selector, and pages with limit/continue', async () => {
    const specs: Array<[string, Record<string, string>]> = [
      ['sel-a', { tier: 'web', env: 'prod' }],
      ['sel-b', { tier: 'db', env: 'prod' }],
      ['sel-c', { tier: 'web' }],
    ];
    for (const [name, labels] of specs) await core.createNamespacedPod({ namespace, body: podBody(name, { labels }) });
    const names = async (labelSelector: string, fieldSelector?: string) =>
      (await core.listNamespacedPod({ namespace, labelSelector, ...(fieldSelector ? { fieldSelector } : {}) })).items
        .map((pod) => pod.metadata!.name)
        .filter((name) => name!.startsWith('sel-'));
    expect(await names('tier=web')).toEqual(['sel-a', 'sel-c']);
    expect(await names('tier==web,env=prod')).toEqual(['sel-a']);
    expect(await names('tier!=web')).toEqual(['sel-b']);
    expect(await names('tier in (db, web),env')).toEqual(['sel-a', 'sel-b']);
    expect(await names('tier notin (web)')).toEqual(['sel-b']);
    expect(await names('tier,!env')).toEqual(['sel-c']);
    expect(await names('', 'metadata.name=sel-b')).toEqual(['sel-b']);
    expect(await names('tier', 'metadata.name!=sel-b')).toEqual(['sel-a', 'sel-c']);
    const first = await core.listNamespacedPod({ namespace, labelSelector: 'tier', limit: 2 });
    expect(first.items.map((pod) => pod.metadata!.name)).toEqual(['sel-a', 'sel-b']);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const second = await core.listNamespacedPod({ namespace, labelSelector: 'tier', limit: 2, _continue: first.metadata!._continue! });
    expect(second.items.map((pod) => pod.metadata!.name)).toEqual(['sel-c']);
    expect(second.metadata?._continue).toBeUndefined();
    for (const [name] of specs) await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 });
    for (const [name] of specs) await gone(name);
  });

  it('selects by status.phase', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('phase-a') });
    await waitForPod(config, namespace, 'phase-a', isRunning);
    const running = await core.listNamespacedPod({ namespace, fieldSelector: 'status.phase=Running,metadata.name=phase-a' });
    expect(running.items.map((pod) => pod.metadata!.name)).toEqual(['phase-a']);
    const pending = await core.listNamespacedPod({ namespace, fieldSelector: 'status.phase=Pending,metadata.name=phase-a' });
    expect(pending.items).toEqual([]);
    await core.deleteNamespacedPod({ namespace, name: 'phase-a', gracePeriodSeconds: 0 });
  });
});

describe('watch', () => {
  it('streams ADDED, MODIFIED and DELETED for a selector, and resumes from a resourceVersion', async () => {
    const seen: string[] = [];
    let resumeFrom = '';
    let controller: AbortController | undefined;
    const deleted = new Promise<void>((resolve, reject) => {
      void new Watch(config)
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { labelSelector: 'watch=me' },
          (type, pod: V1Pod) => {
            seen.push(`${type}:${pod.metadata?.name}:${pod.status?.phase}`);
            if (type === 'ADDED') resumeFrom = pod.metadata!.resourceVersion!;
            if (type === 'DELETED') resolve();
          },
          (error) => error && reject(error as Error),
        )
        .then((started) => (controller = started), reject);
    });
    // The watch's headers arrive before any event (client-node waits for them).
    await new Promise((resolve) => setTimeout(resolve, 100));
    await core.createNamespacedPod({ namespace, body: podBody('watched', { labels: { watch: 'me' } }) });
    await waitForPod(config, namespace, 'watched', isRunning);
    await core.deleteNamespacedPod({ namespace, name: 'watched', gracePeriodSeconds: 0 });
    await deleted;
    controller?.abort();
    expect(seen[0]).toBe('ADDED:watched:Pending');
    expect(seen).toContain('MODIFIED:watched:Running');
    expect(seen.at(-1)).toMatch(/^DELETED:watched:/);
    // Resuming after the ADDED event replays everything after it, ending in the DELETED one.
    const replayed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      void new Watch(config)
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { labelSelector: 'watch=me', resourceVersion: resumeFrom, timeoutSeconds: 1 },
          (type) => replayed.push(type),
          (error) => (error ? reject(error as Error) : resolve()),
        )
        .catch(reject);
    });
    expect(replayed[0]).toBe('MODIFIED');
    expect(replayed.at(-1)).toBe('DELETED');
    expect(replayed.length).toBe(seen.length - 1);
  });

  it('sends synthetic ADDED events for the objects that exist when it starts without a resourceVersion', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('existing', { labels: { watch: 'existing' } }) });
    const events: Array<{ type: string; object: Record<string, unknown> }> = [];
    await new Promise<void>((resolve, reject) => {
      void new Watch(config)
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { labelSelector: 'watch=existing', timeoutSeconds: 1 },
          (type, object) => events.push({ type, object }),
          (error) => (error ? reject(error as Error) : resolve()),
        )
        .catch(reject);
    });
    expect(events[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'existing' } } });
    await core.deleteNamespacedPod({ namespace, name: 'existing', gracePeriodSeconds: 0 });
  });
});

describe('watch history', () => {
  it('answers a watch from a compacted resourceVersion with an ERROR event carrying 410 Expired, a malformed one with 400, and sends bookmarks when allowed', async () => {
    const small = await startKubernetesEmulator({ watchHistory: 5, bookmarkIntervalMs: 50 });
    try {
      const smallConfig = kubeConfigFor(small.kubeconfigPath);
      const smallCore = smallConfig.makeApiClient(CoreV1Api);
      const first = await smallCore.createNamespacedSecret({ namespace, body: { metadata: { name: 's0' }, stringData: { a: '0' } } });
      for (let index = 1; index < 10; index++)
        await smallCore.createNamespacedSecret({ namespace, body: { metadata: { name: `s${index}` }, stringData: { a: String(index) } } });
      const events: Array<{ type: string; object: Record<string, unknown> }> = [];
      await new Promise<void>((resolve, reject) => {
        void new Watch(smallConfig)
          .watch(
            `/api/v1/namespaces/${namespace}/secrets`,
            { resourceVersion: first.metadata!.resourceVersion! },
            (type, object) => events.push({ type, object }),
            (error) => (error ? reject(error as Error) : resolve()),
          )
          .catch(reject);
      });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
      expect(await rejection(smallCore.listNamespacedSecret({ namespace, watch: true, resourceVersion: 'abc' } as never))).toMatchObject({
        code: 400,
        reason: 'BadRequest',
      });
      // With allowWatchBookmarks, BOOKMARK events carry the current resourceVersion until the timeout ends the stream.
      const bookmarks: Array<{ type: string; object: { metadata?: { resourceVersion?: string } } }> = [];
      await new Promise<void>((resolve, reject) => {
        void new Watch(smallConfig)
          .watch(
            `/api/v1/namespaces/${namespace}/secrets`,
            { resourceVersion: '0', allowWatchBookmarks: true, timeoutSeconds: 1 },
            (type, object) => bookmarks.push({ type, object }),
            (error) => (error ? reject(error as Error) : resolve()),
          )
          .catch(reject);
      });
      expect(bookmarks.filter((event) => event.type === 'ADDED')).toHaveLength(10);
      const marks = bookmarks.filter((event) => event.type === 'BOOKMARK');
      expect(marks.length).toBeGreaterThan(0);
      // The nine creates after the first each took a resourceVersion.
      expect(Number(marks[0]!.object.metadata?.resourceVersion)).toBe(Number(first.metadata!.resourceVersion) + 9);
    } finally {
      await small.close();
    }
  });
});

describe('patch', () => {
  it('applies JSON patch (the default), merge patch and strategic merge patch to labels and annotations', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('patched', { labels: { a: '1', b: '2' } }) });
    const json = await core.patchNamespacedPod({
      namespace,
      name: 'patched',
      body: [
        { op: 'add', path: '/metadata/labels/c', value: '3' },
        { op: 'remove', path: '/metadata/labels/a' },
      ],
    });
    expect(json.metadata?.labels).toEqual({ b: '2', c: '3' });
    const merge = await core.patchNamespacedPod(
      { namespace, name: 'patched', body: { metadata: { labels: { b: null, d: '4' }, annotations: { note: 'x' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merge.metadata?.labels).toEqual({ c: '3', d: '4' });
    expect(merge.metadata?.annotations).toEqual({ note: 'x' });
    const strategic = await core.patchNamespacedPod(
      { namespace, name: 'patched', body: { spec: { containers: [{ name: 'main', image: 'debian:trixie' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    expect(strategic.spec?.containers.map((container) => `${container.name}=${container.image}`)).toEqual(['main=debian:trixie']);
    expect(Number(strategic.metadata?.resourceVersion)).toBeGreaterThan(Number(merge.metadata?.resourceVersion));
    const failedTest = await rejection(
      core.patchNamespacedPod({ namespace, name: 'patched', body: [{ op: 'test', path: '/metadata/labels/c', value: 'other' }] }),
    );
    expect(failedTest).toMatchObject({ code: 422 });
    const forbidden = await rejection(
      core.patchNamespacedPod({ namespace, name: 'patched', body: [{ op: 'replace', path: '/spec/restartPolicy', value: 'Always' }] }),
    );
    expect(forbidden).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(forbidden.message).toContain('pod updates may not change fields other than');
    const unknownType = await rejection(
      core.patchNamespacedPod({ namespace, name: 'patched', body: {} }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply)),
    );
    expect(unknownType).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    await core.deleteNamespacedPod({ namespace, name: 'patched', gracePeriodSeconds: 0 });
  });

  it('lets activeDeadlineSeconds only go down, never up or away', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('deadline-rules', { spec: { activeDeadlineSeconds: 600 } }) });
    const lowered = await core.patchNamespacedPod({
      namespace,
      name: 'deadline-rules',
      body: [{ op: 'replace', path: '/spec/activeDeadlineSeconds', value: 500 }],
    });
    expect(lowered.spec?.activeDeadlineSeconds).toBe(500);
    const raised = await rejection(
      core.patchNamespacedPod({
        namespace,
        name: 'deadline-rules',
        body: [{ op: 'replace', path: '/spec/activeDeadlineSeconds', value: 501 }],
      }),
    );
    expect(raised.message).toContain('must be less than or equal to previous value');
    const unset = await rejection(
      core.patchNamespacedPod({ namespace, name: 'deadline-rules', body: [{ op: 'remove', path: '/spec/activeDeadlineSeconds' }] }),
    );
    expect(unset.message).toContain('must not update from a positive integer to nil value');
    await core.deleteNamespacedPod({ namespace, name: 'deadline-rules', gracePeriodSeconds: 0 });
  });

  it('refuses a replace with a stale resourceVersion with 409 Conflict', async () => {
    const created = await core.createNamespacedPod({ namespace, body: podBody('replaced') });
    await core.patchNamespacedPod({ namespace, name: 'replaced', body: [{ op: 'add', path: '/metadata/labels', value: { x: '1' } }] });
    const stale = await rejection(core.replaceNamespacedPod({ namespace, name: 'replaced', body: created }));
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
    await core.deleteNamespacedPod({ namespace, name: 'replaced', gracePeriodSeconds: 0 });
  });
});

describe('secrets and garbage collection', () => {
  it('stores a Secret with stringData folded into base64 data and serves it to the pod as files and env', async () => {
    await core.createNamespacedPod({
      namespace,
      body: podBody('with-secret', {
        spec: { volumes: [{ name: 's', secret: { secretName: 'with-secret-env', defaultMode: 0o400 } }] },
        container: {
          volumeMounts: [{ name: 's', mountPath: '/.sandport/secrets', readOnly: true }],
          env: [{ name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'with-secret-env', key: 'TOKEN' } } }],
        },
      }),
    });
    // The pod waits for its Secret, as the kubelet waits to mount it.
    const waiting = await core.readNamespacedPod({ namespace, name: 'with-secret' });
    expect(waiting.status?.phase).toBe('Pending');
    const secret = await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'with-secret-env' }, stringData: { TOKEN: 's3cr3t value' } },
    });
    expect(secret.data).toEqual({ TOKEN: Buffer.from('s3cr3t value').toString('base64') });
    expect(secret.type).toBe('Opaque');
    expect((secret as { stringData?: unknown }).stringData).toBeUndefined();
    await waitForPod(config, namespace, 'with-secret', isRunning);
    const { Exec } = await import('@kubernetes/client-node');
    const { Writable } = await import('node:stream');
    const chunks: Buffer[] = [];
    const stdout = new Writable({ write: (chunk: Buffer, _encoding, done) => (chunks.push(chunk), done()) });
    await new Promise((resolve, reject) => {
      new Exec(config)
        .exec(
          namespace,
          'with-secret',
          'main',
          ['sh', '-c', 'cat /.sandport/secrets/TOKEN; echo; stat -c %a /.sandport/secrets/TOKEN; printf %s "$FROM_SECRET"'],
          stdout,
          null,
          null,
          false,
          resolve,
        )
        .catch(reject);
    });
    expect(Buffer.concat(chunks).toString()).toBe('s3cr3t value\n400\ns3cr3t value');
    await core.deleteNamespacedPod({ namespace, name: 'with-secret', gracePeriodSeconds: 0 });
    await core.deleteNamespacedSecret({ namespace, name: 'with-secret-env' });
  });

  it('deletes a Secret and a NetworkPolicy owned by a pod when the pod goes, and keeps them with propagationPolicy Orphan', async () => {
    const networking = config.makeApiClient(NetworkingV1Api);
    for (const [name, propagationPolicy] of [
      ['owner-bg', 'Background'],
      ['owner-orphan', 'Orphan'],
    ] as const) {
      const pod = await core.createNamespacedPod({ namespace, body: podBody(name) });
      const ownerReferences = [
        { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata!.uid!, controller: true, blockOwnerDeletion: true },
      ];
      await core.createNamespacedSecret({
        namespace,
        body: { metadata: { name: `${name}-env`, ownerReferences }, stringData: { A: 'b' } },
      });
      await networking.createNamespacedNetworkPolicy({
        namespace,
        body: {
          metadata: { name: `${name}-net`, ownerReferences },
          spec: { podSelector: { matchLabels: { x: 'y' } }, policyTypes: ['Egress'], egress: [] },
        },
      });
      await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0, propagationPolicy });
      await gone(name);
    }
    const secretNames = async () => (await core.listNamespacedSecret({ namespace })).items.map((secret) => secret.metadata!.name);
    for (;;) {
      if (!(await secretNames()).includes('owner-bg-env')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await secretNames()).toContain('owner-orphan-env');
    const policies = (await networking.listNamespacedNetworkPolicy({ namespace })).items.map((policy) => policy.metadata!.name);
    expect(policies).toContain('owner-orphan-net');
    expect(policies).not.toContain('owner-bg-net');
    const orphan = await core.readNamespacedSecret({ namespace, name: 'owner-orphan-env' });
    expect(orphan.metadata?.ownerReferences).toBeUndefined();
    await core.deleteNamespacedSecret({ namespace, name: 'owner-orphan-env' });
    await networking.deleteNamespacedNetworkPolicy({ namespace, name: 'owner-orphan-net' });
  });

  it('collects a dependent created after its owner went', async () => {
    const secret = await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name: 'late-dependent',
          ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'gone', uid: '00000000-0000-4000-8000-000000000000' }],
        },
        stringData: { A: 'b' },
      },
    });
    expect(secret.metadata?.name).toBe('late-dependent');
    for (;;) {
      const names = (await core.listNamespacedSecret({ namespace })).items.map((each) => each.metadata!.name);
      if (!names.includes('late-dependent')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('answers DELETE of a pod with the pod carrying its deletionTimestamp, and of a Secret with a Success Status', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('delete-answer') });
    await waitForPod(config, namespace, 'delete-answer', isRunning);
    const answer = await core.deleteNamespacedPod({ namespace, name: 'delete-answer', gracePeriodSeconds: 0 });
    expect(answer.kind).toBe('Pod');
    expect(answer.metadata?.deletionTimestamp).toBeDefined();
    await core.createNamespacedSecret({ namespace, body: { metadata: { name: 'delete-answer' }, stringData: { A: 'b' } } });
    const status = await core.deleteNamespacedSecret({ namespace, name: 'delete-answer' });
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'delete-answer', kind: 'secrets' } });
    expect(await rejection(core.deleteNamespacedSecret({ namespace, name: 'delete-answer' }))).toMatchObject({
      code: 404,
      reason: 'NotFound',
    });
  });
});
