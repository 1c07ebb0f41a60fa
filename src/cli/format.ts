// Plain-text rendering for the CLI: aligned columns and human-sized numbers. Machines use --json instead.

/** Left-aligned columns, two spaces apart; numeric-looking cells are right-aligned so digits line up. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^-?[\d.,]+[kMGT]?$/.test(String(r[i] ?? ''))));
  return cells
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** 1234567 → "1.23M"; small numbers stay exact. */
export function human(n: number): string {
  const abs = Math.abs(n);
  if (abs < 10_000) return Number.isInteger(n) ? String(n) : n.toFixed(1);
  for (const [div, unit] of [
    [1e18, 'E'],
    [1e15, 'P'],
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (abs >= div) return `${(n / div).toFixed(abs / div >= 100 ? 0 : 2)}${unit}`;
  }
  return String(n);
}

/** Counters arrive as numbers, or as decimal strings past 2^53. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v !== '') return Number(v);
  return 0;
}

export function sumDrops(drops: Record<string, unknown> | undefined): number {
  return Object.values(drops ?? {}).reduce<number>((a, v) => a + num(v), 0);
}

export function octal(mode: number | undefined): string {
  return mode === undefined ? '-' : '0' + mode.toString(8).padStart(3, '0');
}
