import { idempotencyKey } from "../db/idempotency-key.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { Operation } from "../operations/operation.js";
import { operationCodec } from "../operations/operation-codec.js";
import type { OperationStarter } from "../operations/start-operation.js";
import type { Scope } from "../shared/scope.js";

/** The operation (and task) kind of an analysis. */
export const analysisKind = "analysis";

/** What an analysis looks at. */
export interface AnalysisTarget {
  readonly repository: string;
  /** Only files under it; empty for the whole repository. */
  readonly path: string;
}

/** The `source` of findings an analysis reports: links them to its operation. */
export function analysisSource(operationId: string): string {
  return `operations/${operationId}`;
}

/** Starts repository analyses, carried out by analyzer workers. */
export class AnalysesService {
  readonly #uow: UnitOfWork;
  readonly #starter: OperationStarter;

  constructor(uow: UnitOfWork, starter: OperationStarter) {
    this.#uow = uow;
    this.#starter = starter;
  }

  /** One task of kind `analysis`; its worker reports findings under analysisSource(task.operation_id). */
  start(scope: Scope, target: AnalysisTarget, requestId?: string): Promise<Operation> {
    const key = idempotencyKey("findings.analyze", target, requestId);
    return this.#uow.transact(scope, (tx) =>
      tx.idempotency.run(key, operationCodec, async () => {
        const spec = {
          kind: analysisKind,
          resource: `repositories/${target.repository}`,
          tasks: [{ step: "", kind: analysisKind, input: { repository: target.repository, path: target.path }, dependsOn: [] }],
        };
        return this.#starter.start(scope, tx, spec);
      }),
    );
  }
}
