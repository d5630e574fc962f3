// Signing a browser in to an identified share, with the key this browser keeps for the
// share (widgets/browser_key.js, put in front of this file: the key it signs notes with).
// With an invite (?i=…) the key is enrolled first. Nothing secret leaves the browser:
// the owner gets the public key and a signature over its own fresh challenge.

const DOMAIN = "p2p2p-signin-v1\0";

const b64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function fingerprint(raw) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  const hex = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  return hex.match(/.{4}/g).join("-");
}

async function post(url, body) {
  const answer = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  let data = {};
  try {
    data = await answer.json();
  } catch (e) {}
  return { ok: answer.ok, data };
}

async function main() {
  const status = document.getElementById("status");
  const shown = document.getElementById("key");
  const say = (text) => (status.textContent = text);
  const here = location.pathname.match(/^(\/s\/([a-z2-7]{32})\/)/);
  if (!here) return say("This page is not on a share's address.");
  const [, base, shareId] = here;
  const invite = new URLSearchParams(location.search).get("i");
  if (!window.crypto || !crypto.subtle || !window.indexedDB) {
    return say("This browser cannot keep a signing key (it needs WebCrypto and IndexedDB).");
  }
  let pair;
  try {
    pair = await identity();
  } catch (e) {
    return say("This browser cannot make an Ed25519 key: " + e.message);
  }
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  shown.textContent = await fingerprint(raw);
  const asked = invite ? "?i=" + encodeURIComponent(invite) : "";
  const challenge = await post(base + ".p2p2p/challenge" + asked);
  if (!challenge.ok) return say(challenge.data.message || "The owner did not answer.");
  const nonce = challenge.data.nonce;
  const message = new TextEncoder().encode(DOMAIN + shareId + "\0" + nonce);
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, message),
  );
  const body = { key: b64url(raw), nonce, signature: b64url(signature) };
  const answer = invite
    ? await post(base + ".p2p2p/enroll" + asked, { ...body, invite })
    : await post(base + ".p2p2p/login", body);
  if (!answer.ok) {
    document.body.dataset.signin = "refused";
    return say(answer.data.message || "Signing in did not work.");
  }
  document.body.dataset.signin = "ok";
  say("Signed in as " + answer.data.viewer + ". Opening the share…");
  location.replace(base);
}

main().catch((e) => {
  document.getElementById("status").textContent = "Signing in failed: " + e.message;
});
