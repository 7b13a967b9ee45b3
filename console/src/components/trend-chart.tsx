import type { TrendDay } from "../../../gen/anvil/findings/v1/findings_pb.js";

/**
 * New and resolved findings per day as paired bars, drawn in plain SVG (no
 * chart library for one chart). The picture has a text summary for screen
 * readers, and the numbers are one click away as a table; new and resolved
 * differ in pattern as well as colour.
 */
export function TrendChart({ days }: { days: readonly TrendDay[] }) {
  const totalNew = days.reduce((n, d) => n + d.newCount, 0n);
  const totalResolved = days.reduce((n, d) => n + d.resolvedCount, 0n);
  const max = Number(days.reduce((m, d) => (d.newCount > m ? d.newCount : d.resolvedCount > m ? d.resolvedCount : m), 1n));
  const width = 720;
  const height = 160;
  const slot = width / Math.max(days.length, 1);
  const bar = Math.max(slot / 2 - 1, 1);
  const y = (v: bigint) => (Number(v) / max) * (height - 20);
  const summary = `${totalNew} new and ${totalResolved} resolved over the last ${days.length} days`;
  return (
    <figure className="trend">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <defs>
          <pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="2" height="4" className="resolved-fill" />
          </pattern>
        </defs>
        {days.map((d, i) => (
          <g key={d.date}>
            <rect x={i * slot} y={height - y(d.newCount)} width={bar} height={y(d.newCount)} className="new-fill">
              <title>{`${d.date}: ${d.newCount} new`}</title>
            </rect>
            <rect x={i * slot + bar + 1} y={height - y(d.resolvedCount)} width={bar} height={y(d.resolvedCount)} fill="url(#hatch)">
              <title>{`${d.date}: ${d.resolvedCount} resolved`}</title>
            </rect>
          </g>
        ))}
      </svg>
      <figcaption>
        <span className="legend new">■ New</span> <span className="legend resolved">▨ Resolved</span> — <span data-testid="trend-summary">{summary}</span>
      </figcaption>
      <details>
        <summary>Show the numbers</summary>
        <table>
          <caption className="visually-hidden">Findings per day</caption>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">New</th>
              <th scope="col">Resolved</th>
            </tr>
          </thead>
          <tbody>
            {days.map((d) => (
              <tr key={d.date}>
                <th scope="row">{d.date}</th>
                <td>{d.newCount.toString()}</td>
                <td>{d.resolvedCount.toString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
