/** Option mapping of AgentSession to the Agent SDK: defaults, each option, resume, the escape hatch, the permission callback. No I/O. */
import type { Options as SdkOptions, SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { describe, expect, it } from 'vitest';
import { defaultMaxTurns, toSdkCanUseTool, toSdkOptions, type SdkOptionsContext } from '../../src/agent/agent-sdk-options.js';
import type { AgentSessionOptions, ToolUseRequest } from '../../src/agent/index.js';

const spawn = (_options: SpawnOptions): SpawnedProcess => {
  throw new Error('not spawned in these tests');
};
const context: SdkOptionsContext = { cwd: '/workspace', env: { CLAUDE_CONFIG_DIR: '/tmp/config' }, spawn };
const allow = () => ({ behavior: 'allow' as const });

describe('toSdkOptions', () => {
  it('defaults: bypassed permissions (the sandbox is the boundary), Claude Code’s prompt, 50 round trips, no settings files', () => {
    expect(toSdkOptions({}, context)).toEqual({
      pathToClaudeCodeExecutable: 'claude',
      cwd: '/workspace',
      env: { CLAUDE_CONFIG_DIR: '/tmp/config' },
      model: undefined,
      permissionMode: 'bypassPermissions',
      allowDangerouslySkipPermissions: true,
      allowedTools: undefined,
      disallowedTools: undefined,
      systemPrompt: { type: 'preset', preset: 'claude_code', append: undefined },
      mcpServers: undefined,
      hooks: undefined,
      maxTurns: 50,
      maxBudgetUsd: undefined,
      includePartialMessages: undefined,
      settingSources: [],
      spawnClaudeCodeProcess: spawn,
    });
    expect(defaultMaxTurns).toBe(50);
  });

  const hooks = { PreToolUse: [{ hooks: [async () => ({})] }] };
  const mcpServers = { files: { type: 'stdio' as const, command: 'mcp-files' } };
  const cases: Array<[string, AgentSessionOptions, Partial<SdkOptions>, ReadonlyArray<keyof SdkOptions>?]> = [
    ['executable', { executable: '/sandport/claude-code/claude' }, { pathToClaudeCodeExecutable: '/sandport/claude-code/claude' }],
    ['model', { model: 'sonnet' }, { model: 'sonnet' }],
    [
      'a permission callback asks in default mode',
      { canUseTool: allow },
      { permissionMode: 'default' },
      ['allowDangerouslySkipPermissions'],
    ],
    [
      'an explicit mode wins over the callback’s default',
      { canUseTool: allow, permissionMode: 'acceptEdits' },
      { permissionMode: 'acceptEdits' },
    ],
    ['an explicit bypass says it is dangerous', { permissionMode: 'bypassPermissions' }, { allowDangerouslySkipPermissions: true }],
    ['plan mode', { permissionMode: 'plan' }, { permissionMode: 'plan' }, ['allowDangerouslySkipPermissions', 'canUseTool']],
    [
      'tool rules',
      { allowedTools: ['Read', 'Bash(git:*)'], disallowedTools: ['WebFetch'] },
      { allowedTools: ['Read', 'Bash(git:*)'], disallowedTools: ['WebFetch'] },
    ],
    [
      'a system prompt replaces Claude Code’s',
      { systemPrompt: 'You are terse.', appendSystemPrompt: 'ignored' },
      { systemPrompt: 'You are terse.' },
    ],
    [
      'an appended prompt extends it',
      { appendSystemPrompt: 'Be terse.' },
      { systemPrompt: { type: 'preset', preset: 'claude_code', append: 'Be terse.' } },
    ],
    ['MCP servers and hooks pass through', { mcpServers, hooks }, { mcpServers, hooks }],
    ['limits', { maxTurns: 3, maxBudgetUsd: 0.5 }, { maxTurns: 3, maxBudgetUsd: 0.5 }],
    ['partial messages', { includePartialMessages: true }, { includePartialMessages: true }],
    [
      'a chosen session id for a new session',
      { sessionId: '0b7e8e2a-6a1e-4f7e-9c1d-2f3a4b5c6d7e' },
      { sessionId: '0b7e8e2a-6a1e-4f7e-9c1d-2f3a4b5c6d7e' },
      ['resume'],
    ],
    [
      'sdkOptions are applied last',
      { model: 'sonnet', sdkOptions: { model: 'opus', maxThinkingTokens: 1024 } },
      { model: 'opus', maxThinkingTokens: 1024 },
    ],
  ];
  it.each(cases)('%s', (_name, options, expected, absent = []) => {
    const mapped = toSdkOptions(options, context);
    expect(mapped).toMatchObject(expected);
    for (const key of absent) expect(mapped).not.toHaveProperty(key);
  });

  it('resumes a stored session (forked or not), and then ignores a chosen session id', () => {
    const options = { sessionId: '0b7e8e2a-6a1e-4f7e-9c1d-2f3a4b5c6d7e' };
    const resumed = toSdkOptions(options, { ...context, resume: { sessionId: 'stored-1', fork: false } });
    expect(resumed).toMatchObject({ resume: 'stored-1', forkSession: false });
    expect(resumed).not.toHaveProperty('sessionId');
    expect(toSdkOptions({}, { ...context, resume: { sessionId: 'stored-1', fork: true } })).toMatchObject({
      resume: 'stored-1',
      forkSession: true,
    });
  });

  it('keeps the spawn hook: sdkOptions cannot move the CLI out of the sandbox', () => {
    const hostSpawn = (): SpawnedProcess => {
      throw new Error('host');
    };
    const options = { sdkOptions: { spawnClaudeCodeProcess: hostSpawn } } as unknown as AgentSessionOptions;
    expect(toSdkOptions(options, context).spawnClaudeCodeProcess).toBe(spawn);
  });

  it('passes our permission callback in the SDK’s shape', () => {
    expect(toSdkOptions({}, context)).not.toHaveProperty('canUseTool');
    expect(typeof toSdkOptions({ canUseTool: allow }, context).canUseTool).toBe('function');
  });
});

describe('toSdkCanUseTool', () => {
  const signal = new AbortController().signal;
  const sdkContext = {
    signal,
    toolUseID: 'toolu_1',
    requestId: 'req_1',
    decisionReason: 'Path is outside allowed working directories',
    blockedPath: '/etc/passwd',
    suggestions: [
      { type: 'addRules' as const, rules: [{ toolName: 'Write' }], behavior: 'allow' as const, destination: 'session' as const },
    ],
  };

  it('asks with a request object and echoes the tool use id with an allow, keeping the input unless replaced', async () => {
    const requests: ToolUseRequest[] = [];
    const canUseTool = toSdkCanUseTool((request) => {
      requests.push(request);
      return { behavior: 'allow' };
    });
    const input = { file_path: '/etc/passwd' };
    expect(await canUseTool('Write', input, sdkContext)).toEqual({
      behavior: 'allow',
      updatedInput: input,
      updatedPermissions: undefined,
      toolUseID: 'toolu_1',
    });
    expect(requests).toEqual([
      {
        toolName: 'Write',
        input,
        toolUseId: 'toolu_1',
        signal,
        decisionReason: 'Path is outside allowed working directories',
        blockedPath: '/etc/passwd',
        suggestions: sdkContext.suggestions,
      },
    ]);
    const replaced = toSdkCanUseTool(async () => ({
      behavior: 'allow',
      updatedInput: { file_path: '/tmp/x' },
      updatedPermissions: sdkContext.suggestions,
    }));
    expect(await replaced('Write', input, sdkContext)).toEqual({
      behavior: 'allow',
      updatedInput: { file_path: '/tmp/x' },
      updatedPermissions: sdkContext.suggestions,
      toolUseID: 'toolu_1',
    });
  });

  it('turns a denial into the SDK’s deny, with its message and interrupt', async () => {
    const canUseTool = toSdkCanUseTool(() => ({ behavior: 'deny', message: 'NOPE', interrupt: true }));
    expect(await canUseTool('Bash', { command: 'rm -rf /' }, sdkContext)).toEqual({
      behavior: 'deny',
      message: 'NOPE',
      interrupt: true,
      toolUseID: 'toolu_1',
    });
  });

  it('lets the callback’s failure reach the SDK', async () => {
    const failure = new Error('callback broke');
    const canUseTool = toSdkCanUseTool(() => {
      throw failure;
    });
    await expect(canUseTool('Bash', {}, sdkContext)).rejects.toBe(failure);
  });
});
