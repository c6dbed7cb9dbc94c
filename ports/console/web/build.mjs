// Builds the console into the directory given as the first argument
// (../dist for the committed bundle): app.js and app.css by esbuild,
// index.html copied. Deterministic: the same sources and lockfile give
// the same bytes (no timestamps, no hashes of absolute paths).
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";

const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: "src/main.js" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  platform: "browser",
  legalComments: "linked",
  charset: "utf8",
  outdir: out,
  logLevel: "warning",
});
await build({
  entryPoints: { app: "src/app.css" },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: "warning",
});
await copyFile(join("src", "index.html"), join(out, "index.html"));
