/**
 * The agent host: a small Node program (CommonJS, no build step, Node ≥ 18) that `startAgentHost`
 * writes into the sandbox and runs there. It listens on one port, accepts WebSockets that carry
 * the host's token, starts `claude` processes on demand and relays their stream-json lines, and
 * keeps each agent's output as a numbered transcript so a client that went away can re-attach
 * from a cursor. Its only dependency is `ws`, uploaded beside it: Node has a WebSocket client
 * but no server, and `ws` is pure JavaScript that the app already depends on, so copying its
 * `lib/` (about 150 KB) is cheaper and safer than framing RFC 6455 by hand.
 *
 * The protocol is documented in `agent-host-protocol.ts`. The source lives in a string so that
 * it reaches the sandbox byte for byte from both `src/` and the built `dist/`, with no loader
 * or bundler step in between; it avoids template literals so the string needs no escaping.
 */
export const agentHostScript = String.raw`'use strict';
// sandport agent host: see src/agent/host/agent-host-script.ts in sandport for what this is.
const fs = require('node:fs');
const http = require('node:http');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const { WebSocketServer } = require('ws');

const port = Number(process.env.SANDPORT_AGENT_HOST_PORT);
const maxLines = Number(process.env.SANDPORT_AGENT_HOST_MAX_LINES || 100000);
// The token comes as the first line of stdin (or in a file, see the end), not in the
// environment: the agents run as the same user and could read the host's /proc/<pid>/environ.
let tokenDigest = null;
const agents = new Map();
const stderrTailBytes = 4096;

function digest(text) {
  return crypto.createHash('sha256').update(String(text)).digest();
}

// Constant time: both sides are hashed to the same length first.
function authorized(req) {
  let given = null;
  const header = req.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) given = header.slice(7);
  else given = new URL(req.url || '/', 'http://agent-host').searchParams.get('token');
  return given !== null && tokenDigest !== null && crypto.timingSafeEqual(digest(given), tokenDigest);
}

function summary(agent) {
  return {
    agent: agent.id,
    pid: agent.child.pid,
    cursor: agent.seq,
    busy: agent.pending.length > 0,
    sessionId: agent.sessionId,
    cwd: agent.cwd,
    configDir: agent.configDir,
    exit: agent.exit,
  };
}

const server = http.createServer((req, res) => {
  if (!authorized(req)) return refuse(res);
  if (req.method === 'GET' && new URL(req.url || '/', 'http://agent-host').pathname === '/agents') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ agents: Array.from(agents.values(), summary) }));
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'not found: the agent host serves GET /agents and WebSocket upgrades' }));
});

function refuse(res) {
  res.writeHead(401, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'unauthorized: wrong or missing agent host token' }));
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
server.on('upgrade', (req, socket, head) => {
  if (!authorized(req)) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n' +
      JSON.stringify({ error: 'unauthorized: wrong or missing agent host token' }));
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => serve(ws));
});

function send(ws, message) {
  if (ws.readyState === 1) ws.send(JSON.stringify(message));
}

function fail(ws, code, message) {
  send(ws, { type: 'error', message: message });
  ws.close(code, message.slice(0, 120));
}

function serve(ws) {
  let agent;
  ws.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(String(data));
    } catch (error) {
      return fail(ws, 4000, 'bad message: not JSON');
    }
    if (!agent) {
      if (message.type === 'start') agent = start(ws, message);
      else if (message.type === 'attach') agent = attach(ws, message);
      else fail(ws, 4000, 'bad message: the first message must be start or attach');
      return;
    }
    if (message.type === 'in' && typeof message.line === 'string') return input(agent, ws, message.line);
    if (message.type === 'end') return agent.child.stdin.end();
    if (message.type === 'signal' && typeof message.signal === 'string') {
      try { agent.child.kill(message.signal); } catch (error) { send(ws, { type: 'error', message: String(error) }); }
      return;
    }
    fail(ws, 4000, 'bad message: unknown type ' + JSON.stringify(message.type));
  });
  ws.on('close', () => { if (agent) agent.clients.delete(ws); });
  ws.on('error', () => undefined);
}

function start(ws, message) {
  if (typeof message.command !== 'string' || !Array.isArray(message.args)) {
    fail(ws, 4000, 'bad message: start needs command and args');
    return undefined;
  }
  const id = typeof message.agent === 'string' && message.agent ? message.agent : crypto.randomUUID();
  const existing = agents.get(id);
  if (existing && !existing.exit) {
    fail(ws, 4009, 'agent ' + id + ' is already running');
    return undefined;
  }
  const child = spawn(message.command, message.args.map(String), {
    cwd: typeof message.cwd === 'string' ? message.cwd : undefined,
    env: Object.assign({}, process.env, message.env || {}),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const agent = {
    id: id, child: child, lines: [], first: 1, seq: 0, partial: '', clients: new Set([ws]), exit: null,
    pending: [], turnStart: 1, sessionId: undefined, initRequest: undefined, initResponse: undefined,
    answered: new Set(), stderr: '',
    cwd: typeof message.cwd === 'string' ? message.cwd : process.cwd(),
    configDir: message.env && typeof message.env.CLAUDE_CONFIG_DIR === 'string' ? message.env.CLAUDE_CONFIG_DIR : undefined,
  };
  agents.set(id, agent);
  child.stdin.on('error', () => undefined);
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => output(agent, text));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    agent.stderr = (agent.stderr + text).slice(-stderrTailBytes);
    for (const client of agent.clients) send(client, { type: 'stderr', text: text });
  });
  child.on('error', (error) => finish(agent, 127, null, String(error.message || error)));
  child.on('close', (code, signal) => finish(agent, code, signal, undefined));
  send(ws, { type: 'started', agent: id, pid: child.pid, cursor: 0 });
  return agent;
}

function attach(ws, message) {
  const agent = agents.get(String(message.agent));
  if (!agent) {
    fail(ws, 4004, 'no agent ' + JSON.stringify(message.agent) + ' on this host');
    return undefined;
  }
  // Without a cursor: from the start of the running turn, or only what comes next when idle.
  const cursor = Number.isInteger(message.cursor) ? message.cursor : (agent.pending.length > 0 ? agent.turnStart - 1 : agent.seq);
  if (cursor < agent.first - 1 || cursor > agent.seq) {
    fail(ws, 4010, 'cursor ' + cursor + ' is outside the kept transcript (' + (agent.first - 1) + '..' + agent.seq + ')');
    return undefined;
  }
  send(ws, Object.assign(summary(agent), { type: 'attached', cursor: cursor, prompt: agent.pending[0], turnStart: agent.turnStart }));
  for (const entry of agent.lines) {
    if (entry.seq <= cursor || !replayable(agent, entry)) continue;
    send(ws, { type: 'out', seq: entry.seq, line: entry.line });
  }
  if (agent.exit) send(ws, Object.assign({ type: 'exit', stderrTail: agent.stderr }, agent.exit));
  else agent.clients.add(ws);
  return agent;
}

// Answers to an earlier client's requests mean nothing to a new one; questions it already answered are settled.
function replayable(agent, entry) {
  if (entry.kind === 'control_response' || entry.kind === 'control_cancel_request') return false;
  if (entry.kind === 'control_request' && agent.answered.has(entry.requestId)) return false;
  return true;
}

function input(agent, ws, line) {
  let message;
  try { message = JSON.parse(line); } catch (error) { message = undefined; }
  if (message && message.type === 'control_request' && message.request && message.request.subtype === 'initialize') {
    // The CLI initializes once; a re-attached client gets the first answer under its own request id.
    if (agent.initResponse) {
      const response = Object.assign({}, agent.initResponse, { request_id: message.request_id });
      send(ws, { type: 'out', line: JSON.stringify({ type: 'control_response', response: response }) });
      return;
    }
    agent.initRequest = message.request_id;
  }
  if (message && message.type === 'control_response' && message.response) agent.answered.add(message.response.request_id);
  if (message && message.type === 'user') {
    if (agent.pending.length === 0) agent.turnStart = agent.seq + 1;
    agent.pending.push(message.message ? message.message.content : undefined);
  }
  agent.child.stdin.write(line + '\n');
}

function output(agent, text) {
  const parts = (agent.partial + text).split('\n');
  agent.partial = parts.pop();
  for (const line of parts) if (line.trim()) record(agent, line);
}

function record(agent, line) {
  let message;
  try { message = JSON.parse(line); } catch (error) { message = {}; }
  if (typeof message.session_id === 'string' && message.session_id) agent.sessionId = message.session_id;
  if (message.type === 'control_response' && message.response && message.response.request_id === agent.initRequest)
    agent.initResponse = message.response;
  const entry = {
    seq: ++agent.seq, line: line, kind: message.type,
    requestId: message.type === 'control_request' ? message.request_id : undefined,
  };
  agent.lines.push(entry);
  if (agent.lines.length > maxLines) agent.first = agent.lines.shift().seq + 1;
  if (message.type === 'result' && agent.pending.length > 0) {
    agent.pending.shift();
    agent.turnStart = agent.seq + 1;
  }
  for (const client of agent.clients) send(client, { type: 'out', seq: entry.seq, line: line });
}

function finish(agent, code, signal, error) {
  if (agent.exit) return;
  if (agent.partial.trim()) record(agent, agent.partial);
  agent.partial = '';
  agent.exit = { exitCode: code === null ? undefined : code, signal: signal || undefined, error: error };
  for (const client of agent.clients) send(client, Object.assign({ type: 'exit', stderrTail: agent.stderr }, agent.exit));
  agent.clients.clear();
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  const running = Array.from(agents.values()).filter((agent) => !agent.exit);
  for (const agent of running) agent.child.kill('SIGTERM');
  const hard = setTimeout(() => { for (const agent of running) if (!agent.exit) agent.child.kill('SIGKILL'); }, 2000);
  const waits = running.map((agent) => new Promise((resolve) => agent.child.once('close', resolve)));
  Promise.all(waits).then(() => {
    clearTimeout(hard);
    for (const client of wss.clients) client.close(1001, 'agent host stopping');
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The exec that started the host may go away with the app; the host keeps serving.
process.on('SIGHUP', () => undefined);
process.stdin.on('error', () => undefined);
process.stdout.on('error', () => undefined);

function listen(token) {
  tokenDigest = digest(token);
  server.listen(port, '0.0.0.0', () => {
    const ready = JSON.stringify({ listening: server.address().port, pid: process.pid }) + '\n';
    process.stdout.write(ready);
    // Where exec output arrives only at the exit, the app polls this file instead of stdout.
    const readyFile = process.env.SANDPORT_AGENT_HOST_READY_FILE;
    if (readyFile) {
      fs.writeFileSync(readyFile + '.part', ready, { mode: 0o600 });
      fs.renameSync(readyFile + '.part', readyFile);
    }
  });
}

// Where exec has no stdin, the token comes in a file the host reads and deletes before it
// listens, so no agent (started later, as the same user) can find it there.
const tokenFile = process.env.SANDPORT_AGENT_HOST_TOKEN_FILE;
if (tokenFile) {
  const token = fs.readFileSync(tokenFile, 'utf8').split('\n')[0];
  fs.unlinkSync(tokenFile);
  listen(token);
} else {
  let received = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', function first(text) {
    received += text;
    const end = received.indexOf('\n');
    if (end < 0) return;
    process.stdin.off('data', first);
    process.stdin.resume();
    listen(received.slice(0, end));
    received = '';
  });
}
`;
