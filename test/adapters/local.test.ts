import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { localHostResources } from '../host-resources.js';

defineSandboxConformanceSuite({
  name: 'local',
  describe,
  it,
  expect,
  beforeAll,
  afterAll,
  onTestFailed,
  capabilities: localCapabilities,
  createProvider: () => createLocalSandboxProvider(),
  // Counted before and after the leak tests: each must return to its baseline.
  hostResources: () => localHostResources(),
});
