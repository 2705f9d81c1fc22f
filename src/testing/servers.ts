/**
 * Test servers started inside sandboxes: plain HTTP on one port and a WebSocket echo on another.
 * Written for both node and python3 so the suite runs on any image that has one of them.
 */
const nodeServer = String.raw`
const http = require('http'), crypto = require('crypto');
const [httpPort, wsPort] = process.argv.slice(1).map(Number);
http.createServer((req, res) => res.end('hello from ' + req.url)).listen(httpPort, '0.0.0.0');
const ws = http.createServer((req, res) => { res.statusCode = 426; res.end(); });
ws.on('upgrade', (req, socket) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  socket.on('data', (frame) => {
    let length = frame[1] & 127, offset = 2;
    if (length === 126) { length = frame.readUInt16BE(2); offset = 4; }
    const mask = frame.subarray(offset, offset + 4);
    const payload = Buffer.from(frame.subarray(offset + 4, offset + 4 + length)).map((b, i) => b ^ mask[i % 4]);
    const text = Buffer.concat([Buffer.from('echo:'), payload]);
    const header = text.length < 126 ? Buffer.from([0x81, text.length]) : Buffer.from([0x81, 126, text.length >> 8, text.length & 255]);
    socket.write(Buffer.concat([header, text]));
  });
}).listen(wsPort, '0.0.0.0');
`;

const pythonServer = String.raw`
import sys, socket, threading, hashlib, base64, http.server
http_port, ws_port = int(sys.argv[1]), int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('hello from ' + self.path).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
threading.Thread(target=http.server.ThreadingHTTPServer(('0.0.0.0', http_port), Handler).serve_forever, daemon=True).start()
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); server.bind(('0.0.0.0', ws_port)); server.listen(8)
def serve(conn):
    data = b''
    while b'\r\n\r\n' not in data: data += conn.recv(4096)
    key = [line.split(b':', 1)[1].strip() for line in data.split(b'\r\n') if line.lower().startswith(b'sec-websocket-key')][0]
    accept = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    conn.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
    frame = conn.recv(65536); length = frame[1] & 127; offset = 2
    if length == 126: length = int.from_bytes(frame[2:4], 'big'); offset = 4
    mask = frame[offset:offset + 4]
    text = b'echo:' + bytes(b ^ mask[i % 4] for i, b in enumerate(frame[offset + 4:offset + 4 + length]))
    conn.sendall((bytes([0x81, len(text)]) if len(text) < 126 else bytes([0x81, 126]) + len(text).to_bytes(2, 'big')) + text)
while True:
    conn, _ = server.accept(); threading.Thread(target=serve, args=(conn,), daemon=True).start()
`;

/** A command that starts both servers in the background, or undefined when the image has no runtime for them. */
export function serverCommand(runtime: 'node' | 'python3', httpPort: number, wsPort: number): string[] {
  const program = runtime === 'node' ? ['node', '-e', nodeServer] : ['python3', '-c', pythonServer];
  const quoted = [...program, String(httpPort), String(wsPort)].map((part) => `'${part.replaceAll("'", `'\\''`)}'`).join(' ');
  return ['/bin/sh', '-c', `(setsid ${quoted} > /tmp/suite-server.log 2>&1 &); exit 0`];
}
