/**
 * Resource quantities as pod specs write them (`500m`, `2`, `512Mi`, `1G`, `1e3`), turned into
 * the local provider's units: cores and mebibytes.
 */
const binary: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimal: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** The quantity as a plain number (`500m` → 0.5, `1Ki` → 1024); undefined when it is not one. */
export function parseQuantity(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE]?)|[eE]([+-]?\d+))$/.exec(value.trim());
  if (!match) return undefined;
  const number = Number(match[1]);
  if (match[2]) return number * binary[match[2]]!;
  if (match[4] !== undefined) return number * 10 ** Number(match[4]);
  return number * decimal[match[3] ?? '']!;
}

/** A memory quantity in whole MiB (rounded up), at least `floor`. */
export function memoryMiBOf(value: unknown, floor = 16): number | undefined {
  const bytes = parseQuantity(value);
  if (bytes === undefined) return undefined;
  return Math.max(floor, Math.ceil(bytes / 2 ** 20));
}
