import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type BatchCreateFindingsRequest,
  type BatchCreateFindingsResponse,
  BatchCreateFindingsResponseSchema,
  type CorrelateAlertRequest,
  type CorrelateAlertResponse,
  CorrelateAlertResponseSchema,
  type CreateFindingRequest,
  type CreateFindingResponse,
  CreateFindingResponseSchema,
  type DeleteFindingRequest,
  type DeleteFindingResponse,
  DeleteFindingResponseSchema,
  type FindingService,
  type GetFindingRequest,
  type GetFindingResponse,
  GetFindingResponseSchema,
  type GetFindingSummaryRequest,
  type GetFindingSummaryResponse,
  GetFindingSummaryResponseSchema,
  type ListFindingsRequest,
  type ListFindingsResponse,
  ListFindingsResponseSchema,
  type UpdateFindingRequest,
  type UpdateFindingResponse,
  UpdateFindingResponseSchema,
  type StartAnalysisRequest,
  type StartAnalysisResponse,
  StartAnalysisResponseSchema,
} from "../../gen/anvil/findings/v1/findings_pb.js";
import { toOperationMessage } from "../operations/operation-messages.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { optionalDate } from "../rpc/timestamps.js";
import { requestContext } from "../rpc/request-context.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { mapInSlices } from "../shared/time-slices.js";
import { updatableFindingFields } from "./finding.js";
import {
  findingToMessage,
  newFindingFromMessage,
  severityFromMessage,
  severityToMessage,
  statusFromMessage,
  statusToMessage,
} from "./finding-messages.js";
import { parseFindingOrder } from "./finding-query.js";
import { defaultCorrelations, defaultWindowDays, type FindingInsightsService } from "./finding-insights.service.js";
import type { AnalysesService } from "./analyses.service.js";
import type { FindingsService } from "./findings.service.js";

/** FindingService over the wire: converts proto ⇄ domain and nothing else. */
export class FindingsHandler implements ServiceImpl<typeof FindingService> {
  readonly #findings: FindingsService;
  readonly #insights: FindingInsightsService;
  readonly #analyses: AnalysesService;

  constructor(findings: FindingsService, insights: FindingInsightsService, analyses: AnalysesService) {
    this.#findings = findings;
    this.#insights = insights;
    this.#analyses = analyses;
  }

  async getFinding(req: GetFindingRequest, ctx: HandlerContext): Promise<GetFindingResponse> {
    const finding = await this.#findings.get(requestContext(ctx), req.id);
    return create(GetFindingResponseSchema, { finding: findingToMessage(finding) });
  }

  async listFindings(req: ListFindingsRequest, ctx: HandlerContext): Promise<ListFindingsResponse> {
    const statuses = req.status.map((s, i) => {
      const status = statusFromMessage(s);
      if (status === undefined) throw InvalidArgumentError.field(`status[${i}]`, "must not be STATUS_UNSPECIFIED");
      return status;
    });
    const filter = {
      filePath: req.filePath || undefined,
      filePathPrefix: req.filePathPrefix || undefined,
      minSeverity: severityFromMessage(req.minSeverity),
      statuses: statuses.length > 0 ? statuses : undefined,
      issueType: req.issueType || undefined,
      since: optionalDate(req.since),
      until: optionalDate(req.until),
    };
    const page = await this.#findings.list(requestContext(ctx), filter, parseFindingOrder(req.orderBy), {
      pageSize: req.pageSize,
      pageToken: req.pageToken,
    });
    return create(ListFindingsResponseSchema, { findings: page.items.map(findingToMessage), nextPageToken: page.nextPageToken });
  }

  async createFinding(req: CreateFindingRequest, ctx: HandlerContext): Promise<CreateFindingResponse> {
    const finding = await this.#findings.create(requestContext(ctx), newFindingFromMessage(req.finding!), req.requestId || undefined);
    return create(CreateFindingResponseSchema, { finding: findingToMessage(finding) });
  }

  async batchCreateFindings(req: BatchCreateFindingsRequest, ctx: HandlerContext): Promise<BatchCreateFindingsResponse> {
    const inputs = req.requests.map((r, i) => {
      // The batch is retried as a whole; a per-item request_id would mean nothing.
      if (r.requestId) throw InvalidArgumentError.field(`requests[${i}].request_id`, "must be empty in a batch");
      return newFindingFromMessage(r.finding!);
    });
    const findings = await this.#findings.batchCreate(requestContext(ctx), inputs);
    // A thousand findings to convert: in slices, as the service settles them.
    return create(BatchCreateFindingsResponseSchema, { findings: await mapInSlices(findings, (f) => findingToMessage(f)) });
  }

  async updateFinding(req: UpdateFindingRequest, ctx: HandlerContext): Promise<UpdateFindingResponse> {
    const sent = req.finding!;
    const patch = patchFromMask(req.updateMask, updatableFindingFields, {
      status: statusFromMessage(sent.status),
      severity: severityFromMessage(sent.severity),
      issueType: sent.issueType,
      suggestion: sent.suggestion,
    });
    if ("status" in patch && patch.status === undefined) {
      throw InvalidArgumentError.field("finding.status", "must not be STATUS_UNSPECIFIED");
    }
    if ("severity" in patch && patch.severity === undefined) {
      throw InvalidArgumentError.field("finding.severity", "must not be SEVERITY_UNSPECIFIED");
    }
    if ("issueType" in patch && !patch.issueType) throw InvalidArgumentError.field("finding.issue_type", "is required");
    const finding = await this.#findings.update(requestContext(ctx), sent.id, patch, sent.etag || undefined);
    return create(UpdateFindingResponseSchema, { finding: findingToMessage(finding) });
  }

  async deleteFinding(req: DeleteFindingRequest, ctx: HandlerContext): Promise<DeleteFindingResponse> {
    await this.#findings.delete(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeleteFindingResponseSchema);
  }

  async getFindingSummary(req: GetFindingSummaryRequest, ctx: HandlerContext): Promise<GetFindingSummaryResponse> {
    const summary = await this.#insights.summary(requestContext(ctx), req.filePathPrefix || undefined, req.windowDays || defaultWindowDays);
    return create(GetFindingSummaryResponseSchema, {
      summary: {
        total: BigInt(summary.total),
        bySeverity: summary.bySeverity.map((c) => ({ severity: severityToMessage(c.severity), count: BigInt(c.count) })),
        byStatus: summary.byStatus.map((c) => ({ status: statusToMessage(c.status), count: BigInt(c.count) })),
        trend: summary.trend.map((d) => ({ date: d.date, newCount: BigInt(d.newCount), resolvedCount: BigInt(d.resolvedCount) })),
        topFiles: summary.topFiles.map((f) => ({ filePath: f.filePath, unresolvedCount: BigInt(f.count) })),
      },
    });
  }

  async correlateAlert(req: CorrelateAlertRequest, ctx: HandlerContext): Promise<CorrelateAlertResponse> {
    const alert = { filePath: req.filePath, line: req.line, errorMessage: req.errorMessage, stackTrace: req.stackTrace };
    const correlations = await this.#insights.correlate(requestContext(ctx), alert, req.maxResults || defaultCorrelations);
    return create(CorrelateAlertResponseSchema, {
      findings: correlations.map((c) => ({ finding: findingToMessage(c.finding), confidence: c.confidence, reason: c.reason })),
    });
  }

  async startAnalysis(req: StartAnalysisRequest, ctx: HandlerContext): Promise<StartAnalysisResponse> {
    const target = { repository: req.repository, path: req.path };
    const operation = await this.#analyses.start(requestContext(ctx), target, req.requestId || undefined);
    return create(StartAnalysisResponseSchema, { operation: toOperationMessage(operation) });
  }
}
