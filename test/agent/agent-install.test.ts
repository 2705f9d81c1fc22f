import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalSandbox } from '../../adapters/local/index.js';
import { AgentSessionError, defaultClaudeCodeVersion, ensureClaudeCode } from '../../src/agent/index.js';
import { agentSkipReason, startAgentHarness, type AgentHarness } from './harness.js';

const skip = agentSkipReason();
if (skip) console.warn(`[agent install tests] skipped: ${skip}`);

describe.skipIf(skip !== undefined)('ensureClaudeCode', () => {
  let harness: AgentHarness;
  let sandbox: LocalSandbox;
  beforeAll(async () => {
    harness = await startAgentHarness();
    sandbox = await harness.createSandbox();
  });
  afterAll(async () => {
    await sandbox?.terminate();
    await harness?.close();
  });

  it('accepts the mounted host binary at the pinned version without installing', async () => {
    const found = await ensureClaudeCode(sandbox, { executable: harness.executable, version: defaultClaudeCodeVersion, install: false });
    expect(found).toEqual({ executable: harness.executable, version: defaultClaudeCodeVersion, installed: false });
  });

  it('reports a missing CLI or another version as typed errors when installing is off', async () => {
    const missing = await ensureClaudeCode(sandbox, { executable: '/nowhere/claude', install: false }).catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(missing) && missing.reason).toBe('cli-not-found');
    const other = await ensureClaudeCode(sandbox, { executable: harness.executable, version: '1.0.0', install: false }).catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(other) && other.reason).toBe('cli-version-mismatch');
  });

  it('fails installing with a typed error when npm cannot finish (network blocked, short limit)', async () => {
    const failed = await ensureClaudeCode(sandbox, { executable: '/nowhere/claude', version: defaultClaudeCodeVersion, installTimeoutMs: 5_000 }).catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(failed) && failed.reason).toBe('cli-install-failed');
  });
});
