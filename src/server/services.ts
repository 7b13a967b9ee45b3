import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { AgentService } from "../../gen/anvil/agents/v1/agents_pb.js";
import { ApiKeyService } from "../../gen/anvil/apikeys/v1/apikeys_pb.js";
import { AuditService } from "../../gen/anvil/audit/v1/audit_pb.js";
import { FindingService } from "../../gen/anvil/findings/v1/findings_pb.js";
import { IdentityService, SignInService } from "../../gen/anvil/identity/v1/identity_pb.js";
import { IpaService } from "../../gen/anvil/ipas/v1/ipas_pb.js";
import { OperationService, WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { WebhookService } from "../../gen/anvil/webhooks/v1/webhooks_pb.js";
import { WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { agentsHandler } from "../agents/agents.handler.js";
import { AgentsService } from "../agents/agents.service.js";
import { apiKeysHandler } from "../apikeys/api-keys.handler.js";
import { ApiKeysService } from "../apikeys/api-keys.service.js";
import { auditHandler } from "../audit/audit.handler.js";
import { AuditService as AuditUseCases } from "../audit/audit.service.js";
import type { ReflectionAccess } from "../config.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { AnalysesService } from "../findings/analyses.service.js";
import { FindingInsightsService } from "../findings/finding-insights.service.js";
import { FindingsHandler } from "../findings/findings.handler.js";
import { FindingsService } from "../findings/findings.service.js";
import { IpaExecutionsService } from "../ipas/ipa-executions.service.js";
import { ipasHandler } from "../ipas/ipas.handler.js";
import { IpasService } from "../ipas/ipas.service.js";
import type { OperationsModule } from "../operations/operations-module.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { identityHandler } from "../identity/identity.handler.js";
import { signInHandler } from "../identity/sign-in.handler.js";
import type { OidcOptions } from "../auth/oidc-verifier.js";
import { usersHandler } from "../users/users.handler.js";
import { UsersService } from "../users/users.service.js";
import { workflowsHandler } from "../workflows/workflows.handler.js";
import { WorkflowsService } from "../workflows/workflows.service.js";
import { webhooksHandler } from "../webhooks/webhooks.handler.js";
import { WebhooksService } from "../webhooks/webhooks.service.js";
import type { Tier } from "../auth/principal.js";
import { createHealthHandler } from "./health/health-service.js";
import type { ServingMonitor } from "./health/serving-monitor.js";
import { createReflectionHandlers, reflectionServices } from "./reflection/reflection-service.js";

/** What the services are built from. */
export interface ServiceDependencies {
  readonly uow: UnitOfWork;
  readonly pager: KeysetPager;
  /** Whether the gateway can serve, for gRPC health. */
  readonly monitor: ServingMonitor;
  /** Long-running operations: their handlers, and the starter other use cases enqueue work with. */
  readonly operations: OperationsModule;
  /** Each tenant's default rate-limit tier (ANVIL_TENANT_TIERS), given to API keys created without one. */
  readonly tenantTiers?: ReadonlyMap<string, Tier>;
  /** Every permission the served methods declare: IdentityService tells callers which of them they hold. */
  readonly permissions: ReadonlySet<string>;
  /** The OpenID provider, if any: SignInService tells the console how to sign in with it. */
  readonly oidc?: OidcOptions;
}

/** Every Anvil API service, in the order it is registered. */
export const apiServices: readonly DescService[] = [
  UserService,
  WorkflowService,
  AgentService,
  IpaService,
  FindingService,
  OperationService,
  WorkerService,
  ApiKeyService,
  AuditService,
  WebhookService,
  IdentityService,
  SignInService,
];

/**
 * API services that need no credential: how to sign in must be readable before
 * anyone is. Their methods declare no permission; calls are limited per client address.
 */
export const publicApiServices: ReadonlySet<string> = new Set([SignInService.typeName]);

/**
 * gRPC's own services served next to the API: health and reflection. Kept
 * apart from apiServices because they carry no permissions, field rules or
 * HTTP annotations of ours.
 */
export const infrastructureServices: readonly DescService[] = [Health, ...reflectionServices];

/**
 * Which services need no credential, and the permission of those whose protos
 * are not ours: the public API services and health are always public (probes
 * carry no token); reflection is public or needs `reflection.read`
 * according to ANVIL_REFLECTION.
 */
export function infrastructureAccess(reflection: ReflectionAccess): {
  readonly publicServices: ReadonlySet<string>;
  readonly permissions: ReadonlyMap<string, string>;
} {
  const names = reflectionServices.map((s) => s.typeName);
  return reflection === "public"
    ? { publicServices: new Set([...publicApiServices, Health.typeName, ...names]), permissions: new Map() }
    : { publicServices: new Set([...publicApiServices, Health.typeName]), permissions: new Map(names.map((n) => [n, "reflection.read"])) };
}

/**
 * The one routes function: registers every service's handler on the router.
 * Adding a resource means adding its line here and its descriptor above.
 */
export function registerServices(deps: ServiceDependencies): (router: ConnectRouter) => void {
  const users = usersHandler(new UsersService(deps.uow, deps.pager));
  const workflows = workflowsHandler(new WorkflowsService(deps.uow, deps.pager, deps.operations.starter));
  const agents = agentsHandler(new AgentsService(deps.uow, deps.pager));
  const ipas = ipasHandler(new IpasService(deps.uow, deps.pager), new IpaExecutionsService(deps.uow, deps.operations.starter));
  const findings = new FindingsHandler(
    new FindingsService(deps.uow, deps.pager),
    new FindingInsightsService(deps.uow),
    new AnalysesService(deps.uow, deps.operations.starter),
  );
  const apiKeys = apiKeysHandler(new ApiKeysService(deps.uow, deps.pager, deps.tenantTiers));
  const audit = auditHandler(new AuditUseCases(deps.uow, deps.pager));
  const webhooks = webhooksHandler(new WebhooksService(deps.uow, deps.pager));
  const identity = identityHandler(deps.permissions);
  const signIn = signInHandler(deps.oidc);
  const served = [...apiServices, ...infrastructureServices];
  const health = createHealthHandler(served.map((s) => s.typeName), deps.monitor);
  const reflection = createReflectionHandlers(served);
  return (router) => {
    router.service(UserService, users);
    router.service(WorkflowService, workflows);
    router.service(AgentService, agents);
    router.service(IpaService, ipas);
    router.service(FindingService, findings);
    router.service(OperationService, deps.operations.operationsHandler);
    router.service(WorkerService, deps.operations.workersHandler);
    router.service(ApiKeyService, apiKeys);
    router.service(AuditService, audit);
    router.service(WebhookService, webhooks);
    router.service(IdentityService, identity);
    router.service(SignInService, signIn);
    router.service(Health, health);
    router.service(reflectionServices[0], reflection.v1);
    router.service(reflectionServices[1], reflection.v1alpha);
  };
}
