import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

defineSandboxConformanceSuite({
  name: 'local',
  describe,
  it,
  expect,
  beforeAll,
  afterAll,
  createProvider: () => createLocalSandboxProvider(),
});
