/**
 * Limits and timeouts: a memory hog is killed and reported, an exec timeout kills a whole
 * process tree, and the sandbox's lifetime ends it on its own. Limits need root (cgroups).
 *   sudo npx tsx examples/local-limits-and-timeouts.ts
 */
import { SandboxTimeoutError } from 'sandport';
import { createLocalSandboxProvider } from 'sandport/local';

const provider = createLocalSandboxProvider();
await using sandbox = await provider.create({ network: 'block', memoryMiB: 128, pidsLimit: 64, cpu: 0.5, timeoutMs: 30_000 });

const hog = await sandbox.exec(['python3', '-c', 'x = bytearray(1024 * 1024 * 1024)']);
console.log('memory hog:', await hog.wait()); // { exitCode: 137, signal: 'SIGKILL', oomKilled: true }

try {
  await sandbox.run(['/bin/sh', '-c', 'sleep 100 & (setsid sleep 100 &); sleep 100'], { timeoutMs: 1_000 });
} catch (error) {
  if (SandboxTimeoutError.isInstance(error)) console.log(`exec timed out after ${error.timeoutMs} ms; its process tree is gone`);
  else throw error;
}

const short = await provider.create({ network: 'block', timeoutMs: 1_000 });
console.log('short-lived sandbox ended:', await short.wait()); // { state: 'terminated', reason: 'lifetime-timeout' }
