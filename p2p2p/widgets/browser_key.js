// The key a browser keeps for one share's origin: a non-extractable Ed25519 key made by
// WebCrypto and kept in IndexedDB, so the same browser keeps its identity across visits.
// Nothing can read its private half, not even the scripts that use it. Put in front of
// the widget that signs notes (signer.js) and of the sign-in page's script
// (owner/signin.js): one key, one way to keep it.

const DB = "p2p2p";
const STORE = "keys";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function idb(db, mode, action) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function identity() {
  const db = await openDb();
  let pair = await idb(db, "readonly", (s) => s.get("identity"));
  if (!pair) {
    pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await idb(db, "readwrite", (s) => s.put(pair, "identity"));
  }
  return pair;
}
