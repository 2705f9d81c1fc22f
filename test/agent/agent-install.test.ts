import { expect, it } from 'vitest';
import { AgentSessionError, defaultClaudeCodeVersion, ensureClaudeCode } from '../../src/agent/index.js';
import { describeWithAgentHarness } from './harness.js';

describeWithAgentHarness('ensureClaudeCode', { sandbox: true }, (harness) => {
  it('accepts the mounted host binary at the pinned version without installing', async () => {
    const found = await ensureClaudeCode(harness.sandbox, {
      executable: harness.executable,
      version: defaultClaudeCodeVersion,
      install: false,
    });
    expect(found).toEqual({ executable: harness.executable, version: defaultClaudeCodeVersion, installed: false });
  });

  it('reports a missing CLI or another version as typed errors when installing is off', async () => {
    const missing = await ensureClaudeCode(harness.sandbox, { executable: '/nowhere/claude', install: false }).catch(
      (caught: unknown) => caught,
    );
    expect(AgentSessionError.isInstance(missing) && missing.reason).toBe('cli-not-found');
    const other = await ensureClaudeCode(harness.sandbox, { executable: harness.executable, version: '1.0.0', install: false }).catch(
      (caught: unknown) => caught,
    );
    expect(AgentSessionError.isInstance(other) && other.reason).toBe('cli-version-mismatch');
  });

  it('fails installing with a typed error when npm cannot finish (network blocked, short limit)', async () => {
    const failed = await ensureClaudeCode(harness.sandbox, {
      executable: '/nowhere/claude',
      version: defaultClaudeCodeVersion,
      installTimeoutMs: 5_000,
    }).catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(failed) && failed.reason).toBe('cli-install-failed');
  });
});
