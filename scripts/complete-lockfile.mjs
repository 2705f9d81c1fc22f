#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages that the registry
// reachable here does not serve (rollup's and cbor-extract's builds for other systems).
// Without their entries `npm ci` refuses the lockfile as "out of sync". Each added entry carries
// the os/cpu/libc read from the package name, so npm skips it on other platforms and fetches it
// by name and version where it applies (optional: a failed fetch is not an error).
// Run after changing dependencies: `npm install && node scripts/complete-lockfile.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const osNames = new Set(['darwin', 'linux', 'win32', 'android', 'freebsd', 'openbsd', 'openharmony', 'sunos', 'aix', 'netbsd']);
let added = 0;
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const base = location === '' ? '' : `${location}/`;
    const candidates = [`${base}node_modules/${name}`, `node_modules/${name}`];
    if (candidates.some((candidate) => packages[candidate])) continue;
    const platform = platformOf(name);
    if (!platform) continue;
    packages[`node_modules/${name}`] = {
      version: spec.replace(/^[~^=]/, ''),
      ...(platform.cpu ? { cpu: [platform.cpu] } : {}),
      ...(platform.libc ? { libc: [platform.libc] } : {}),
      dev: entry.dev ?? undefined,
      license: undefined,
      optional: true,
      os: [platform.os],
    };
    added++;
  }
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} platform package entr${added === 1 ? 'y' : 'ies'}`);

function platformOf(name) {
  const tokens = name.split('/').pop().split('-');
  const osIndex = tokens.findIndex((token) => osNames.has(token));
  if (osIndex === -1) return undefined;
  const os = tokens[osIndex];
  const cpu = tokens[osIndex + 1];
  const rest = tokens.slice(osIndex + 2).join('-');
  const libc = os === 'linux' ? (rest.includes('musl') ? 'musl' : rest.includes('gnu') ? 'glibc' : undefined) : undefined;
  return {
    os,
    cpu:
      cpu === 'arm' ||
      cpu === 'arm64' ||
      cpu === 'x64' ||
      cpu === 'ia32' ||
      cpu === 'loong64' ||
      cpu === 'ppc64' ||
      cpu === 'riscv64' ||
      cpu === 's390x'
        ? cpu
        : undefined,
    libc,
  };
}
