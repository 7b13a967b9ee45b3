import { create, type DescField, type DescMessage, type DescService, type Message } from "@bufbuild/protobuf";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import { requestContext } from "./request-context.js";

/** The standard use cases of one resource, as `ResourceService` provides them. */
export interface StandardUseCases<T, New, Patch> {
  get(scope: Scope, id: string): Promise<T>;
  list(scope: Scope, page: PageRequest): Promise<Page<T>>;
  create(scope: Scope, input: New, requestId?: string): Promise<T>;
  update(scope: Scope, id: string, patch: Patch, etag?: string): Promise<T>;
  delete(scope: Scope, id: string, etag?: string): Promise<void>;
}

/** How one resource crosses the wire: its message, and the conversions to and from its domain types. */
export interface ResourceMessages<T, New, Patch, M extends Message> {
  /** The resource message (`anvil.users.v1.User`). */
  readonly schema: DescMessage;
  toMessage(item: T): M;
  /** The domain input of a create, from the message the client sent. */
  toNew(sent: M): New;
  /** The domain patch of an update, from the message and mask the client sent (resources without `Update<R>` leave it out). */
  toPatch?(sent: M, mask: FieldMask | undefined): Patch;
  /**
   * Fields of the `Create<R>` response besides the resource, e.g. a secret
   * shown once (which the resource's replay codec leaves out of stored replays).
   */
  createdExtras?(item: T): Record<string, unknown>;
}

/** The handler methods whose names say they may be standard methods. */
type StandardNames<S extends DescService> = Extract<
  keyof ServiceImpl<S>,
  `get${string}` | `list${string}` | `create${string}` | `update${string}` | `delete${string}`
>;

type Handler = (req: Record<string, unknown>, ctx: HandlerContext) => Promise<Message>;

/** What a request or response of a standard method carries besides the resource. */
interface Sent {
  readonly id?: string;
  readonly etag?: string;
}

/**
 * The AIP standard methods of `service` — `Get<R>`, `List<Rs>`, `Create<R>`,
 * `Update<R>`, `Delete<R>` for the resource message `R` — found by name in
 * the service descriptor, and served by `useCases`. Request and response
 * fields are found by their types, so a new resource needs no plumbing of
 * its own; its handler adds only its own methods.
 *
 * @example
 *   const handler: ServiceImpl<typeof UserService> = resourceMethods(UserService, users, userMessages);
 */
export function resourceMethods<S extends DescService, T, New, Patch, M extends Message>(
  service: S,
  useCases: StandardUseCases<T, New, Patch>,
  messages: ResourceMessages<T, New, Patch, M>,
): Pick<ServiceImpl<S>, StandardNames<S>> {
  const r = messages.schema.name;
  const impl: Record<string, Handler> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const out = (field: DescField | undefined) => field?.localName ?? "";
    const single = out(resourceField(method.output, messages.schema, false));
    const sent = (req: Record<string, unknown>): M => req[out(resourceField(method.input, messages.schema, false))] as M;
    let handler: Handler | undefined;
    switch (method.name) {
      case `Get${r}`:
        handler = async (req, ctx) => create(method.output, { [single]: messages.toMessage(await useCases.get(requestContext(ctx), req.id as string)) });
        break;
      case `Create${r}`:
        handler = async (req, ctx) => {
          const item = await useCases.create(requestContext(ctx), messages.toNew(sent(req)), (req.requestId as string) || undefined);
          return create(method.output, { [single]: messages.toMessage(item), ...messages.createdExtras?.(item) });
        };
        break;
      case `Update${r}`: {
        const toPatch = messages.toPatch;
        if (toPatch === undefined) continue;
        handler = async (req, ctx) => {
          const message = sent(req);
          const { id = "", etag } = message as Sent;
          const patch = toPatch(message, req.updateMask as FieldMask | undefined);
          const item = await useCases.update(requestContext(ctx), id, patch, etag || undefined);
          return create(method.output, { [single]: messages.toMessage(item) });
        };
        break;
      }
      case `Delete${r}`:
        handler = async (req, ctx) => {
          await useCases.delete(requestContext(ctx), req.id as string, (req.etag as string) || undefined);
          return create(method.output);
        };
        break;
      default: {
        // `List<Rs>` names its repeated field after the collection (`users`): `ListWorkflowRevisions` is not one.
        const items = resourceField(method.output, messages.schema, true);
        if (items === undefined || method.name !== `List${upperFirst(items.localName)}`) continue;
        handler = async (req, ctx) => {
          const page = await useCases.list(requestContext(ctx), { pageSize: req.pageSize as number, pageToken: req.pageToken as string });
          return create(method.output, { [items.localName]: page.items.map((i) => messages.toMessage(i)), nextPageToken: page.nextPageToken });
        };
      }
    }
    impl[method.localName] = handler;
  }
  return impl as unknown as Pick<ServiceImpl<S>, StandardNames<S>>;
}

/** The field of `message` holding the resource (`repeated` for a list's items). */
function resourceField(message: DescMessage, resource: DescMessage, repeated: boolean): DescField | undefined {
  return message.fields.find((f) =>
    repeated ? f.fieldKind === "list" && f.listKind === "message" && f.message.typeName === resource.typeName : f.fieldKind === "message" && f.message.typeName === resource.typeName,
  );
}

function upperFirst(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
