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
function conversationText(messages: ReadonlyArray<{ content?: unknown }>): string {
  return messages
    .flatMap((message) => (Array.isArray(message.content) ? message.content : [message.content]))
    .map((block) => {
      if (typeof block === 'string') return block;
      const { text, input } = (block ?? {}) as { text?: string; input?: unknown };
      return text ?? JSON.stringify(input ?? '');
    })
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
    steps: [write('/workspace/app/PLAN.md', '# Bluebird\n\n1. The data model\n2. The commands\n3. Tests\n'), { text: 'planned' }],
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
  // examples/agent-two-agents.ts: two agents, one directory each.
  {
    prompt: /Write API\.md in your directory/,
    steps: [
      write('/workspace/api/API.md', '# API\n\nGET /todos returns a JSON array of to-dos.\n'),
      { text: 'API.md documents GET /todos.' },
    ],
  },
  {
    prompt: /Write index\.html in your directory/,
    steps: [
      write('/workspace/web/index.html', '<!doctype html>\n<title>To-dos</title>\n<ul id="todos"></ul>\n<script src="app.js"></script>\n'),
      { text: 'index.html has an empty #todos list.' },
    ],
  },
  {
    prompt: /Read \/workspace\/api\/API\.md and write app\.js/,
    steps: [
      read('/workspace/api/API.md'),
      write(
        '/workspace/web/app.js',
        "fetch('/todos').then((r) => r.json()).then((todos) => {\n  for (const todo of todos) document.querySelector('#todos').append(Object.assign(document.createElement('li'), { textContent: todo.title }));\n});\n",
      ),
      edit(
        '/workspace/api/API.md',
        'GET /todos returns a JSON array of to-dos.\n',
        'GET /todos returns a JSON array of to-dos.\nUsed by: web\n',
      ),
      { text: 'app.js fills #todos from GET /todos; API.md is not mine to change, so I left it.' },
    ],
  },
  {
    prompt: /add the line "Used by: web" at the end of API\.md/,
    steps: [
      read('/workspace/api/API.md'),
      edit(
        '/workspace/api/API.md',
        'GET /todos returns a JSON array of to-dos.\n',
        'GET /todos returns a JSON array of to-dos.\nUsed by: web\n',
      ),
      { text: 'API.md now says it is used by web.' },
    ],
  },
  // examples/agent-site-builder.ts: edits of a site served live, through the agent service.
  {
    prompt: /change the headline to "Open for business"/,
    steps: [
      read('/workspace/site/index.html'),
      edit('/workspace/site/index.html', '<h1>Coming soon</h1>', '<h1>Open for business</h1>'),
      { text: 'The headline now reads "Open for business".' },
    ],
  },
  {
    prompt: /Add a paragraph under the headline with our hours/,
    steps: [
      read('/workspace/site/index.html'),
      edit('/workspace/site/index.html', '<h1>Open for business</h1>\n', '<h1>Open for business</h1>\n<p>Open daily, 7 to 3</p>\n'),
      { text: 'Added the opening hours under the headline.' },
    ],
  },
  // examples/agent-warm-pool.ts: one ticket per job, in a sandbox from the pool.
  {
    prompt: /^Ticket \d+: append the line/,
    steps: [
      (messages) => {
        const ticket = /Ticket (\d+): append/.exec(conversationText(messages))?.[1];
        return bash(`echo "- ticket ${ticket} handled" >> CHANGELOG.md && tail -n 1 CHANGELOG.md`);
      },
      { text: 'Appended the line to CHANGELOG.md.' },
    ],
  },
];
