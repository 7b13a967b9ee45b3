import type { Workflow_Step } from "../../../gen/anvil/workflows/v1/workflows_pb.js";

/**
 * A workflow's steps as a graph: each step in the column of its depth (the
 * longest chain of dependencies before it), arrows from what it waits for.
 * Steps may only depend on earlier ones, so one pass in order finds depths.
 * The same facts are in the form above as text, for screen readers.
 */
export function StepGraph({ steps }: { steps: readonly Workflow_Step[] }) {
  const depth = new Map<string, number>();
  for (const s of steps) depth.set(s.name, Math.max(-1, ...s.dependsOn.map((d) => depth.get(d) ?? -1)) + 1);
  const rows = new Map<number, number>();
  const at = new Map<string, { x: number; y: number }>();
  for (const s of steps) {
    const col = depth.get(s.name) ?? 0;
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    at.set(s.name, { x: 10 + col * 170, y: 10 + row * 56 });
  }
  const width = 10 + (Math.max(0, ...depth.values()) + 1) * 170;
  const height = 10 + Math.max(1, ...rows.values()) * 56;
  return (
    <svg className="graph" viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label={`${steps.length} steps`}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" className="edge-head" />
        </marker>
      </defs>
      {steps.flatMap((s) =>
        s.dependsOn.map((d) => {
          const from = at.get(d);
          const to = at.get(s.name)!;
          return from && <line key={`${d}->${s.name}`} x1={from.x + 140} y1={from.y + 20} x2={to.x} y2={to.y + 20} className="edge" markerEnd="url(#arrow)" />;
        }),
      )}
      {steps.map((s) => {
        const p = at.get(s.name)!;
        return (
          <g key={s.name} transform={`translate(${p.x} ${p.y})`}>
            <rect width="140" height="40" rx="6" className="node" />
            <text x="8" y="17" className="node-name">{s.name}</text>
            <text x="8" y="32" className="node-kind">{s.kind}</text>
          </g>
        );
      })}
    </svg>
  );
}
