import { type FieldViolation, InvalidArgumentError } from "../shared/errors.js";
import type { WorkflowStep } from "./workflow.js";

/**
 * The rules a workflow's steps obey: names are unique, and `depends_on` may
 * only name steps listed earlier. Requiring earlier steps is what rules out
 * cycles — a step can never (transitively) wait for itself — and it lets a
 * runner execute the steps in the order given. Every problem is reported,
 * each naming the offending step by its request path (`path` is where the
 * steps sit in the request, e.g. `workflow.steps`), so a client can point at
 * the exact field.
 *
 * @throws InvalidArgumentError when any rule is broken.
 */
export function checkSteps(steps: readonly WorkflowStep[], path: string): void {
  const violations: FieldViolation[] = [];
  const position = new Map<string, number>();
  steps.forEach((step, i) => {
    if (position.has(step.name)) {
      violations.push({ field: `${path}[${i}].name`, description: `repeats the name "${step.name}" of step ${position.get(step.name)}` });
    } else {
      position.set(step.name, i);
    }
  });
  steps.forEach((step, i) => {
    for (const dependency of step.dependsOn) {
      const at = position.get(dependency);
      const problem =
        at === undefined
          ? `names "${dependency}", which is no step of this workflow`
          : at === i
            ? `names step "${step.name}" itself, a cycle`
            : at > i
              ? `names "${dependency}", which comes later (step ${at}); a step may only depend on earlier steps, which rules out cycles`
              : undefined;
      if (problem) violations.push({ field: `${path}[${i}].depends_on`, description: `step "${step.name}" ${problem}` });
    }
  });
  if (violations.length > 0) {
    throw new InvalidArgumentError(`invalid steps: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`, violations);
  }
}
