/**
 * A sandbox from an image built on the fly: `{ base, commands }` becomes Daytona's declarative
 * builder (`Image.base(base).runCommands(...)`), built once by Daytona and reused.
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-declarative-image.ts
 * Providers that build no images (`capabilities.images.build` false, such as the local one) refuse it.
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create({
  image: { base: 'python:3.12-slim', commands: ['mkdir -p /opt/app', 'echo "built by the image" > /opt/app/marker.txt'] },
});
console.log(`marker: ${(await sandbox.run(['cat', '/opt/app/marker.txt'])).stdout.trim()}`);
console.log(`python: ${(await sandbox.run(['python3', '-c', 'print(6 * 7)'])).stdout.trim()}`);
