import { BlockList, isIP } from "node:net";

/**
 * The address of the client behind a call: the socket's peer, unless the
 * peer is a trusted proxy (ANVIL_TRUSTED_PROXIES), then the nearest
 * `X-Forwarded-For` hop that is not a trusted proxy. Hops are read from the
 * right, since each proxy appends the address it saw: everything left of
 * the first untrusted hop was written by the client and proves nothing.
 */
export class ClientAddresses {
  readonly #trusted: BlockList | undefined;

  /** `trusted`: addresses or CIDR ranges, IPv4 or IPv6 (`10.0.0.0/8`, `::1`). */
  constructor(trusted: readonly string[]) {
    if (trusted.length === 0) return;
    this.#trusted = new BlockList();
    for (const entry of trusted) {
      const [address, bits] = parseCidr(entry);
      const family = isIP(address) === 6 ? "ipv6" : "ipv4";
      this.#trusted.addSubnet(address, bits ?? (family === "ipv6" ? 128 : 32), family);
    }
  }

  /** The client's address from the socket peer and the request's X-Forwarded-For header. */
  resolve(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    const socket = normalise(peer ?? "") || "unknown";
    if (!this.#isTrusted(socket) || forwardedFor === undefined) return socket;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
      .split(",")
      .map((h) => normalise(h.trim()))
      .filter((h) => h !== "");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      if (!this.#isTrusted(hop)) return hop;
    }
    // Every hop is a trusted proxy: the leftmost is as near the client as the chain says.
    return hops[0] ?? socket;
  }

  #isTrusted(address: string): boolean {
    const family = isIP(address);
    if (this.#trusted === undefined || family === 0) return false;
    return this.#trusted.check(address, family === 6 ? "ipv6" : "ipv4");
  }
}

/** Checks one ANVIL_TRUSTED_PROXIES entry; throws with the reason. */
export function parseCidr(entry: string): [string, number | undefined] {
  const [address = "", bitsText] = entry.split("/");
  const family = isIP(address);
  if (family === 0) throw new Error(`ANVIL_TRUSTED_PROXIES: ${JSON.stringify(entry)} is not an IP address or CIDR range`);
  if (bitsText === undefined) return [address, undefined];
  const bits = Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
    throw new Error(`ANVIL_TRUSTED_PROXIES: ${JSON.stringify(entry)} has an invalid prefix length`);
  }
  return [address, bits];
}

/**
 * An address as one string per client: IPv4-mapped IPv6 (`::ffff:1.2.3.4`)
 * as IPv4, ports and brackets dropped; anything that is no IP address is
 * kept (shortened), so it still names one bucket.
 */
function normalise(raw: string): string {
  let a = raw;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) a = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(":"));
  if (a.toLowerCase().startsWith("::ffff:") && isIP(a.slice(7)) === 4) a = a.slice(7);
  return isIP(a) === 0 ? a.slice(0, 64) : a.toLowerCase();
}
