import { jsonCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion, staleEtag } from "../shared/etag.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import { requestHash } from "../shared/request-hash.js";
import type { Scope } from "../shared/scope.js";
import { mapInSlices } from "../shared/time-slices.js";
import { checkTransition, type Finding, type FindingPatch, findingViolation, type NewFinding, resolveTimeAfter } from "./finding.js";
import { checkFindingFilter, type FindingFilter, type FindingOrder, findingListQuery } from "./finding-query.js";
import type { FingerprintedFinding } from "./finding.repository.js";
import { fingerprintOf } from "./fingerprint.js";

/** Most findings one BatchCreateFindings call may carry. */
export const maxBatchSize = 1000;

const findingCodec = jsonCodec<Finding>("createTime", "updateTime", "firstSeenTime", "lastSeenTime", "resolveTime");

/** The findings use cases (reporting, listing, triage); each runs in one unit of work. */
export class FindingsService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;

  constructor(uow: UnitOfWork, pager: KeysetPager) {
    this.#uow = uow;
    this.#pager = pager;
  }

  get(scope: Scope, id: string): Promise<Finding> {
    return this.#uow.read(scope, (tx) => tx.findings.get(id));
  }

  list(scope: Scope, filter: FindingFilter, order: FindingOrder, page: PageRequest): Promise<Page<Finding>> {
    checkFindingFilter(filter);
    return this.#pager.page(scope, page, findingListQuery(filter, order), (limit, after) =>
      this.#uow.read(scope, (tx) => tx.findings.list(filter, order, limit, after)),
    );
  }

  /** Reports one finding: created, or the existing one with its fingerprint seen again. */
  create(scope: Scope, input: NewFinding, requestId?: string): Promise<Finding> {
    const finding = settleOne((field) => `finding.${field}`)(input, 0);
    const key = requestId ? { requestId, operation: "findings.create", requestHash: requestHash(input) } : undefined;
    return this.#uow.transact(scope, (tx) =>
      tx.idempotency.run(key, findingCodec, async () => (await tx.findings.upsert([finding])).get(finding.fingerprint)!),
    );
  }

  /**
   * Reports many findings in one transaction: every one is checked before
   * anything is written, so one bad finding (named by its index) writes
   * nothing. Findings sharing a fingerprint resolve to one stored finding.
   * Returns one finding per input, in input order.
   */
  async batchCreate(scope: Scope, inputs: readonly NewFinding[]): Promise<Finding[]> {
    if (inputs.length === 0) throw InvalidArgumentError.field("requests", "must hold at least one finding");
    if (inputs.length > maxBatchSize) throw InvalidArgumentError.field("requests", `must hold at most ${maxBatchSize} findings`);
    // Up to 1,000 messages of 4,000 characters to normalize and hash: done
    // in slices, so the batch does not hold the event loop all at once.
    const settled = await mapInSlices(inputs, settleOne((field, i) => `requests[${i}].finding.${field}`));
    // One row per fingerprint, the first report winning: one statement may
    // not upsert the same row twice.
    const distinct = new Map<string, FingerprintedFinding>();
    for (const f of settled) if (!distinct.has(f.fingerprint)) distinct.set(f.fingerprint, f);
    return this.#uow.transact(scope, async (tx) => {
      const stored = await tx.findings.upsert([...distinct.values()]);
      return settled.map((f) => stored.get(f.fingerprint)!);
    });
  }

  /**
   * Applies a patch. The row is locked first so that the etag check, the
   * status transition check and the write see the same version.
   */
  update(scope: Scope, id: string, patch: FindingPatch, etag?: string): Promise<Finding> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, async (tx) => {
      const current = await tx.findings.get(id, "update");
      if (version !== undefined && current.version !== version) throw staleEtag();
      if (patch.status === undefined) return tx.findings.update(id, patch, version);
      checkTransition(id, current.status, patch.status);
      const resolveTime = resolveTimeAfter(current, patch.status, new Date());
      return tx.findings.update(id, { ...patch, resolveTime }, version);
    });
  }

  delete(scope: Scope, id: string, etag?: string): Promise<void> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, (tx) => tx.findings.delete(id, version));
  }
}

/**
 * Checks the cross-field rules of an input (naming a bad one by `path`) and
 * settles its fingerprint, before any transaction starts.
 */
function settleOne(path: (field: string, index: number) => string): (input: NewFinding, index: number) => FingerprintedFinding {
  return (input, i) => {
    const violation = findingViolation(input);
    if (violation) throw InvalidArgumentError.field(path(violation.field, i), violation.description);
    return { ...input, fingerprint: fingerprintOf(input) };
  };
}
