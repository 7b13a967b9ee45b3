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

/** One metric of a SeriesMetrics: its name, help and type, and how it writes its sample lines. */
export interface SeriesMetric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "histogram";
  /** Appends one line per sample (`name{labels} value`) to `out`. */
  readonly write: (out: string[]) => void;
}

/**
 * Metrics whose samples their owners keep in plain fields (counted with a
 * field increment on the hot path), written in the Prometheus text format
 * at scrape time, beside prom-client's registry (see Metrics.text).
 * prom-client's Counter and Histogram validate and hash every label set on
 * every increment — tens of microseconds per call for the per-RPC metrics —
 * and its registry formats and escapes every label of every sample on every
 * scrape: for the ~10,000 samples of the per-RPC series that was ~200 ms of
 * CPU a scrape. Here each series formats its labels once (labelText), a
 * series that did not move since the last scrape writes the text it made
 * then (cachedLines), and a scrape joins strings once.
 */
export class SeriesMetrics {
  readonly #metrics: SeriesMetric[] = [];

  register(metric: SeriesMetric): void {
    this.#metrics.push(metric);
  }

  /** Every metric's `# HELP`, `# TYPE` and sample lines, each metric a block as prom-client writes them. */
  text(): string {
    if (this.#metrics.length === 0) return "";
    // One array joined once: the text is over a megabyte, and each join copies all of it.
    const out: string[] = [];
    for (const m of this.#metrics) {
      if (out.length > 0) out.push("");
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
      m.write(out);
    }
    out.push("");
    return out.join("\n");
  }
}

/**
 * A label set in the text format's syntax, without the braces
 * (`grpc_method="GetUser",protocol="grpc"`): made once per series.
 */
export function labelText(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
    .join(",");
}

/** A series whose sample lines change only when its version does (see cachedLines). */
export interface VersionedSeries {
  /** Moves whenever one of the series' counts does. */
  readonly version: number;
}

/**
 * A SeriesMetric's `write` over `series()`, formatting each series' lines
 * through `lines` only when its version moved since the last scrape, and
 * otherwise writing the text it made then: most series of a gateway (every
 * method × protocol, from start) are idle between two scrapes, and
 * formatting them all anew was nearly all of a scrape's cost.
 */
export function cachedLines<S extends VersionedSeries>(series: () => Iterable<S>, lines: (s: S, out: string[]) => void): (out: string[]) => void {
  const made = new WeakMap<S, { readonly version: number; readonly text: string }>();
  return (out) => {
    for (const s of series()) {
      let text = made.get(s);
      if (text === undefined || text.version !== s.version) {
        const own: string[] = [];
        lines(s, own);
        text = { version: s.version, text: own.join("\n") };
        made.set(s, text);
      }
      if (text.text !== "") out.push(text.text);
    }
  };
}

/** `name{labels} value`. */
export function sampleLine(name: string, labels: string, value: number): string {
  return labels === "" ? `${name} ${numberText(value)}` : `${name}{${labels}} ${numberText(value)}`;
}

// The `le` label of each bucket bound, formatted once per bucket layout.
const leTexts = new WeakMap<readonly number[], readonly string[]>();

function leTextsOf(bounds: readonly number[]): readonly string[] {
  let texts = leTexts.get(bounds);
  if (texts === undefined) leTexts.set(bounds, (texts = bounds.map((b) => `le="${numberText(b)}"`)));
  return texts;
}

/** Appends the `_bucket` (cumulative, with `+Inf`), `_sum` and `_count` lines of one label set. */
export function writeHistogram(out: string[], name: string, labels: string, cells: HistogramCells): void {
  const les = leTextsOf(cells.bounds);
  const prefix = labels === "" ? `${name}_bucket{` : `${name}_bucket{${labels},`;
  let cumulative = 0;
  for (let i = 0; i < les.length; i++) {
    cumulative += cells.counts[i]!;
    out.push(`${prefix}${les[i]}} ${cumulative}`);
  }
  out.push(`${prefix}le="+Inf"} ${cells.count}`);
  out.push(sampleLine(`${name}_sum`, labels, cells.sum));
  out.push(sampleLine(`${name}_count`, labels, cells.count));
}

/** A sample value as the text format spells it. */
function numberText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Label values escape backslash, double quote and line feed. */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Help text escapes backslash and line feed. */
function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
