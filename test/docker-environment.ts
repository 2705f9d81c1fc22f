import { execSync } from 'node:child_process';

/** The image scripts/setup-docker.sh imports (debootstrap minbase), used by the docker tests. */
export const baseImage = process.env.SANDPORT_DOCKER_BASE_IMAGE ?? 'sandport/base:bookworm';

/** True when an engine answers and the base image exists. */
export function dockerAvailable(): boolean {
  try {
    execSync(`docker image inspect ${baseImage}`, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
