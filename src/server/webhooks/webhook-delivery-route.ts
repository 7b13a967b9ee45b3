import { create, type DescMethod, type DescMethodUnary, type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { Webhook as Verifier, WebhookVerificationError } from "standardwebhooks";
import { CorrelateAlertRequestSchema, FindingService } from "../../../gen/anvil/findings/v1/findings_pb.js";
import { ExecuteIpaRequestSchema, IpaService } from "../../../gen/anvil/ipas/v1/ipas_pb.js";
import { RunWorkflowRequestSchema, WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import { changeAuditOf } from "../../rpc/audit-interceptor.js";
import { toConnectError } from "../../rpc/error-mapping.js";
import { rateLimitHeaders } from "../../rpc/rate-limit-headers.js";
import { requestIdHeader, requestIdOf } from "../../rpc/request-id-interceptor.js";
import type { RefusalAudit, RefusedCall } from "../../rpc/refusal-audit.js";
import type { Principal } from "../../auth/principal.js";
import { requestIdKey } from "../../rpc/request-context.js";
import type { WebhookTarget } from "../../webhooks/webhook.js";
import type { WebhookDeliveriesService } from "../../webhooks/webhook-deliveries.service.js";
import { actingCreator, type CredentialRecheck, deliveryPrincipal, deliveryRequestId, headerProblem } from "../../webhooks/webhook-delivery.js";
import type { WebhookEndpoint, WebhookEndpointRepository } from "../../webhooks/webhook-endpoint.repository.js";
import { secretOf } from "../../webhooks/webhook-secret.js";
import type { RouteLabel } from "../../metrics/rpc-metrics.js";
import type { CallObserver, ObservedCall } from "../call-observer.js";
import type { NodeRequest, NodeResponse, RouteHandler } from "../connect-handler.js";
import { LazyAbort } from "../fast-unary/lazy-abort.js";
import { RequestHeaders } from "../fast-unary/request-headers.js";
import type { UnaryCall } from "../fast-unary/unary-call.js";
import { sendBody } from "../http-compression.js";
import { fromJsonInSlices } from "../message-decoding.js";
import { readRequestBody } from "../rest/request-body.js";
import { errorStatus, sendRestError } from "../rest/rest-errors.js";

/** Options of createWebhookDeliveryRoute. */
export interface WebhookDeliveryRouteOptions {
  readonly endpoints: WebhookEndpointRepository;
  readonly deliveries: WebhookDeliveriesService;
  /** Every unary method's interceptor chain and implementation: a delivery calls its target's RPC through it. */
  readonly unaryCalls: ReadonlyMap<DescMethod, UnaryCall>;
  readonly authenticator: CallAuthenticator;
  /** Rechecks the endpoint creator's credential at each delivery (Authenticator.current). */
  readonly credentials: CredentialRecheck;
  readonly refusals: RefusalAudit;
  /** Whether changes are audited (ANVIL_AUDIT): a correlation a delivery made is then recorded as a change. */
  readonly auditChanges: boolean;
  /** Largest body read (ANVIL_MAX_WEBHOOK_BYTES). */
  readonly maxBodyBytes: number;
  readonly compressMinBytes: number;
  readonly calls: CallObserver;
  readonly log: Logger;
}

/** The route template, as metrics and logs name it. */
export const webhookRoute = "POST /hooks/{id}";

/** What each kind of target calls, with what request, and the status of a success. */
interface TargetCall {
  readonly method: DescMethodUnary;
  readonly status: number;
  input(target: WebhookTarget, requestId: string, body: string): Promise<Message>;
}

const targetCalls: Readonly<Record<WebhookTarget["kind"], TargetCall>> = {
  run_workflow: {
    method: WorkflowService.method.runWorkflow,
    status: 202,
    input: async (t, requestId) => create(RunWorkflowRequestSchema, { id: t.kind === "run_workflow" ? t.workflowId : "", requestId }),
  },
  execute_ipa: {
    method: IpaService.method.executeIpa,
    status: 202,
    input: async (t, requestId) => create(ExecuteIpaRequestSchema, { id: t.kind === "execute_ipa" ? t.ipaId : "", requestId }),
  },
  correlate_alert: {
    method: FindingService.method.correlateAlert,
    // The correlation is done when the answer is sent: nothing is left running.
    status: 200,
    input: async (t, _requestId, body) => {
      let json: JsonValue;
      try {
        json = JSON.parse(body) as JsonValue;
      } catch {
        throw new ConnectError("the alert must be a JSON object", Code.InvalidArgument);
      }
      if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConnectError("the alert must be a JSON object", Code.InvalidArgument);
      // Senders post their own alert shape: fields this request does not know are left aside.
      const alert = await fromJsonInSlices(CorrelateAlertRequestSchema, json, { ignoreUnknownFields: true });
      if (alert.maxResults === 0 && t.kind === "correlate_alert") alert.maxResults = t.maxResults;
      return alert;
    },
  },
};

/** The series of each RPC a delivery may call, under protocol `webhook` (they exist from start). */
export const webhookRouteLabels: readonly RouteLabel[] = Object.values(targetCalls).map((c) => ({ method: c.method, protocol: "webhook", route: webhookRoute }));

/**
 * `POST /hooks/{id}`: deliveries of webhook endpoints, verified by the
 * Standard Webhooks scheme (the `standardwebhooks` package). The one route
 * that must read its body before authenticating — the signature covers it —
 * so it first answers what the headers alone decide: an unknown endpoint
 * 404, missing headers or a timestamp outside five minutes 401, the
 * endpoint owner's rate limit 429; only then is the body read, within its
 * small cap (413 beyond), and the signature checked (401). A valid delivery
 * calls its target's RPC through the same interceptor chain as any call
 * (permissions, validation, audit, metrics, logs), as the endpoint's
 * creator as its credential stands now (actingCreator: a creator revoked,
 * expired, removed or stripped of the target's permission is 403, told
 * only to a sender whose signature is valid, and starts nothing), with a
 * request id derived from the delivery's `webhook-id`, so a replay starts
 * nothing twice and gets the first answer. Failed deliveries are charged to
 * the sender's address like failed authentications.
 */
export function createWebhookDeliveryRoute(options: WebhookDeliveryRouteOptions): RouteHandler {
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (!path.startsWith("/hooks/")) return false;
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      void sendRestError(req, res, new ConnectError(`${req.method} is not allowed on ${path}; use POST`, Code.Unimplemented), options.compressMinBytes, 405);
      return true;
    }
    deliver(req, res, path.slice("/hooks/".length), options).catch((err: unknown) => {
      options.log.debug({ err, path }, "webhook delivery not completed");
      // Mapped as the chain maps errors: an unreachable database is UNAVAILABLE (503), anything unknown INTERNAL, never its text.
      const error = refusalError(err, new RequestHeaders(req.headers));
      if (!res.headersSent) void sendRestError(req, res, error, options.compressMinBytes, errorStatus(error));
    });
    return true;
  };
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function deliver(req: NodeRequest, res: NodeResponse, id: string, options: WebhookDeliveryRouteOptions): Promise<void> {
  const headers = new RequestHeaders(req.headers);
  // An address refused for its failed deliveries is answered before anything is looked up or read.
  const blocked = options.authenticator.blockedAddress(headers, req.socket?.remoteAddress);
  if (blocked !== undefined && "refused" in blocked) {
    if (blocked.limit !== undefined) for (const [name, value] of rateLimitHeaders(blocked.limit)) res.setHeader(name, value);
    const error = refusalError(blocked.refused, headers);
    await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error));
    return;
  }
  const endpoint = uuid.test(id) ? await options.endpoints.find(id.toLowerCase()) : undefined;
  if (endpoint === undefined) {
    await refuse(req, res, headers, new ConnectError(`no webhook ${uuid.test(id) ? id : "at this path"}`, Code.NotFound), options);
    return;
  }
  const call = targetCalls[endpoint.target.kind];
  // A failure ends the call as CANCELLED and goes on to the route, which logs it and answers what it still can.
  await options.calls.observe(call.method, "webhook", req, webhookRoute, (meter) => deliverTo(req, res, headers, endpoint, call, meter, options));
}

async function deliverTo(
  req: NodeRequest,
  res: NodeResponse,
  headers: RequestHeaders,
  endpoint: WebhookEndpoint,
  call: TargetCall,
  meter: ObservedCall,
  options: WebhookDeliveryRouteOptions,
): Promise<void> {
  const deliveryId = headers.get("webhook-id") ?? undefined;
  const timestamp = headers.get("webhook-timestamp") ?? undefined;
  const signature = headers.get("webhook-signature") ?? undefined;
  const problem = headerProblem(deliveryId, timestamp, signature, Date.now());
  const stored = deliveryPrincipal(endpoint);
  if (problem !== undefined) {
    const error = new ConnectError(problem, Code.Unauthenticated);
    meter.code(error.code);
    options.refusals.record(error, refusedDelivery(call, headers, options.authenticator.clientAddress(req.socket?.remoteAddress, headers), stored, meter));
    meter.sent(await refuse(req, res, headers, error, options));
    return;
  }
  // Checked before the rate limit, which then takes the creator's tier as it is now.
  const creator = await actingCreator(endpoint, options.credentials).then(
    (principal) => ({ principal }),
    (refused: unknown) => ({ refused }),
  );
  const decided = await options.authenticator.decideFor("principal" in creator ? creator.principal : stored, headers, req.socket?.remoteAddress);
  const requestId = deliveryRequestId(endpoint.id, deliveryId!);
  // Over its owner's limit: the body is never read; the chain refuses the call (mapped, audited, with RateLimit fields).
  let body = "";
  if (!("refused" in decided)) {
    try {
      body = await readRequestBody(req, options.maxBodyBytes, (n) => meter.received(n));
      new Verifier(secretOf(endpoint.signingKey)).verify(body, { "webhook-id": deliveryId!, "webhook-timestamp": timestamp!, "webhook-signature": signature! }, { jsonParse: false });
    } catch (err) {
      const error = err instanceof WebhookVerificationError ? new ConnectError("webhook-signature does not match the payload", Code.Unauthenticated) : ConnectError.from(err);
      meter.code(error.code);
      options.refusals.record(error, refusedDelivery(call, headers, decided.client, decided.principal, meter));
      if (decided.limit !== undefined) for (const [name, value] of rateLimitHeaders(decided.limit)) res.setHeader(name, value);
      meter.sent(error.code === Code.Unauthenticated ? await refuse(req, res, headers, error, options) : await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error)));
      return;
    }
  }
  // A creator that may no longer act is refused by the chain (mapped, audited), once the signature proved the sender.
  const auth = "refused" in creator && !("refused" in decided) ? { ...decided, refused: creator.refused, principal: stored } : decided;
  meter.values.set(authOutcomeKey, auth);
  const responseHeader = new Headers();
  let status = call.status;
  let out: JsonValue;
  try {
    const input = "refused" in auth ? create(call.method.input) : await call.input(endpoint.target, requestId, body);
    const rpc = options.unaryCalls.get(call.method);
    if (rpc === undefined) throw new ConnectError(`no handler for ${call.method.name}`, Code.Internal);
    const response = await rpc(
      {
        requestMethod: "POST",
        url: req.url ?? "/",
        protocolName: "webhook",
        requestHeader: headers,
        responseHeader,
        responseTrailer: new Headers(),
        abort: new LazyAbort(),
        timeoutMs: undefined,
        contextValues: meter.values,
      },
      input,
    );
    out = toJson(call.method.output, response.message) as JsonValue;
    // An operation's replay is its request id's record; a correlation's is
    // recorded here, and audited as the change from outside it is (the chain
    // audits CorrelateAlert as a read, which it is for any other caller). A
    // replay records nothing, so it audits nothing either.
    if (endpoint.target.kind === "correlate_alert") {
      const audit = options.auditChanges ? changeAuditOf(call.method, input, headers, meter.values) : undefined;
      out = (await options.deliveries.firstAnswer({ tenant: endpoint.tenant, audit }, endpoint.id, requestId, out)) as JsonValue;
    }
    meter.code(0);
  } catch (err) {
    // The chain's errors are mapped already; recording a correlation's answer is not in the chain.
    const error = err instanceof ConnectError ? err : refusalError(err, headers);
    status = codeToHttpStatus(error.code);
    meter.code(error.code);
    error.metadata.forEach((value, name) => responseHeader.set(name, value));
    out = { details: [], ...errorToJson(error, undefined) } as JsonValue;
  }
  const sent: Record<string, string> = {};
  responseHeader.forEach((value, name) => {
    sent[name] = value;
  });
  sent["content-type"] = "application/json";
  meter.sent(await sendBody(req, res, status, sent, new TextEncoder().encode(JSON.stringify(out)), options.compressMinBytes));
}

/**
 * Refuses a delivery the sender could not authenticate. The attempt is
 * charged to the sender's address, as a failed authentication is: past its
 * limit, the answer is 429 instead.
 */
async function refuse(req: NodeRequest, res: NodeResponse, headers: RequestHeaders, error: ConnectError, options: WebhookDeliveryRouteOptions): Promise<number> {
  const address = await options.authenticator.decidePublic(headers, req.socket?.remoteAddress);
  if (address.limit !== undefined) for (const [name, value] of rateLimitHeaders(address.limit)) res.setHeader(name, value);
  const answer = "refused" in address ? refusalError(address.refused, headers) : error;
  return sendRestError(req, res, answer, options.compressMinBytes, errorStatus(answer));
}

/** The answer to a refusal or failure outside the chain (a domain error, mapped as the error interceptor maps it). */
function refusalError(refused: unknown, headers: RequestHeaders): ConnectError {
  return toConnectError(refused, requestIdOf(headers.get(requestIdHeader)));
}

/** A delivery refused before its call, for the audit log: as its endpoint's creator, through the webhook. */
function refusedDelivery(call: TargetCall, headers: RequestHeaders, clientAddress: string, principal: Principal | undefined, meter: ObservedCall): RefusedCall {
  return { method: call.method, protocol: "webhook", headers, clientAddress, principal, requestId: meter.values.get(requestIdKey) };
}
