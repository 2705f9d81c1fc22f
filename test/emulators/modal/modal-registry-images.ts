/**
 * Which local image a registry tag (`images.fromRegistry(tag)`) runs on. The emulator pulls
 * nothing: a tag maps to a local root filesystem whose userland keeps the tag's promise, built by
 * scripts/build-emulator-images.sh (run as root; CI runs it):
 * - `python:*` (any version or variant): Debian bookworm with python3 and `python` (3.11, not
 *   the tag's version; no pip);
 * - `alpine:*`: busybox and its applets only (Debian's busybox-static), so `/bin/sh` is busybox
 *   ash as on Alpine, with its exit codes (127 for a missing command, `exit 300` is 44); there is
 *   no musl, no apk and no /etc/os-release;
 * - any other tag (debian, ubuntu, node, ...): the local host image (the host's /usr read-only).
 * A tag whose image was not built is FAILED_PRECONDITION naming the script.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RpcError } from './modal-rpc.js';
import type { ModalState } from './modal-state.js';

/** Where scripts/build-emulator-images.sh puts its images. */
export function emulatorImagesDir(): string {
  return process.env.SANDPORT_EMULATOR_IMAGES_DIR ?? '/var/cache/sandport/rootfs/emulator';
}

const families: Array<{ pattern: RegExp; image: string }> = [
  // The image's name is the last path component, on any registry (docker.io/library/python, an ECR repo ...).
  { pattern: /(^|\/)python(:|@|$)/, image: 'python' },
  { pattern: /(^|\/)alpine(:|@|$)/, image: 'busybox' },
];

/** The image id for a registry tag, registering its local rootfs on first use. */
export function registryImage(state: ModalState, tag: string): string {
  const family = families.find(({ pattern }) => pattern.test(tag));
  if (!family) return 'im-host';
  const id = `im-registry-${family.image}`;
  if (state.images.has(id)) return id;
  const rootfs = join(emulatorImagesDir(), family.image);
  if (!existsSync(join(rootfs, '.sandport-complete'))) {
    throw new RpcError(
      grpc.status.FAILED_PRECONDITION,
      `The Modal emulator runs ${tag} on its local ${family.image} image, which is not built: run sudo bash scripts/build-emulator-images.sh`,
    );
  }
  state.images.set(id, { rootfs });
  return id;
}
