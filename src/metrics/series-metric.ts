import type { Registry } from "prom-client";

/** One exported sample, in the shape prom-client's registry formats. */
interface Sample {
  readonly metricName?: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/** A histogram's state for one label set: counts per bucket (not cumulative), sum and count. */
export class HistogramCells {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A metric whose samples its owner keeps in plain fields and hands over at
 * scrape time, registered in prom-client's registry beside its own metrics
 * (the registry formats any object with `name`, `help`, `type` and `get()`).
 * prom-client's Counter and Histogram validate and hash every label set on
 * every increment — tens of microseconds per call for the per-RPC metrics —
 * where the transports here already hold the series they count.
 */
export function registerSeriesMetric(
  registry: Registry,
  metric: { readonly name: string; readonly help: string; readonly type: "counter" | "histogram"; readonly samples: () => Sample[] },
): void {
  registry.registerMetric({
    name: metric.name,
    help: metric.help,
    type: metric.type,
    aggregator: "sum",
    get: async () => ({ name: metric.name, help: metric.help, type: metric.type, aggregator: "sum", values: metric.samples() }),
    reset: () => {},
  } as unknown as Parameters<Registry["registerMetric"]>[0]);
}

/** The `_bucket` (cumulative, with `+Inf`), `_sum` and `_count` samples of one label set. */
export function histogramSamples(name: string, labels: Record<string, string>, cells: HistogramCells): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i < cells.bounds.length; i++) {
    cumulative += cells.counts[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: cells.bounds[i]! }, value: cumulative });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: cells.count });
  out.push({ metricName: `${name}_sum`, labels, value: cells.sum });
  out.push({ metricName: `${name}_count`, labels, value: cells.count });
  return out;
}
