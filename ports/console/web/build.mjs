// Builds the console into the directory given as the first argument
// (../dist for the committed bundle): app.js and app.css by esbuild,
// index.html copied. Deterministic: the same sources and lockfile give
// the same bytes (no timestamps, no hashes of absolute paths).
import { build } from "esbuild";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const js = await build({
  metafile: true,
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

// licenses.txt: the license of every npm package bundled into app.js,
// sorted by name (served at /console/licenses.txt).
const pkgs = new Set();
for (const input of Object.keys(js.metafile.inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) pkgs.add(m[1]);
}
let text = "Third-party software bundled into app.js\n";
for (const name of [...pkgs].sort()) {
  const dir = join("node_modules", name);
  const { version, license } = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
  const file = (await readdir(dir)).sort().find((f) => /^licen[cs]e/i.test(f));
  text += `\n==== ${name} ${version} (${license})\n\n`;
  text += file ? (await readFile(join(dir, file), "utf8")).trimEnd() + "\n" : "(no license file in the package)\n";
}
await writeFile(join(out, "licenses.txt"), text);
