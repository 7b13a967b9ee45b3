import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The console is built into console/dist and served by the gateway under
 * /console/ (src/server/console-route.ts). Generated clients are imported
 * straight from ../gen: no extra code generation for the browser.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  // React's automatic JSX runtime; Vite's own transform, no plugin needed.
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Modern browsers only: the console is for people running Anvil, not a public site.
    target: "es2022",
    reportCompressedSize: false,
    // One chunk of ~520 KB raw is ~140 KB brotli; the budget that matters (under 300 KB compressed) is asserted by test/console.test.ts.
    chunkSizeWarningLimit: 800,
    sourcemap: false,
    rolldownOptions: {
      // TanStack Query marks its React modules "use client" for server-component bundlers; meaningless in a SPA.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  logLevel: "warn",
});
