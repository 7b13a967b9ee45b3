import { type DescMessage, fromBinary, fromJsonString, type Message, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

// Fatal: bytes that are not UTF-8 are the client's mistake (INVALID_ARGUMENT),
// not text to store with U+FFFD in their place. The universal path gets the
// same decoder through the router's jsonOptions (connect-handler.ts).
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();
// connect-es parses request JSON ignoring unknown fields; keep that contract.
const jsonReadOptions = { ignoreUnknownFields: true };

/**
 * Parses a request message. Both malformed JSON and malformed protobuf are
 * the client's fault and INVALID_ARGUMENT (connect-node reports the binary
 * case as INTERNAL; Anvil does not, on either serving path).
 */
export function parseMessage(desc: DescMessage, binary: boolean, bytes: Uint8Array): Message {
  if (binary) {
    try {
      return fromBinary(desc, bytes);
    } catch (e) {
      throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
    }
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new ConnectError("request body is not valid UTF-8", Code.InvalidArgument);
  }
  try {
    return fromJsonString(desc, text, jsonReadOptions);
  } catch (e) {
    throw ConnectError.from(e, Code.InvalidArgument);
  }
}

/** Serializes a response message as connect-es does. */
export function serializeMessage(desc: DescMessage, binary: boolean, message: Message): Uint8Array {
  try {
    return binary ? toBinary(desc, message) : encoder.encode(toJsonString(desc, message));
  } catch (e) {
    throw ConnectError.from(e, Code.Internal);
  }
}
