/**
 * Records the NDJSON that the unit tests replay: the real CLI (host binary) against the fake
 * API, three turns (text, Bash tool, API 401). Run: npx tsx test/agent/record-fixture.ts
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { claudeCodeHostMount } from '../../src/agent/index.js';
import { startFakeAnthropic } from '../fake-anthropic/fake-anthropic.js';

const fake = await startFakeAnthropic();
const home = await mkdtemp(join(tmpdir(), 'sandport-record-'));
const [volume] = Object.values(claudeCodeHostMount().createOptions.volumes!) as Array<{ source: string }>;
const binary = join(volume!.source, 'claude');
const child = spawn(binary, ['--output-format', 'stream-json', '--verbose', '--input-format', 'stream-json', '--max-turns=5'], {
  cwd: home,
  env: {
    PATH: process.env.PATH,
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, 'config'),
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'sk-ant-record',
    CLAUDE_CODE_MAX_RETRIES: '0',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
  },
  stdio: ['pipe', 'pipe', 'inherit'],
});
const prompts = ['hello replay', 'BASH: echo replayed', 'STATUS: 401'];
const lines: string[] = [];
let turn = 0;
const send = () =>
  child.stdin.write(
    `${JSON.stringify({ type: 'user', message: { role: 'user', content: prompts[turn] }, parent_tool_use_id: null, session_id: '' })}\n`,
  );
createInterface({ input: child.stdout }).on('line', (line) => {
  lines.push(line);
  if (JSON.parse(line).type === 'result') {
    if (++turn < prompts.length) send();
    else child.stdin.end();
  }
});
send();
await new Promise((resolve) => child.on('exit', resolve));
await writeFile(new URL('./fixtures/three-turns.ndjson', import.meta.url), `${lines.join('\n')}\n`);
await fake.close();
await rm(home, { recursive: true, force: true });
console.log(`recorded ${lines.length} lines`);
