/**
 * What every bench shares: timing, percentiles, the row builders (a ratio row for a latency or a
 * throughput next to its raw baseline, a figure row) with their goals, and the table. A new
 * adapter's bench builds its "≤ 1.1× the raw SDK" rows with `latencyRow(…, { goal: goals.ratioAtMost(1.1) })`.
 */
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

/** A row whose figures came from timed runs: the same run times again, under unit-bearing names. */
export interface TimedBenchRow extends BenchRow {
  /** Median run time of the measured operation, in ms. */
  p50Ms: number;
  p95Ms: number;
  /** Median run time of the baseline, in ms. */
  baselineP50Ms: number;
}

/** The figures a goal judges a row by (`p50` and `baselineP50` in the row's unit). */
export interface RowFigures {
  p50: number;
  baselineP50: number;
  ratio: number;
}

/** What a row aims at: the label of the table's target column, and whether the figures meet it. */
export interface BenchGoal {
  target: string;
  met(figures: RowFigures): boolean | undefined;
}

/** The goals the benches use. Each label defaults to the form the table has always printed. */
export const goals = {
  /** Latency: ours over the baseline, at p50. */
  ratioAtMost: (limit: number, target = `ratio ≤ ${limit}`): BenchGoal => ({ target, met: ({ ratio }) => ratio <= limit }),
  /** Throughput: our rate over the baseline's, at p50. */
  ratioAtLeast: (limit: number, target = `ratio ≥ ${limit}`): BenchGoal => ({ target, met: ({ ratio }) => ratio >= limit }),
  /** An absolute latency, in ms. */
  p50AtMost: (ms: number, target = `p50 ≤ ${ms} ms`): BenchGoal => ({ target, met: ({ p50 }) => p50 <= ms }),
  /** Ours minus the baseline, at p50, in ms. */
  overheadAtMost: (ms: number, target = `overhead ≤ ${ms} ms at p50`): BenchGoal => ({
    target,
    met: ({ p50, baselineP50 }) => p50 - baselineP50 <= ms,
  }),
  /** Measured for the record; nothing to meet. */
  none: { target: '–', met: () => undefined } as BenchGoal,
};

export interface RowOptions {
  goal: BenchGoal;
  /** Shown beside met; a function gets the finished row (for figures such as the overhead). */
  note?: string | ((row: TimedBenchRow) => string);
}

/** The ratio row of a latency: ours (`samples`, ms) next to `baseline` (ms), p50 over p50. */
export function latencyRow(name: string, samples: number[], baselineName: string, baseline: number[], options: RowOptions): TimedBenchRow {
  const p50 = percentile(samples, 0.5);
  const p95 = percentile(samples, 0.95);
  const baselineP50 = percentile(baseline, 0.5);
  const ratio = p50 / baselineP50;
  return finish(
    {
      name,
      p50,
      p95,
      p50Ms: p50,
      p95Ms: p95,
      baselineName,
      baselineP50,
      baselineP50Ms: baselineP50,
      ratio,
      unit: 'ms',
      target: options.goal.target,
      met: options.goal.met({ p50, baselineP50, ratio }),
    },
    options,
  );
}

/**
 * The ratio row of a throughput: `mib` MiB moved in each of the run `times` (ms), next to the
 * baseline's run times. Figures are MiB/s; the p95 column holds the slowest run's rate.
 */
export function throughputRow(
  name: string,
  mib: number,
  times: number[],
  baselineName: string,
  baselineTimes: number[],
  options: RowOptions,
): TimedBenchRow {
  const rates = times.map((ms) => mib / (ms / 1000));
  const p50 = percentile(rates, 0.5);
  const baselineP50 = percentile(
    baselineTimes.map((ms) => mib / (ms / 1000)),
    0.5,
  );
  const ratio = p50 / baselineP50;
  return finish(
    {
      name,
      p50,
      p95: Math.min(...rates),
      p50Ms: percentile(times, 0.5),
      p95Ms: percentile(times, 0.95),
      baselineName,
      baselineP50,
      baselineP50Ms: percentile(baselineTimes, 0.5),
      ratio,
      unit: 'MiB/s',
      target: options.goal.target,
      met: options.goal.met({ p50, baselineP50, ratio }),
    },
    options,
  );
}

/** A row with one figure and no baseline (memory growth, a pass/fail run). */
export function figureRow(name: string, value: number, unit: BenchRow['unit'], target: string, met: boolean | undefined): BenchRow {
  return { name, p50: value, p95: value, baselineName: '–', baselineP50: 0, ratio: 0, unit, target, met };
}

function finish(row: TimedBenchRow, options: RowOptions): TimedBenchRow {
  const note = typeof options.note === 'function' ? options.note(row) : options.note;
  return note === undefined ? row : { ...row, note };
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

/** Times `ours` and `theirs` alternately, round by round, so that drift on a shared machine hits both alike. */
export async function paired(rounds: number, ours: () => Promise<unknown>, theirs: () => Promise<unknown>): Promise<[number[], number[]]> {
  const a: number[] = [];
  const b: number[] = [];
  // Which goes first alternates, so that neither side always runs right after the other's
  // garbage (or its warm caches): a fixed order showed up as a few percent on 1 MiB reads.
  for (let index = 0; index < rounds; index++) {
    if (index % 2 === 0) {
      a.push(...(await timeRepeated(1, ours)));
      b.push(...(await timeRepeated(1, theirs)));
    } else {
      b.push(...(await timeRepeated(1, theirs)));
      a.push(...(await timeRepeated(1, ours)));
    }
  }
  return [a, b];
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
