import { parseArgs } from "node:util";
import { loadKeyStore } from "../auth/key-store.js";
import { mintServiceToken } from "../auth/mint-token.js";
import { defaultKeysFile } from "../config.js";

/**
 * Prints a bearer token signed with a service-account key:
 *   npm run token -- --key ops --sub alice --roles viewer --ttl 1h
 * Roles default to the key's; the tenant is always the key's.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      key: { type: "string" },
      sub: { type: "string" },
      roles: { type: "string" },
      ttl: { type: "string", default: "1h" },
      "keys-file": { type: "string" },
    },
  });
  const file = values["keys-file"] || process.env.ANVIL_KEYS_FILE || defaultKeysFile;
  // Like the gateway: only the default file is created when missing.
  const keys = loadKeyStore(file, file === defaultKeysFile);
  const key = values.key ? keys.get(values.key) : keys.values().next().value;
  if (!key) throw new Error(`no key ${values.key ?? ""} in the keys file (have: ${[...keys.keys()].join(", ")})`);
  const roles = values.roles ? values.roles.split(",").map((r) => r.trim()).filter(Boolean) : [...key.roles];
  const token = await mintServiceToken(key, { subject: values.sub ?? key.principal, roles, ttl: values.ttl ?? "1h" });
  process.stdout.write(`${token}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
