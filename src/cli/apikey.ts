import { parseArgs } from "node:util";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ApiKey_State, ApiKeyService } from "../../gen/anvil/apikeys/v1/apikeys_pb.js";
import { loadKeyStore } from "../auth/key-store.js";
import { mintServiceToken } from "../auth/mint-token.js";
import { defaultKeysFile } from "../config.js";

const usage = `Manages API keys through a running gateway, authenticated with a service-account key (like npm run token):
  npm run apikey -- create --name ci --roles viewer[,analyzer] [--expires 30d] [--tier pro]
  npm run apikey -- list
  npm run apikey -- revoke <id>
Options: --url (default http://localhost:8080 or $ANVIL_URL), --key <service-account key id>, --keys-file <file>`;

/** Prints a new key's secret once (create), the keys (list), or the revoked key (revoke). */
async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: "string" },
      key: { type: "string" },
      "keys-file": { type: "string" },
      name: { type: "string" },
      roles: { type: "string" },
      expires: { type: "string" },
      tier: { type: "string" },
    },
  });
  const [command, id] = positionals;
  if (command !== "create" && command !== "list" && command !== "revoke") throw new Error(usage);
  const file = values["keys-file"] || process.env.ANVIL_KEYS_FILE || defaultKeysFile;
  const keys = loadKeyStore(file, false);
  const key = values.key ? keys.get(values.key) : keys.values().next().value;
  if (!key) throw new Error(`no key ${values.key ?? ""} in ${file} (have: ${[...keys.keys()].join(", ")})`);
  // A short-lived token with the key's own roles: the gateway keeps new keys within them.
  const token = await mintServiceToken(key, { subject: key.principal, roles: key.roles, ttl: "5m" });
  const client = createClient(
    ApiKeyService,
    createConnectTransport({
      baseUrl: values.url ?? process.env.ANVIL_URL ?? "http://localhost:8080",
      httpVersion: "1.1",
      interceptors: [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }],
    }),
  );
  const out = (line: string) => process.stdout.write(`${line}\n`);
  switch (command) {
    case "create": {
      if (!values.name || !values.roles) throw new Error(`create needs --name and --roles\n${usage}`);
      const { apiKey, secret } = await client.createApiKey({
        apiKey: {
          displayName: values.name,
          roles: values.roles.split(",").map((r) => r.trim()).filter(Boolean),
          tier: values.tier ?? "",
          expireTime: values.expires ? timestampFromDate(new Date(Date.now() + durationMs(values.expires))) : undefined,
        },
      });
      process.stderr.write(`created API key ${apiKey!.id} (${apiKey!.displayName}: ${apiKey!.roles.join(",")}); its secret is shown only now:\n`);
      out(secret);
      break;
    }
    case "list": {
      let pageToken = "";
      do {
        const page = await client.listApiKeys({ pageSize: 1000, pageToken });
        for (const k of page.apiKeys) {
          const expires = k.expireTime ? timestampDate(k.expireTime).toISOString() : "never";
          const used = k.lastUsedTime ? timestampDate(k.lastUsedTime).toISOString() : "never";
          out([k.id, ApiKey_State[k.state].toLowerCase(), k.displayName, k.roles.join(","), k.tier, `expires ${expires}`, `last used ${used}`].join("\t"));
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      break;
    }
    case "revoke": {
      if (!id) throw new Error(`revoke needs the key's id\n${usage}`);
      const { apiKey } = await client.revokeApiKey({ id });
      out(`${apiKey!.id}\t${ApiKey_State[apiKey!.state].toLowerCase()}`);
      break;
    }
  }
}

/** `30d`, `12h`, `15m` in ms. */
function durationMs(text: string): number {
  const match = /^([1-9][0-9]*)([dhm])$/.exec(text);
  if (!match) throw new Error(`--expires must be like 30d, 12h or 15m, got ${text}`);
  return Number(match[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[match[2] as "d" | "h" | "m"];
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConnectError ? `${err.rawMessage} (${Code[err.code]})` : err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
