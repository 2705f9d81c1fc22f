/**
 * The pure parts of the Kubernetes emulator, without sandboxes: label and field selectors, the
 * three patch formats, resource quantities, request paths, and the spawned emulator's handshake
 * (its kube config, namespace and token come back to the parent).
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnKubernetesEmulator } from './kubernetes/index.js';
import { parseResourcePath } from './kubernetes/k8s-http.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './kubernetes/k8s-patch.js';
import { memoryMiBOf, parseQuantity } from './kubernetes/k8s-quantity.js';
import { parseFieldSelector, parseLabelSelector } from './kubernetes/k8s-selectors.js';
import { KubeStatusError } from './kubernetes/k8s-status.js';
import { kubeConfigFor } from './kubernetes/k8s-test-client.js';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front', 'example.com/team': 'a' };
  it.each([
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['missing!=x', true],
    ['app in (db, web)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['example.com/team', true],
    ['!example.com/team', false],
    ['!missing,app=web,tier in (front)', true],
  ])('%j matches: %s', (selector, expected) => {
    expect(parseLabelSelector(selector)(labels)).toBe(expected);
  });
  it('refuses malformed selectors with a 400 Status', () => {
    for (const bad of ['app=in valid', 'a in b', '-bad=x']) {
      expect(() => parseLabelSelector(bad)).toThrow(KubeStatusError);
    }
  });
});

describe('field selectors', () => {
  const pod = { metadata: { name: 'p', namespace: 'default' }, status: { phase: 'Running' } };
  it('matches =, == and != over the supported fields, and refuses others naming them', () => {
    expect(parseFieldSelector('metadata.name=p,status.phase==Running', ['status.phase'])(pod)).toBe(true);
    expect(parseFieldSelector('status.phase!=Running', ['status.phase'])(pod)).toBe(false);
    expect(() => parseFieldSelector('spec.image=x', ['status.phase'])).toThrow('field label not supported: spec.image');
  });
});

describe('patches', () => {
  const pod = {
    metadata: { labels: { a: '1', b: '2' } },
    spec: {
      containers: [
        { name: 'main', image: 'x', env: [{ name: 'A', value: '1' }] },
        { name: 'side', image: 'y' },
      ],
    },
  };
  it('applies RFC 6902 operations, escaping ~1 and ~0', () => {
    const patched = jsonPatch({ metadata: { labels: { 'a/b': '1' } }, list: [1, 2] }, [
      { op: 'replace', path: '/metadata/labels/a~1b', value: '2' },
      { op: 'add', path: '/list/-', value: 3 },
      { op: 'add', path: '/list/0', value: 0 },
      { op: 'move', from: '/list/3', path: '/moved' },
      { op: 'copy', from: '/moved', path: '/copied' },
      { op: 'test', path: '/copied', value: 3 },
    ]);
    expect(patched).toEqual({ metadata: { labels: { 'a/b': '2' } }, list: [0, 1, 2], moved: 3, copied: 3 });
    expect(() => jsonPatch({}, [{ op: 'remove', path: '/nope' }])).toThrow(KubeStatusError);
  });
  it('merges RFC 7386 (null deletes, lists replace)', () => {
    expect(mergePatch(pod, { metadata: { labels: { a: null, c: '3' } }, spec: { containers: [] } })).toEqual({
      metadata: { labels: { b: '2', c: '3' } },
      spec: { containers: [] },
    });
  });
  it('merges lists of named objects by name in a strategic merge patch', () => {
    const patched = strategicMergePatch(pod, {
      spec: {
        containers: [
          { name: 'side', image: 'z' },
          { name: 'new', image: 'n' },
        ],
      },
    }) as typeof pod;
    expect(patched.spec.containers.map((container) => `${container.name}=${container.image}`)).toEqual(['main=x', 'side=z', 'new=n']);
    expect(patched.spec.containers[0]!.env).toEqual([{ name: 'A', value: '1' }]);
  });
});

describe('quantities', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1Ki', 1024],
    ['64Mi', 64 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1.5', 1.5],
  ])('%s is %d', (text, value) => expect(parseQuantity(text)).toBe(value));
  it('rounds memory up to whole MiB with a floor, and rejects junk', () => {
    expect(memoryMiBOf('1G')).toBe(954);
    expect(memoryMiBOf('1Ki')).toBe(16);
    expect(parseQuantity('lots')).toBeUndefined();
  });
});

describe('request paths', () => {
  it('takes core, group, namespaced, cluster-scoped and legacy watch paths apart', () => {
    expect(parseResourcePath('/api/v1/namespaces/ns/pods/p/exec')).toEqual({
      group: '',
      version: 'v1',
      namespace: 'ns',
      resource: 'pods',
      name: 'p',
      subresource: 'exec',
    });
    expect(parseResourcePath('/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies')).toMatchObject({
      group: 'networking.k8s.io',
      resource: 'networkpolicies',
      name: undefined,
    });
    expect(parseResourcePath('/api/v1/namespaces/ns')).toMatchObject({ namespace: undefined, resource: 'namespaces', name: 'ns' });
    expect(parseResourcePath('/api/v1/watch/namespaces/ns/pods')).toMatchObject({ namespace: 'ns', resource: 'pods' });
    expect(parseResourcePath('/healthz')).toBeUndefined();
  });
});

describe('the spawned emulator', () => {
  it('reports its kube config, namespace and token to the parent, and removes the kube config on close', async () => {
    const child = await spawnKubernetesEmulator({ namespace: 'sandport' });
    try {
      expect(child.namespace).toBe('sandport');
      const config = kubeConfigFor(child.kubeconfigPath);
      expect(config.getContextObject(config.getCurrentContext())?.namespace).toBe('sandport');
      const listed = await config.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'sandport' });
      expect(listed.items).toEqual([]);
    } finally {
      await child.close();
    }
    expect(existsSync(child.kubeconfigPath)).toBe(false);
  });
});
