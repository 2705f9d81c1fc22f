import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

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
});
