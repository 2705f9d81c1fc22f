/**
 * Docker provider benchmarks, each next to a raw dockerode baseline measured in the same run on
 * the same engine and image.
 *   npx tsx bench/docker.ts [--quick]
 * Needs an engine and the base image (scripts/setup-docker.sh); throws a one-line reason otherwise.
 */
import type { Duplex } from 'node:stream';
import { PassThrough, Readable } from 'node:stream';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { createDockerSandboxProvider } from '../adapters/docker/index.js';
import {
  formatTable,
  goals,
  latencyRow,
  repeatingSource,
  throughputRow,
  timeRepeated,
  type RowOptions,
  type TimedBenchRow,
} from './stats.js';

const MiB = 1024 * 1024;

/** A bench row; `p50Ms`/`p95Ms`/`baselineP50Ms` repeat the latency figures under unit-bearing names. */
export type DockerBenchRow = TimedBenchRow;

const latency: RowOptions = { goal: goals.ratioAtMost(1.5) };
/** Throughput rows also say the run times, which the MiB/s figures hide. */
const throughput: RowOptions = {
  goal: goals.ratioAtLeast(0.5),
  note: (row) => `p50 ${row.p50Ms.toFixed(0)} ms vs ${row.baselineP50Ms.toFixed(0)} ms`,
};

export async function runDockerBench(options: { quick?: boolean; image?: string } = {}): Promise<DockerBenchRow[]> {
  const image = options.image ?? process.env.SANDPORT_DOCKER_BASE_IMAGE ?? 'sandport/base:bookworm';
  const rounds = options.quick ? 5 : 20;
  const docker = new Docker();
  await docker.ping().catch((error: unknown) => {
    throw new Error(`no Docker engine answers (${(error as Error).message}); run scripts/setup-docker.sh`);
  });
  await docker
    .getImage(image)
    .inspect()
    .catch(() => {
      throw new Error(`image ${image} is missing; run scripts/setup-docker.sh`);
    });
  const provider = createDockerSandboxProvider({ docker, defaultImage: image });
  const rows: DockerBenchRow[] = [];

  // Warm up the engine's caches (image layers, runc) for both sides.
  await (await provider.create({ image, network: 'block' })).terminate();
  await rawCreate(docker, image).then((container) => container.remove({ force: true }));

  const creates: number[] = [];
  const terminates: number[] = [];
  for (let index = 0; index < rounds; index++) {
    let started = performance.now();
    const sandbox = await provider.create({ image, network: 'block' });
    creates.push(performance.now() - started);
    started = performance.now();
    await sandbox.terminate();
    terminates.push(performance.now() - started);
  }
  const rawCreates: number[] = [];
  const rawRemoves: number[] = [];
  for (let index = 0; index < rounds; index++) {
    let started = performance.now();
    const container = await rawCreate(docker, image);
    rawCreates.push(performance.now() - started);
    started = performance.now();
    await container.remove({ force: true });
    rawRemoves.push(performance.now() - started);
  }
  rows.push(latencyRow('create (network blocked, ready to exec)', creates, 'dockerode createContainer + start', rawCreates, latency));
  rows.push(latencyRow('terminate', terminates, 'dockerode remove({ force })', rawRemoves, latency));

  const sandbox = await provider.create({ image, network: 'block' });
  const raw = await rawCreate(docker, image);
  try {
    await sandbox.run(['true']);
    await rawExec(raw, ['true']);
    const execs = await timeRepeated(rounds * 2, () => sandbox.run(['true']));
    const rawExecs = await timeRepeated(rounds * 2, () => rawExec(raw, ['true']));
    rows.push(latencyRow('exec `true` (run to exit code)', execs, 'dockerode exec create + start + demux + inspect', rawExecs, latency));

    const fileBytes = (options.quick ? 64 : 256) * MiB;
    const chunk = new Uint8Array(MiB).fill(7);
    const source = () => repeatingSource(fileBytes);
    const writes = await timeRepeated(3, () => sandbox.files.write('/tmp/bench.bin', source()));
    const reads = await timeRepeated(3, async () => {
      let received = 0;
      for await (const piece of await sandbox.files.readStream('/tmp/bench.bin')) received += piece.byteLength;
      if (received !== fileBytes) throw new Error(`short file read: ${received}`);
    });
    const rawWrites = await timeRepeated(3, () => rawPutFile(raw, fileBytes, chunk));
    const rawReads = await timeRepeated(3, () => rawGetFile(raw, fileBytes));
    rows.push(
      throughputRow(
        `${fileBytes / MiB} MiB file write (stream)`,
        fileBytes / MiB,
        writes,
        'dockerode putArchive of one tar entry',
        rawWrites,
        throughput,
      ),
    );
    rows.push(
      throughputRow(
        `${fileBytes / MiB} MiB file read (stream)`,
        fileBytes / MiB,
        reads,
        'dockerode getArchive, tar parsed',
        rawReads,
        throughput,
      ),
    );

    const outputBytes = (options.quick ? 256 : 1024) * MiB;
    const outputs = await timeRepeated(3, async () => {
      const process = await sandbox.exec(['head', '-c', String(outputBytes), '/dev/zero']);
      void process.stderr.cancel();
      let received = 0;
      for await (const piece of process.stdout) received += piece.byteLength;
      await process.wait();
      if (received !== outputBytes) throw new Error(`short stdout: ${received}`);
    });
    const rawOutputs = await timeRepeated(3, async () => {
      const received = await rawExec(raw, ['head', '-c', String(outputBytes), '/dev/zero']);
      if (received !== outputBytes) throw new Error(`short raw stdout: ${received}`);
    });
    rows.push(
      throughputRow(
        `${outputBytes / MiB} MiB through stdout`,
        outputBytes / MiB,
        outputs,
        'dockerode exec, demuxStream into a sink',
        rawOutputs,
        throughput,
      ),
    );
  } finally {
    await sandbox.terminate();
    await raw.remove({ force: true }).catch(() => undefined);
  }
  return rows;
}

/** The raw baseline of a sandbox: the same image, no network, an init, a process that waits. */
async function rawCreate(docker: Docker, image: string): Promise<Docker.Container> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sleep', 'infinity'],
    Labels: { 'dev.sandport.bench': 'raw' },
    HostConfig: { AutoRemove: true, Init: true, NetworkMode: 'none' },
  });
  await container.start();
  return container;
}

/** Runs a command the way the engine's docs show, and returns the stdout byte count. */
async function rawExec(container: Docker.Container, command: string[]): Promise<number> {
  const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Duplex;
  let received = 0;
  const stdout = new PassThrough();
  stdout.on('data', (piece: Buffer) => (received += piece.length));
  container.modem.demuxStream(stream, stdout, new PassThrough().resume());
  await new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  let info = await exec.inspect();
  while (info.Running) info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`raw exec exited ${info.ExitCode}`);
  return received;
}

async function rawPutFile(container: Docker.Container, size: number, chunk: Uint8Array): Promise<void> {
  const pack = tar.pack();
  const entry = pack.entry({ name: 'raw.bin', size, mode: 0o644 });
  let sent = 0;
  const body = new Readable({
    read() {
      if (sent >= size) return this.push(null);
      sent += chunk.byteLength;
      this.push(chunk);
    },
  });
  body.pipe(entry);
  body.on('end', () => pack.finalize());
  await container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/tmp' });
}

async function rawGetFile(container: Docker.Container, size: number): Promise<void> {
  const archive = (await container.getArchive({ path: '/tmp/raw.bin' })) as unknown as NodeJS.ReadableStream;
  const extract = tar.extract();
  let received = 0;
  extract.on('entry', (_header, stream, next) => {
    stream.on('data', (piece: unknown) => (received += (piece as Uint8Array).byteLength));
    stream.on('end', next);
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    archive.pipe(extract);
  });
  if (received !== size) throw new Error(`short raw read: ${received}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runDockerBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
