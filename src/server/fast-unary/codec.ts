import { type DescMessage, fromBinary, fromJsonString, type Message, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

const decoder = new TextDecoder();
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
  try {
    return fromJsonString(desc, decoder.decode(bytes), jsonReadOptions);
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
