/**
 * The agent host's wire protocol: JSON text frames over one WebSocket per agent connection, at
 * `ws(s)://<tunnel>/?token=<token>` (or the token as `Authorization: Bearer <token>`; a wrong or
 * missing token gets HTTP 401 before the upgrade). `GET /agents` (same token) lists the agents.
 *
 * Client → host. The first frame binds the connection to an agent:
 * - `{ type: 'start', agent?, command, args, env?, cwd? }` starts a `claude` process (`agent`:
 *   an id to give it, default a random UUID; refused with close code 4009 while one of that id
 *   runs). Answer: `{ type: 'started', agent, pid, cursor: 0 }`.
 * - `{ type: 'attach', agent, cursor? }` joins a running (or ended) agent. Answer:
 *   `{ type: 'attached', agent, pid, cursor, busy, sessionId?, cwd, configDir?, prompt?, turnStart, exit }`, then
 *   every kept `out` frame with `seq > cursor` (answers to an earlier client's control requests
 *   and requests it already answered are left out), then live frames. Without `cursor`: from the
 *   start of the running turn (`turnStart`), or only what comes next when idle. Unknown agent:
 *   close code 4004; a cursor outside the kept transcript: 4010.
 * Then: `{ type: 'in', line }` (one stream-json line to the CLI's stdin: prompts, interrupts,
 * permission answers), `{ type: 'end' }` (stdin EOF), `{ type: 'signal', signal }`.
 *
 * Host → client: `{ type: 'out', seq?, line }` (one stream-json line of the CLI; `seq` numbers
 * the agent's transcript from 1; a frame without `seq` is for this client only, such as the
 * cached `initialize` answer a re-attached client gets), `{ type: 'stderr', text }`,
 * `{ type: 'exit', exitCode?, signal?, error?, stderrTail }`, `{ type: 'error', message }`
 * (before a close with code 4000 for a bad frame).
 */
import { z } from 'zod';

/** Close codes of the agent host (4000-4999 are the application's range). */
export const agentHostCloseCodes = {
  badMessage: 4000,
  agentNotFound: 4004,
  agentExists: 4009,
  cursorExpired: 4010,
} as const;

export const hostFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), agent: z.string(), pid: z.number().optional(), cursor: z.number() }),
  z.object({
    type: z.literal('attached'),
    agent: z.string(),
    pid: z.number().optional(),
    cursor: z.number(),
    busy: z.boolean(),
    sessionId: z.string().optional(),
    cwd: z.string().optional(),
    configDir: z.string().optional(),
    prompt: z.unknown().optional(),
    turnStart: z.number(),
    exit: z.unknown().optional(),
  }),
  z.object({ type: z.literal('out'), seq: z.number().optional(), line: z.string() }),
  z.object({ type: z.literal('stderr'), text: z.string() }),
  z.object({
    type: z.literal('exit'),
    exitCode: z.number().optional(),
    signal: z.string().optional(),
    error: z.string().optional(),
    stderrTail: z.string().optional(),
  }),
  z.object({ type: z.literal('error'), message: z.string() }),
]);

export type HostFrame = z.infer<typeof hostFrameSchema>;
export type HostHello = Extract<HostFrame, { type: 'started' | 'attached' }>;
