// Builds what the HTTP port serves and what the tests run (npm run build): the storefront
// and the dashboard (browser bundles, with the generated client), the client for Node, and
// the Node test caller. esbuild only strips types and bundles; `npm run typecheck` checks them.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
const common = { bundle: true, sourcemap: true, logLevel: "warning" };
for (const page of ["storefront", "dashboard"].filter((p) => existsSync(`${p}/app.ts`))) {
  mkdirSync(`dist/${page}`, { recursive: true });
  await build({ ...common, entryPoints: [`${page}/app.ts`], outfile: `dist/${page}/app.js`, format: "esm", platform: "browser", target: "es2022" });
  cpSync(`${page}/index.html`, `dist/${page}/index.html`);
}
if (existsSync("style.css")) cpSync("style.css", "dist/style.css");
await build({ ...common, entryPoints: ["src/index.ts"], outfile: "dist/client/index.js", format: "esm", platform: "neutral", packages: "external" });
await build({ ...common, entryPoints: ["test/call.ts"], outfile: "dist/test/call.mjs", format: "esm", platform: "node", target: "node20" });
if (existsSync("test/browser.ts")) await build({ ...common, entryPoints: ["test/browser.ts"], outfile: "dist/test/browser.mjs", format: "esm", platform: "node", target: "node20", packages: "external" });
