#!/usr/bin/env node
// An example publisher of audit events for auditq (docs/examples/js/README.md).
//
//   node publish.mjs <nats-url> <file> [--schema-dir DIR]
//
// <file> holds one event, an array of events (each published to audit.log)
// or a bulk message {"events": [...]} (published to audit.bulk). Every
// message is validated against auditq's JSON Schema (draft 2020-12) first:
// an invalid one is refused here, naming the field, and never published.
// The schemas come from the service itself (request audit.schema), or with
// --schema-dir from the files shipped in ports/contract/schema. Valid
// events are published with JetStream, Nats-Msg-Id set to the event id,
// and the publisher waits for every acknowledgement.
//
// Exit status: 0 every message published and acknowledged; 1 some were
// refused by the schema (the valid ones are still published); 2 usage,
// connection or publish failure.

import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

function usage(msg) {
  if (msg) console.error(msg);
  console.error("usage: node publish.mjs <nats-url> <file> [--schema-dir DIR]");
  process.exit(2);
}

// loadSchemas returns {baseUri, schemas: {name: schema}}: from DIR, or
// from the running service (audit.schema).
async function loadSchemas(nc, dir) {
  if (dir) {
    const schemas = {};
    for (const f of (await readdir(dir)).filter((f) => f.endsWith(".json"))) {
      schemas[f.slice(0, -5)] = JSON.parse(await readFile(path.join(dir, f), "utf8"));
    }
    return { schemas };
  }
  const reply = await nc.request("audit.schema", "{}", { timeout: 5000 });
  return reply.json();
}

// compile builds the validators of the event and the bulk message.
function compile({ schemas }) {
  const ajv = new Ajv2020({ allErrors: false, strict: true, strictTypes: false, allowUnionTypes: true });
  addFormats(ajv);
  for (const s of Object.values(schemas)) ajv.addSchema(s);
  const byName = (n) => ajv.getSchema(schemas[n].$id);
  return { event: byName("event"), bulk: byName("bulk") };
}

// describe names the field and the rule of a validator's first error.
function describe(errors) {
  const e = errors[errors.length - 1];
  let field = e.instancePath.replace(/^\//, "").replaceAll("/", ".");
  if (e.keyword === "required") field = (field ? field + "." : "") + e.params.missingProperty;
  if (e.keyword === "additionalProperties") field = (field ? field + "." : "") + e.params.additionalProperty;
  return `${field || "(message)"}: ${e.message}`;
}

async function main() {
  const args = process.argv.slice(2);
  let schemaDir;
  const i = args.indexOf("--schema-dir");
  if (i >= 0) {
    schemaDir = args[i + 1];
    if (!schemaDir) usage("--schema-dir needs a directory");
    args.splice(i, 2);
  }
  if (args.length !== 2) usage();
  const [url, file] = args;
  const text = await readFile(file, "utf8");
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    usage(`${file}: not JSON: ${err.message}`);
  }

  const nc = await connect({ servers: url, name: "auditq-example-publisher" });
  let status = 0;
  try {
    const validate = compile(await loadSchemas(nc, schemaDir));
    const js = jetstream(nc);
    const pending = [];
    if (doc !== null && !Array.isArray(doc) && typeof doc === "object" && "events" in doc) {
      // A bulk message: one message, all or nothing here.
      if (!validate.bulk(doc)) {
        console.error(`${file}: refused, not published: ${describe(validate.bulk.errors)}`);
        status = 1;
      } else {
        const id = "bulk-" + createHash("sha256").update(text).digest("hex").slice(0, 32);
        pending.push(js.publish("audit.bulk", JSON.stringify(doc), { msgID: id }).then((ack) => ({ id, ack })));
      }
    } else {
      const events = Array.isArray(doc) ? doc : [doc];
      events.forEach((ev, n) => {
        const label = `event ${n}${ev && typeof ev.id === "string" ? ` (${ev.id})` : ""}`;
        if (!validate.event(ev)) {
          console.error(`${label}: refused, not published: ${describe(validate.event.errors)}`);
          status = 1;
          return;
        }
        if (typeof ev.id !== "string" || ev.id === "") {
          // Without an id auditq would use the message id: give it one
          // that a retried publish repeats.
          ev.id = "js-" + createHash("sha256").update(JSON.stringify(ev)).digest("hex").slice(0, 32);
        }
        pending.push(js.publish("audit.log", JSON.stringify(ev), { msgID: ev.id }).then((ack) => ({ id: ev.id, ack })));
      });
    }
    for (const r of await Promise.allSettled(pending)) {
      if (r.status === "rejected") {
        console.error(`publish failed: ${r.reason?.message ?? r.reason}`);
        status = 2;
        continue;
      }
      const { id, ack } = r.value;
      console.log(`${id}: stored in ${ack.stream} at sequence ${ack.seq}${ack.duplicate ? " (a duplicate: already published)" : ""}`);
    }
  } finally {
    await nc.drain();
  }
  process.exit(status);
}

main().catch((err) => {
  console.error(err?.message ?? err);
  process.exit(2);
});
