/**
 * The emulator's serving certificate: self-signed for IP 127.0.0.1 and `localhost`, made with the
 * `openssl` binary at start (Node has no certificate generator). It is its own CA, which the kube
 * config carries as `certificate-authority-data`, so clients verify it as they would a cluster's.
 * TLS is not optional decoration: kubectl never sends a bearer token over plain HTTP.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ServingCertificate {
  key: Buffer;
  cert: Buffer;
}

/** Writes a key and certificate into `dir` and returns them. Throws when `openssl` is missing, naming it. */
export async function makeServingCertificate(dir: string): Promise<ServingCertificate> {
  const keyPath = join(dir, 'server.key');
  const certPath = join(dir, 'server.crt');
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '7',
      '-subj',
      '/CN=sandport-kubernetes-emulator',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,digitalSignature,keyCertSign',
      '-addext',
      'extendedKeyUsage=serverAuth',
    ]);
  } catch (error) {
    throw new Error(`the Kubernetes emulator needs the openssl binary to make its serving certificate: ${(error as Error).message}`);
  }
  return { key: await readFile(keyPath), cert: await readFile(certPath) };
}
