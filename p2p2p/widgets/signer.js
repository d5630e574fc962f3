// Signs notes with the browser's own key (browser_key.js, which is put in front of this
// file): the kernel sends canonical note bytes; this signs them and sends back the
// signature, with the note's proof of work.

const NAME_KEY = "p2p2p-display-name";

const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// The key signs p2p2p notes for the share this page belongs to, nothing else: the kernel
// (or anything between it and this page) must not get arbitrary bytes signed with it.
const DOMAIN = new TextEncoder().encode("p2p2p-note-v1\0");

function checkNote(bytes) {
  if (bytes.length <= DOMAIN.length || DOMAIN.some((b, i) => bytes[i] !== b)) {
    throw new Error("refused to sign: not a p2p2p note");
  }
  const note = JSON.parse(new TextDecoder().decode(bytes.subarray(DOMAIN.length)));
  const here = location.pathname.match(/\/s\/([a-z2-7]{32})\//);
  if (here && note.share !== here[1]) {
    throw new Error("refused to sign: the note is for another share");
  }
}

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

// A note from a key the owner has not seen carries a small proof of work (a few hundred
// ms here), so a flood of notes from fresh keys costs the sender, not the owner.
async function proveWork(prefixB64, bits) {
  if (!prefixB64 || !bits) return "";
  const prefix = unb64(prefixB64);
  const enc = new TextEncoder();
  for (let n = 0; n < 2 ** (bits + 8); n++) {
    const tail = enc.encode(String(n));
    const data = new Uint8Array(prefix.length + tail.length);
    data.set(prefix);
    data.set(tail, prefix.length);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    if (leadingZeroBits(digest) >= bits) return String(n);
  }
  throw new Error("no proof of work found");
}

export default {
  async render({ model, el }) {
    el.className = "p2p2p-signer";
    el.style.fontSize = "0.85em";
    el.style.color = "#59636e";
    const remembered = localStorage.getItem(NAME_KEY);
    if (remembered && !model.get("name")) {
      model.set("name", remembered);
    }
    model.on("change:name", () => localStorage.setItem(NAME_KEY, model.get("name")));
    try {
      const pair = await identity();
      const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      model.set("public_key", b64(raw));
      model.set("error", "");
      model.save_changes();
      el.textContent = "Your notes are signed with a key kept in this browser.";
      model.on("msg:custom", async (msg) => {
        try {
          const bytes = unb64(msg.bytes);
          checkNote(bytes);
          const sig = await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, bytes);
          const work = await proveWork(msg.work_prefix, msg.work_bits);
          model.send({ id: msg.id, sig: b64(new Uint8Array(sig)), work });
        } catch (error) {
          model.send({ id: msg.id, error: String(error) });
        }
      });
    } catch (error) {
      model.set("error", String(error));
      model.save_changes();
      el.textContent = window.isSecureContext
        ? "This browser cannot sign (no Ed25519 in WebCrypto): notes use a key for this visit only."
        : "This page is not served over HTTPS, so the browser offers no signing key: notes use a key for this visit only.";
    }
  },
};
