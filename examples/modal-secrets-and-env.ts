/**
 * Secrets and env: plain variables go in `env`; `secrets` are injected the same way but never
 * echoed in errors or events. Named Modal Secrets: `providerOptions.modal.secrets: ['name']`.
 *   npx tsx examples/modal-secrets-and-env.ts
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
await using sandbox = await provider.create({ env: { GREETING: 'hello' }, secrets: { API_TOKEN: 'not-a-real-token' } });
const result = await sandbox.run('echo "$GREETING; token has ${#API_TOKEN} characters"', { env: { GREETING: 'hello from exec' } });
console.log(result.stdout.trim());
