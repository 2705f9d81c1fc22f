/**
 * Builds a Dockerfile (the SDK's declarative `Image`) into a local image: a sandbox of the
 * default rootfs runs the `RUN` lines in order (each through `sh -c`, with the `ENV` and
 * `WORKDIR` set so far), and its local snapshot is the result. A failing step fails the build
 * with its output in the error. See daytona-images.ts for what is and is not built.
 */
import { readText } from '../../../src/kit/index.js';
import type { LocalSandboxProvider } from '../../../adapters/local/index.js';
import { HttpError } from './daytona-http.js';
import { defaultRootfs, parseDockerfile, registryImage, type LocalImage } from './daytona-images.js';

/** Why a build failed: the step and what it printed. */
export class BuildFailure extends Error {}

/**
 * The local image for a Dockerfile. A Dockerfile that is only `FROM <image>` (what
 * `image: 'python:3.12'` sends) builds nothing. `log` gets one line per step and its output.
 * Throws `HttpError` 400 for what cannot be built, `BuildFailure` when a step fails.
 */
export async function buildDockerfile(provider: LocalSandboxProvider, content: string, log: (line: string) => void): Promise<LocalImage> {
  const plan = parseDockerfile(content);
  const base = registryImage(plan.from);
  if (plan.steps.length === 0) return base;
  const env: Record<string, string> = {};
  let workdir: string | undefined;
  const runs = plan.steps.filter((step) => step.kind === 'run');
  if (runs.length === 0) {
    for (const step of plan.steps) {
      if (step.kind === 'env') env[step.name] = step.value;
      if (step.kind === 'workdir') workdir = step.path;
    }
    return { ...base, env, workdir };
  }
  // Builds reach the network (pip install) whatever the sandbox's own policy.
  const builder = await provider.create({ image: defaultRootfs() });
  try {
    for (const step of plan.steps) {
      if (step.kind === 'env') {
        env[step.name] = step.value;
        continue;
      }
      if (step.kind === 'workdir') {
        workdir = step.path.startsWith('/') ? step.path : `${workdir ?? '/'}/${step.path}`;
        await builder.run(['mkdir', '-p', workdir]);
        continue;
      }
      log(`RUN ${step.command}`);
      const process = await builder.exec(['sh', '-c', step.command], { env, ...(workdir && { cwd: workdir }) });
      const [stdout, stderr, status] = await Promise.all([readText(process.stdout), readText(process.stderr), process.wait()]);
      for (const line of `${stdout}${stderr}`.split('\n')) if (line !== '') log(line);
      if (status.exitCode !== 0) {
        throw new BuildFailure(
          `The build step "RUN ${step.command}" exited with ${status.exitCode}: ${`${stderr}${stdout}`.trim().slice(-2000)}`,
        );
      }
    }
    const snapshot = await builder.snapshot();
    return { image: snapshot, env, workdir, imageName: plan.from };
  } catch (error) {
    if (error instanceof BuildFailure || error instanceof HttpError) throw error;
    throw new BuildFailure(`The build failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await builder.terminate().catch(() => undefined);
  }
}
