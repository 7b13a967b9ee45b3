import { type DescMessage, fromBinary, type JsonValue, type Message, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorBudget, toConnectError, truncate } from "../../rpc/error-mapping.js";
import { overBudgetError, structBudgetOfBinary, structBudgetOfJson } from "../../rpc/validation/struct-budget.js";
import type { FieldViolation } from "../../shared/errors.js";
import { type JsonObjectsProblem, maxJsonMembers, scanJsonObjects } from "../json-objects.js";
import { decodeUtf8, fromJsonInSlices } from "../message-decoding.js";

const encoder = new TextEncoder();
// connect-es parses request JSON ignoring unknown fields; keep that contract.
const jsonReadOptions = { ignoreUnknownFields: true };

/**
 * Parses a request message. Both malformed JSON and malformed protobuf are
 * the client's fault and INVALID_ARGUMENT (connect-node reports the binary
 * case as INTERNAL; Anvil does not, on either serving path). Free-form
 * JSON over its limits is refused before protobuf-es builds a message per
 * value (struct-budget.ts). Large JSON bodies are decoded in time slices
 * (message-decoding.ts).
 */
export async function parseMessage(desc: DescMessage, binary: boolean, bytes: Uint8Array): Promise<Message> {
  if (binary) {
    try {
      refuseOverBudget(structBudgetOfBinary(desc, bytes));
      return fromBinary(desc, bytes);
    } catch (e) {
      if (e instanceof ConnectError) throw e; // over the budget
      throw parseError(`parse binary: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  let text: string;
  try {
    text = await decodeUtf8(bytes);
  } catch {
    throw new ConnectError("request body is not valid UTF-8", Code.InvalidArgument);
  }
  // What fromJsonString does, with a cheaper duplicate-key check that also
  // bounds the members JSON.parse may be made to build, and the Struct
  // budget between parsing and decoding.
  refuseObjects(desc, scanJsonObjects(text));
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (e) {
    // fromJsonString's wording, which clients have seen so far.
    throw parseError(`cannot decode message ${desc.typeName} from JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  refuseOverBudget(structBudgetOfJson(desc, json));
  try {
    return await fromJsonInSlices(desc, json, jsonReadOptions);
  } catch (e) {
    throw parseError(e instanceof Error ? e.message : String(e));
  }
}

/** INVALID_ARGUMENT for a body that does not parse; its message may quote the body, so it is cut to the error budget. */
function parseError(message: string): ConnectError {
  return new ConnectError(truncate(message, errorBudget.messageBytes), Code.InvalidArgument);
}

/** INVALID_ARGUMENT for a JSON body whose objects cannot be read as one message (see json-objects.ts). */
export function refuseObjects(desc: DescMessage, problem: JsonObjectsProblem | undefined): void {
  if (problem?.kind === "duplicate") throw parseError(`cannot decode message ${desc.typeName} from JSON: duplicate object key "${problem.name}"`);
  if (problem?.kind === "too-many") throw parseError(`cannot decode message ${desc.typeName} from JSON: more than ${maxJsonMembers} object members`);
}

/** INVALID_ARGUMENT with the BadRequest detail validation would have sent. */
function refuseOverBudget(violation: FieldViolation | undefined): void {
  if (violation) throw toConnectError(overBudgetError(violation), "");
}

/** Serializes a response message as connect-es does. */
export function serializeMessage(desc: DescMessage, binary: boolean, message: Message): Uint8Array {
  try {
    return binary ? toBinary(desc, message) : encoder.encode(toJsonString(desc, message));
  } catch (e) {
    throw ConnectError.from(e, Code.Internal);
  }
}
