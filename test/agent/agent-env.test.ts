/** The CLI's environment and the credential checks of AgentSession. No sandbox. */
import { describe, expect, it } from 'vitest';
import { checkCredentials, cliEnv } from '../../src/agent/agent-env.js';
import { CredentialProxy, type AgentCredentials } from '../../src/agent/index.js';

const own = {
  CLAUDE_CONFIG_DIR: '/tmp/agent-1',
  CLAUDE_CODE_TMPDIR: '/tmp/agent-1/tmp',
  IS_SANDBOX: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  DISABLE_AUTOUPDATER: '1',
  DISABLE_TELEMETRY: '1',
  DISABLE_ERROR_REPORTING: '1',
};
const env = (credentials: AgentCredentials | undefined, extra?: Record<string, string>) =>
  cliEnv({ configDir: '/tmp/agent-1', providerId: 'local', credentials, env: extra });

describe('cliEnv', () => {
  it('gives the CLI its own config and temp directories, and no side traffic', () => {
    expect(env(undefined)).toEqual(own);
  });

  it('passes exposed credentials as the CLI’s variables', () => {
    expect(env({ apiKey: 'sk-a', oauthToken: 'oat', authToken: 'tok', baseUrl: 'http://127.0.0.1:8123', exposeToSandbox: true })).toEqual({
      ...own,
      ANTHROPIC_API_KEY: 'sk-a',
      CLAUDE_CODE_OAUTH_TOKEN: 'oat',
      ANTHROPIC_AUTH_TOKEN: 'tok',
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:8123',
    });
  });

  it('passes a proxy’s placeholder and route, never its real key', async () => {
    await using proxy = await CredentialProxy.start({ apiKey: 'sk-ant-real-secret' });
    const variables = env(proxy);
    expect(variables).toMatchObject({ ...own, ...proxy.sandboxEnv('local') });
    expect(variables.ANTHROPIC_API_KEY).toMatch(/^sk-ant-api03-sandport-proxy-/);
    expect(JSON.stringify(variables)).not.toContain('sk-ant-real-secret');
  });

  it('applies the caller’s env last', () => {
    expect(env({ apiKey: 'sk-a', exposeToSandbox: true }, { ANTHROPIC_API_KEY: 'sk-b', IS_SANDBOX: '0', EXTRA: 'x' })).toEqual({
      ...own,
      ANTHROPIC_API_KEY: 'sk-b',
      IS_SANDBOX: '0',
      EXTRA: 'x',
    });
  });
});

describe('checkCredentials', () => {
  it('accepts none, a proxy, and exposed credentials that hold one secret', async () => {
    await using proxy = await CredentialProxy.start({ apiKey: 'sk-x' });
    expect(() => checkCredentials(undefined)).not.toThrow();
    expect(() => checkCredentials(proxy)).not.toThrow();
    expect(() => checkCredentials({ oauthToken: 'oat', exposeToSandbox: true })).not.toThrow();
  });

  it('refuses credentials not said to be exposed, or holding nothing, naming the field', () => {
    expect(() => checkCredentials({ apiKey: 'sk-x' } as never)).toThrow(
      expect.objectContaining({ code: 'invalid_argument', argument: 'credentials.exposeToSandbox' }),
    );
    expect(() => checkCredentials({ baseUrl: 'http://x', exposeToSandbox: true })).toThrow(
      expect.objectContaining({ code: 'invalid_argument', argument: 'credentials' }),
    );
  });
});
