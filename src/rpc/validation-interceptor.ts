import type { DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { InvalidArgumentError } from "../shared/errors.js";
import { compileRequestValidator, type MessageValidator } from "./validation/field-rules.js";

/**
 * Checks every request message against the `buf.validate` rules in its proto
 * (enforced by protovalidate, see validation/field-rules.ts) before the
 * handler runs, reporting every violated field at once as INVALID_ARGUMENT
 * with google.rpc.BadRequest field violations. Validators are built at
 * start-up, so a rule that cannot compile stops the gateway there.
 */
export function validationInterceptor(inputs: readonly DescMessage[]): Interceptor {
  const validators = new Map<string, MessageValidator>();
  for (const desc of inputs) validators.set(desc.typeName, compileRequestValidator(desc));
  return (next) => async (req) => {
    if (!req.stream) {
      const validate = validators.get(req.method.input.typeName);
      const violations = validate ? await validate(req.message) : [];
      if (violations.length > 0) {
        const summary = violations.map((v) => `${v.field} ${v.description}`).join("; ");
        throw new InvalidArgumentError(`invalid request: ${summary}`, violations);
      }
    }
    return next(req);
  };
}
