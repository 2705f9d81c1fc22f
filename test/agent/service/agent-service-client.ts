/**
 * A throwaway "app" for the agent service test: attaches to an agent on the agent host with only
 * the host's address and token (as a bot or a browser would hold them), sends one prompt, and
 * prints every message it handles as a JSON line with the session's cursor. The test SIGKILLs it
 * mid-turn. Argument: JSON `{ url, token, agent, prompt, holdPermission? }`; with `holdPermission` it
 * prints `{ asked }` for a permission request and never answers it.
 */
import { AgentSession } from '../../../src/agent/index.js';
import type { Sandbox } from '../../../src/index.js';

const { url, token, agent, prompt, holdPermission } = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  token: string;
  agent: string;
  prompt: string;
  holdPermission?: boolean;
};
// Only the provider id is read when attaching over a URL: no sandbox handle is needed.
const client = { provider: 'local' } as Sandbox;
const session = await AgentSession.connect(client, {
  port: 1,
  url,
  token,
  attach: { agent },
  closeGraceMs: 1_000,
  ...(holdPermission
    ? {
        canUseTool: ({ toolName }) => {
          process.stdout.write(`${JSON.stringify({ asked: toolName })}\n`);
          return new Promise<never>(() => undefined);
        },
      }
    : {}),
});
session.events.on('message', (message) => {
  const { type, uuid } = message as { type: string; uuid?: string };
  process.stdout.write(`${JSON.stringify({ cursor: session.cursor, type, uuid })}\n`);
});
process.stdout.write(`${JSON.stringify({ attached: session.agentId })}\n`);
void session.send(prompt).result.catch(() => undefined);
// Hold the connection until killed.
setInterval(() => undefined, 60_000);
