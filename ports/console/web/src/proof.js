// Checks an event's inclusion proof (audit.event.proof) in the browser,
// with WebCrypto's SHA-256 and Ed25519, as domain/evidence.EventProof.Verify
// does and docs/tamper-evidence.md specifies.
import { canonicalEvent, time6 } from "./jcs.js";

const enc = new TextEncoder();

export function hexToBytes(h) {
  if (typeof h !== "string" || !/^[0-9a-f]*$/.test(h) || h.length % 2) throw new Error(`not lower-case hex: ${h}`);
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

export function bytesToHex(b) {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
}

function b64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function sha256(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

const leafHash = (data) => sha256(Uint8Array.of(0), enc.encode(data));
const nodeHash = (l, r) => sha256(Uint8Array.of(1), l, r);

// verifyInclusion is RFC 9162 section 2.1.3.2: does proof lead from leaf
// at index in a tree of size leaves to root?
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesToHex(r) === bytesToHex(root);
}

// keyRing imports the keys audit.pubkey answers (the signing key and the
// retired ones), each with its id: hex of the first 8 bytes of SHA-256.
export async function keyRing(pubkey) {
  const all = [{ publicKey: pubkey.publicKey }, ...(pubkey.retired || [])];
  const ring = [];
  for (const k of all) {
    const raw = b64(k.publicKey);
    const id = bytesToHex((await sha256(raw)).slice(0, 8));
    const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    ring.push({ id, key });
  }
  return ring;
}

const verifySig = (key, sig, text) => crypto.subtle.verify({ name: "Ed25519" }, key, b64(sig), enc.encode(text));

function batchBody(b) {
  return `id ${b.id}\nsealed ${time6(b.sealedAt)}\nleaves ${b.leafCount}\nroot ${b.root}\n`;
}

export function checkpointText(c) {
  return (
    `auditq checkpoint v1\nseq ${c.seq}\nprev ${c.prev}\ntime ${time6(c.time)}\nreason ${c.reason}\n` +
    `batches ${c.batchSeq} ${c.batchHash}\nrange ${c.rangeFrom} ${c.batchSeq} ${c.rangeRoot}\n` +
    `deletions ${c.deletionSeq} ${c.deletionHash}\nkey ${c.keyId}\n`
  );
}

// parseProof parses an audit.event.proof answer, keeping the 64-bit batch
// id as its decimal text (a JavaScript number would round it). An empty
// path (a batch of one event, a checkpoint range of one batch) may come
// as null: it is the empty list.
export function parseProof(text) {
  const p = JSON.parse(text.replace(/"id"\s*:\s*(-?\d+)/g, '"id":"$1"'));
  p.leafProof = p.leafProof || [];
  p.batchProof = p.batchProof || [];
  return p;
}

const mismatch = (message) => ({ state: "mismatch", message });
const pending = (message) => ({ state: "pending", message });

// verifyProof checks that event (as audit.event.get shows it) is the one
// proof covers and that proof holds up to a checkpoint signed by a key of
// ring. It returns {state: "verified", checkpoint, message}, {state:
// "pending", message} when only the checkpoint is missing, or {state:
// "mismatch", message} naming the step that failed.
export async function verifyProof(event, proof, ring) {
  if (proof.eventId !== event.id) return mismatch(`the proof is of event ${proof.eventId}, not ${event.id}`);
  let shown;
  try {
    shown = canonicalEvent(event);
  } catch (e) {
    return mismatch(`the event cannot be encoded canonically: ${e.message}`);
  }
  if (shown !== proof.canonical) return mismatch("the event as shown differs from the data its proof hashes");
  const leaf = await leafHash(proof.canonical);
  if (bytesToHex(leaf) !== proof.leafHash) {
    return mismatch(`its stored content hashes to ${bytesToHex(leaf).slice(0, 16)}…, but its batch sealed ${proof.leafHash.slice(0, 16)}…: the event was modified`);
  }
  const b = proof.batch;
  if (!(await verifyInclusion(leaf, proof.leafIndex, b.leafCount, proof.leafProof.map(hexToBytes), hexToBytes(b.root)))) {
    return mismatch(`the inclusion proof does not lead to the Merkle root of batch ${b.seq}`);
  }
  const body = batchBody(b);
  let signed = false;
  for (const k of ring) {
    if (await verifySig(k.key, b.signature, "auditq batch body v1\n" + body)) signed = true;
  }
  if (!signed) return mismatch(`batch id ${b.id} is not signed by a trusted key`);
  if (b.seq === 0) return pending(`its batch (id ${b.id}) is not yet linked into the chain`);
  const bh = await sha256(enc.encode(`auditq batch v1\nseq ${b.seq}\nprev ${b.prev}\n` + body));
  if (bytesToHex(bh) !== b.hash) return mismatch(`batch ${b.seq}: its record does not hash to its stored hash`);
  const c = proof.checkpoint;
  if (!c) {
    const due = proof.nextCheckpointDue ? ` The next checkpoint is due by ${proof.nextCheckpointDue}.` : "";
    return pending(`batch ${b.seq} is sealed and signed, but no signed checkpoint covers it yet.${due}`);
  }
  const key = ring.find((k) => k.id === c.keyId);
  if (!key) return mismatch(`checkpoint ${c.seq} is signed by key ${c.keyId}, which the service does not list`);
  if (!(await verifySig(key.key, c.signature, checkpointText(c)))) return mismatch(`checkpoint ${c.seq}: the Ed25519 signature does not verify`);
  if (b.seq < c.rangeFrom || b.seq > c.batchSeq || proof.batchIndex !== b.seq - c.rangeFrom || proof.rangeSize !== c.batchSeq - c.rangeFrom + 1) {
    return mismatch(`batch ${b.seq} is not in the range ${c.rangeFrom}..${c.batchSeq} of checkpoint ${c.seq}`);
  }
  if (!(await verifyInclusion(bh, proof.batchIndex, proof.rangeSize, proof.batchProof.map(hexToBytes), hexToBytes(c.rangeRoot)))) {
    return mismatch(`batch ${b.seq}: the inclusion proof does not lead to the range root signed by checkpoint ${c.seq}`);
  }
  return { state: "verified", checkpoint: c, message: `signed by key ${c.keyId} at ${c.time}` };
}
