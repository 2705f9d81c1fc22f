import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';

// The agent examples, run against the fake Messages API through the credential proxy (the same
// code path as the real API, with ANTHROPIC_BASE_URL pointing at the fake).
const root = join(import.meta.dirname, '..', '..');
// The hosting-pattern examples (agent-one-shot, agent-hybrid-resume, agent-two-agents, …) run
// in agent-patterns.test.ts, with their turns scripted.
const examples: Array<[string, RegExp]> = [
  ['agent-chat.ts', /session: \$/],
  [
    'agent-npm-allowlist.ts',
    /hello, agent, from sandport-greet[\s\S]*000 exit=56[\s\S]*installed: true[\s\S]*egress: allowed registry\.internal:80[\s\S]*egress: denied example\.com:443/,
  ],
  [
    'agent-allowlist.ts',
    /Tool said: [\s\S]*000 exit=56[\s\S]*credential proxy: [1-9]\d*\n[\s\S]*egress proxy allowed: 0\n[\s\S]*egress: denied example\.com:443 \(example\.com is not in allowDomains\)/,
  ],
];

describe.skipIf(process.platform !== 'linux')('agent examples against the fake API', () => {
  let fake: FakeAnthropic;
  beforeAll(async () => {
    fake = await startFakeAnthropic();
  });
  afterAll(async () => {
    await fake.close();
  });

  it.each(examples)(
    'examples/%s',
    async (file, expected) => {
      // Spawned asynchronously: the fake API answers from this process's event loop.
      const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples', file)], {
        cwd: root,
        env: { ...process.env, ANTHROPIC_API_KEY: 'sk-ant-fake-for-examples', ANTHROPIC_BASE_URL: fake.url },
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
      const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      if (status !== 0) console.error(output);
      expect(status).toBe(0);
      expect(output).toMatch(expected);
    },
    120_000,
  );
});
