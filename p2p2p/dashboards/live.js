// Every dashboard page says "offline" when its share goes away (owner/api/dashboard.py
// puts this script in the page's head, whatever notebook the page renders).
//
// It asks the relay, not the owner, whether the share is still routed: the relay answers
// /.p2p2p/live itself, so an open page costs the owner's machine nothing, and the answer
// also comes when the owner's machine is gone. A network error (the relay itself is
// gone) counts as offline after two misses in a row, so one dropped request is not news.
(() => {
  "use strict";
  const EVERY_MS = 2500;
  const TIMEOUT_MS = 5000;
  const base = location.pathname.match(/^\/s\/[a-z2-7]{32}\//);
  if (!base) return;
  const url = base[0] + ".p2p2p/live";
  let misses = 0;
  let offline = false;

  function banner() {
    let box = document.getElementById("p2p2p-offline");
    if (!box) {
      box = document.createElement("div");
      box.id = "p2p2p-offline";
      box.className = "p2p2p-offline";
      box.setAttribute("role", "alert");
      box.style.cssText =
        "position:sticky;top:0;z-index:10000;background:#fff8c5;color:#1f2328;" +
        "border-bottom:1px solid #d4a72c;padding:10px 14px;font:15px/1.4 system-ui,sans-serif";
      document.body.prepend(box);
    }
    return box;
  }

  function say(isOffline) {
    if (!document.body) return; // not parsed yet: the next check says it
    if (isOffline === offline && document.getElementById("p2p2p-offline")) return;
    offline = isOffline;
    const box = banner();
    box.textContent = "";
    const title = document.createElement("b");
    if (isOffline) {
      title.textContent = "This share is offline.";
      box.append(
        title,
        " The owner stopped sharing it, or their machine is not connected. " +
          "What you see here is no longer updated."
      );
      document.body.classList.add("p2p2p-is-offline");
      for (const badge of document.querySelectorAll(".p2p2p-live-badge")) {
        badge.style.display = "none"; // a dashboard's own "live" sign, now untrue
      }
      for (const control of document.querySelectorAll("button, input, select, textarea")) {
        control.disabled = true;
      }
    } else {
      title.textContent = "The share is back.";
      const reload = document.createElement("a");
      reload.href = location.pathname;
      reload.textContent = "Reload the page";
      box.append(title, " ", reload, " to continue.");
    }
  }

  async function check() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const answer = await fetch(url, {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: abort.signal,
      });
      misses = 0;
      if (answer.status === 404 || answer.status === 410) say(true);
      else if (answer.ok && offline) say(false);
    } catch (_error) {
      misses += 1;
      if (misses >= 2) say(true);
    } finally {
      clearTimeout(timer);
      setTimeout(check, EVERY_MS);
    }
  }

  setTimeout(check, EVERY_MS);
})();
