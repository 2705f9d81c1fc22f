import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * A minimal WebSocket client: opens the connection, sends one text message and resolves with the
 * first text message received. Hand-written (about 40 lines of RFC 6455) so that the published
 * conformance suite needs no WebSocket dependency.
 */
export function webSocketEcho(url: string, message: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const timer = setTimeout(() => reject(new Error(`no WebSocket reply from ${url} in ${timeoutMs} ms`)), timeoutMs);
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' },
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.on('response', (response) => {
      clearTimeout(timer);
      reject(new Error(`expected 101 Switching Protocols, got ${response.statusCode}`));
    });
    req.on('upgrade', (response, socket, head) => {
      const expected = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      if (response.headers['sec-websocket-accept'] !== expected) {
        clearTimeout(timer);
        socket.destroy();
        return reject(new Error('bad Sec-WebSocket-Accept'));
      }
      const payload = Buffer.from(message);
      const mask = randomBytes(4);
      const header =
        payload.length < 126
          ? Buffer.from([0x81, 0x80 | payload.length])
          : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
      socket.write(Buffer.concat([header, mask, payload.map((byte, index) => byte ^ mask[index % 4]!)]));
      let buffered = head;
      const tryFrame = () => {
        if (buffered.length < 2) return;
        let length = buffered[1]! & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffered.length < 4) return;
          length = buffered.readUInt16BE(2);
          offset = 4;
        }
        if (buffered.length < offset + length) return;
        clearTimeout(timer);
        socket.destroy();
        resolve(buffered.subarray(offset, offset + length).toString());
      };
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        tryFrame();
      });
      tryFrame();
    });
    req.end();
  });
}
