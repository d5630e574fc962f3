// A dashboard's first view, drawn from the page itself while its widgets connect
// (dashboards/preview.py says why). owner/api/live.py puts this module in every dashboard
// page's head, async, so it runs as soon as it is fetched, usually before Voila's own
// scripts: it watches the page arrive for outputs that carry a preview, draws them with
// the widgets' own page code (explorer.js) above Voila's spinner, and steps aside once a
// live explorer has drawn (or after GIVE_UP_MS, so a kernel that never connects leaves
// Voila's own page, and its error, to be seen).
//
// The preview is a picture of the first view, not a second dashboard: it is inert
// (nothing in it can be clicked, it has no kernel to ask), says that it is connecting,
// and lives in a closed shadow root, so what finds the dashboard's parts by their names
// (a stylesheet, a browser extension, a test) finds the live ones, never this copy.
// Values go into it as text, as the live widget puts them. When it has drawn a table it
// sets the performance mark "p2p2p-preview" (what benchmarks/dashboard.py times), and
// window.__p2p2p_preview holds its root for the tests that read it.
import explorer, { fromAddress } from "./explorer.js";

const MIME = "application/vnd.p2p2p.preview+json";
const OUTPUT = 'script[type="application/vnd.voila.cell-output+json"]';
const GIVE_UP_MS = 20000;
const LIVE_EVENT = "p2p2p-explorer-live";
// In the page: Voila's spinner and its not yet connected cells stay out of sight meanwhile.
const HIDE = `
html.p2p2p-previewing #loading, html.p2p2p-previewing #rendered_cells { display: none !important; }
.p2p2p-preview { display: block; max-width: 1600px; padding: 4px 12px; box-sizing: border-box; }
`;
// In the preview's own root.
const CSS = `
:host { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
:host > * + * { margin-top: 10px; }
.p2p2p-preview-note { color: #59636e; font-size: 13px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
`;

function stubModel(state) {
  // The live widget's model, as far as explorer.js reads it; asking goes nowhere.
  return {
    preview: true,
    get: (name) => state[name],
    set() {},
    on() {},
    off() {},
    send() {},
    save_changes() {},
  };
}

function start() {
  // An address with a view in it opens that view: a preview of the default one would
  // show the wrong table first.
  if (!/^\/s\/[a-z2-7]{32}\//.test(location.pathname) || fromAddress(location.search)) return;
  const seen = new WeakSet();
  let box = null;
  let done = false;
  let marked = false;

  function finish() {
    if (done) return;
    done = true;
    observer.disconnect();
    document.documentElement.classList.remove("p2p2p-previewing");
    if (box) box.remove();
  }

  let root = null;
  function container() {
    if (root) return root;
    const style = document.createElement("style");
    style.textContent = HIDE;
    document.head.append(style);
    box = document.createElement("div");
    box.className = "p2p2p-preview";
    box.inert = true;
    box.setAttribute("aria-busy", "true");
    root = box.attachShadow({ mode: "closed" });
    const own = document.createElement("style");
    own.textContent = CSS;
    const note = document.createElement("div");
    note.className = "p2p2p-preview-note";
    note.setAttribute("role", "status");
    note.textContent = "Connecting to the live dashboard…";
    root.append(own, note);
    window.__p2p2p_preview = root;
    const banner = document.getElementById("p2p2p-offline");
    if (banner) banner.after(box);
    else document.body.prepend(box);
    document.documentElement.classList.add("p2p2p-previewing");
    setTimeout(finish, GIVE_UP_MS);
    return root;
  }

  function draw(parts) {
    for (const part of parts) {
      const el = document.createElement("div");
      if (part.kind === "html" && typeof part.html === "string") {
        el.innerHTML = part.html; // written by the owner's kernel, as the live HTML widget shows it
      } else if (part.kind === "explorer" && part.state) {
        el.className = "p2p2p-preview-explorer";
        explorer.render({ model: stubModel(part.state), el });
      } else {
        continue;
      }
      container().append(el);
    }
    if (root && root.querySelector(".p2p2p-x-table tbody tr") && !marked) {
      marked = true;
      box.getBoundingClientRect(); // laid out now, as a person would see it
      performance.mark("p2p2p-preview");
    }
  }

  function scan() {
    if (done || !document.body) return;
    for (const script of document.querySelectorAll(OUTPUT)) {
      if (seen.has(script)) continue;
      let output;
      try {
        output = JSON.parse(script.textContent);
      } catch (_e) {
        continue; // still arriving: the next change, or the end of the page, reads it
      }
      seen.add(script);
      const preview = output && output.data && output.data[MIME];
      if (preview && Array.isArray(preview.parts)) draw(preview.parts);
    }
  }

  const observer = new MutationObserver(scan);
  observer.observe(document.documentElement, { childList: true, subtree: true, characterData: true });
  document.addEventListener(LIVE_EVENT, finish, { once: true });
  document.addEventListener("DOMContentLoaded", () => {
    scan();
    if (!box) finish(); // a page without a preview: nothing to watch any more
  });
  scan();
}

start();
