/** A row of the bench table: an operation next to its raw baseline, measured in the same run. */
export interface BenchRow {
  name: string;
  /** Median of the measured operation, in ms (or the throughput figure for `unit: 'MiB/s'`). */
  p50: number;
  p95: number;
  baselineName: string;
  baselineP50: number;
  /** Measured / baseline for latencies; measured / baseline throughput for throughputs. */
  ratio: number;
  unit: 'ms' | 'MiB/s' | 'MiB';
  target: string;
  met: boolean | undefined;
  note?: string;
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

export async function timeRepeated(times: number, body: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let index = 0; index < times; index++) {
    const started = performance.now();
    await body();
    samples.push(performance.now() - started);
  }
  return samples;
}

export function formatTable(rows: BenchRow[]): string {
  const header = '| operation | p50 | p95 | baseline | baseline p50 | ratio | target | met |\n|---|---|---|---|---|---|---|---|';
  const body = rows.map((row) => {
    const unit = ` ${row.unit}`;
    const met = row.met === undefined ? '–' : row.met ? 'yes' : 'no';
    return `| ${row.name} | ${row.p50.toFixed(1)}${unit} | ${row.p95.toFixed(1)}${unit} | ${row.baselineName} | ${row.baselineName === '–' ? '–' : `${row.baselineP50.toFixed(1)}${unit}`} | ${row.baselineName === '–' ? '–' : row.ratio.toFixed(2)} | ${row.target} | ${met}${row.note ? ` (${row.note})` : ''} |`;
  });
  return [header, ...body].join('\n');
}

/** A stream of `totalBytes` made of one repeated 1 MiB chunk (a file body for write benchmarks). */
export function repeatingSource(totalBytes: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(1024 * 1024).fill(7);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= totalBytes) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
}
