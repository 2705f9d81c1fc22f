/**
 * The fake Messages API's side of the hosting-pattern examples: for each example's prompt, the
 * model calls a real model would make (tool uses the `claude` CLI executes for real in the
 * sandbox), so the examples' own checks (tests pass, the page changed, …) are earned.
 */
import type { FakeScript, FakeStep } from '../fake-anthropic/fake-anthropic.js';

const bash = (command: string): FakeStep => ({ tool: 'Bash', input: { command, description: 'Run a command' } });
const read = (path: string): FakeStep => ({ tool: 'Read', input: { file_path: path } });
const write = (path: string, content: string): FakeStep => ({ tool: 'Write', input: { file_path: path, content } });
const edit = (path: string, from: string, to: string): FakeStep => ({
  tool: 'Edit',
  input: { file_path: path, old_string: from, new_string: to },
});

/** Text of every message so far, for answers that depend on an earlier turn. */
function conversationText(messages: any[]): string {
  return messages
    .flatMap((message) => (typeof message.content === 'string' ? [message.content] : (message.content ?? [])))
    .map((block: any) => (typeof block === 'string' ? block : (block?.text ?? JSON.stringify(block?.input ?? ''))))
    .join('\n');
}

export const patternScripts: FakeScript[] = [
  // examples/agent-one-shot.ts: the ephemeral bug fix.
  {
    prompt: /The test in this repository fails/,
    steps: [
      bash('python3 -B -m unittest -q'),
      read('/workspace/calc/calc.py'),
      edit('/workspace/calc/calc.py', 'return a - b', 'return a + b'),
      bash('python3 -B -m unittest -q'),
      { text: 'Fixed add() in calc.py: it subtracted instead of adding. The test passes now.' },
    ],
  },
  // examples/agent-hybrid-resume.ts, today: the plan.
  {
    prompt: /its codename is Bluebird/,
    steps: [
      write('/workspace/app/PLAN.md', '# Bluebird\n\n1. The data model\n2. The commands\n3. Tests\n'),
      { text: 'planned' },
    ],
  },
  // Tomorrow, in a new sandbox: the codename comes only from the resumed transcript.
  {
    prompt: /Mark yesterday's first step as done/,
    steps: [
      read('/workspace/app/PLAN.md'),
      edit('/workspace/app/PLAN.md', '1. The data model', '1. [done] The data model'),
      (messages) => {
        const codename = /its codename is (\w+)/.exec(conversationText(messages))?.[1] ?? 'unknown';
        return { text: `Step 1 is marked done. The codename is ${codename}.` };
      },
    ],
  },
];
