// The table explorer's page side: draws what the kernel sends (rows as exact text, facet
// counts) and sends back what the viewer asks for (a filter, a sort, a page, an export).
// Every value from the store is put in the page as text (textContent), never as HTML.
// The view lives in the address (Datasette's form: ?_table=sales&region=north&_sort=x),
// so it can be bookmarked and sent; the kernel checks whatever the address says.

const OPS = [
  ["exact", "="],
  ["not", "≠"],
  ["lt", "<"],
  ["gt", ">"],
  ["lte", "≤"],
  ["gte", "≥"],
  ["contains", "contains"],
  ["isnull", "is null"],
  ["notnull", "is not null"],
];
const UNARY = new Set(["isnull", "notnull"]);
const NUMERIC = new Set(["int", "decimal", "float"]);

const CSS = `
.p2p2p-x{display:grid;grid-template-columns:minmax(0,1fr);gap:12px;font-size:14px;color:#1f2328}
@media (min-width:900px){.p2p2p-x{grid-template-columns:200px minmax(0,1fr)}}
.p2p2p-x-nav{display:flex;flex-wrap:wrap;gap:4px;align-content:flex-start}
@media (min-width:900px){.p2p2p-x-nav{flex-direction:column;flex-wrap:nowrap;position:sticky;top:8px;align-self:start}}
.p2p2p-x-nav button{all:unset;cursor:pointer;padding:6px 10px;border-radius:6px;border:1px solid #d0d7de;background:#f6f8fa;overflow-wrap:anywhere}
.p2p2p-x-nav button[aria-current=true]{background:#0969da;border-color:#0969da;color:#fff}
.p2p2p-x-nav small{display:block;opacity:.75;font-size:12px}
.p2p2p-x-main{min-width:0;display:flex;flex-direction:column;gap:8px}
.p2p2p-x-title{font-size:1.15em;font-weight:600}
.p2p2p-x-title span{font-weight:400;color:#59636e}
.p2p2p-x-bar{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.p2p2p-x-bar select,.p2p2p-x-bar input{font:inherit;padding:4px 6px;border:1px solid #d0d7de;border-radius:6px;max-width:100%;min-width:0}
.p2p2p-x-bar input{flex:1 1 8em}
.p2p2p-x button.p2p2p-x-btn{font:inherit;cursor:pointer;padding:4px 10px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;color:inherit}
.p2p2p-x button.p2p2p-x-btn:disabled{opacity:.45;cursor:default}
.p2p2p-x-chip{display:inline-flex;gap:6px;align-items:center;padding:2px 4px 2px 10px;border-radius:12px;background:#ddf4ff;border:1px solid #54aeff}
.p2p2p-x-chip button{all:unset;cursor:pointer;padding:0 6px;font-weight:700}
.p2p2p-x-facets{display:flex;flex-wrap:wrap;gap:8px;margin-top:6px}
.p2p2p-x-folder summary{cursor:pointer;color:#59636e;font-size:13px}
.p2p2p-x-facet{border:1px solid #d0d7de;border-radius:6px;padding:6px 8px;min-width:10em;flex:1 1 12em;max-width:22em}
.p2p2p-x-facet b{display:block;margin-bottom:2px}
.p2p2p-x-facet button{all:unset;cursor:pointer;display:flex;justify-content:space-between;gap:8px;width:100%;padding:1px 0}
.p2p2p-x-facet button:hover span:first-child{text-decoration:underline}
.p2p2p-x-facet button[aria-pressed=true]{font-weight:700}
.p2p2p-x-facet span:first-child{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.p2p2p-x-facet span:last-child{color:#59636e;font-variant-numeric:tabular-nums}
.p2p2p-x-scroll{overflow:auto;max-height:70vh;border:1px solid #d0d7de;border-radius:6px}
.p2p2p-x table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
.p2p2p-x th{position:sticky;top:0;background:#f6f8fa;z-index:1;text-align:left;border-bottom:1px solid #d0d7de;padding:0}
.p2p2p-x th button{all:unset;cursor:pointer;display:block;padding:6px 8px;white-space:nowrap;width:100%;box-sizing:border-box}
.p2p2p-x th.num button{text-align:right}
.p2p2p-x td{padding:4px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap;max-width:28em;overflow:hidden;text-overflow:ellipsis}
.p2p2p-x td.num{text-align:right}
.p2p2p-x td.null{color:#8c959f;font-style:italic}
.p2p2p-x-error{color:#b42318}
.p2p2p-x .p2p2p-x-note{width:1.5em;padding:0 2px;text-align:center}
.p2p2p-x .p2p2p-x-note button{all:unset;cursor:pointer;color:#59636e;padding:2px 4px}
.p2p2p-x-muted{color:#59636e;font-size:12px}
`;

function make(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Numbers arrive as exact text ("1870125", "1002.71", "123456789012345678901234"):
// grouped here for the viewer's locale without ever going through a float.
const parts = new Intl.NumberFormat().formatToParts(12345.5);
const DECIMAL = (parts.find((p) => p.type === "decimal") || { value: "." }).value;

// Where the locale puts a currency's symbol or the percent sign, and what stands
// between it and the number ("€1,870,125.50", "1.870.125,50 €", "12,5 %").
const AFFIXES = {};
function affix(format) {
  if (!(format in AFFIXES)) {
    let found = { sign: format === "percent" ? "%" : format.slice(9), before: false, gap: " " };
    try {
      const options = format === "percent" ? { style: "percent" } : { style: "currency", currency: format.slice(9) };
      const parts = new Intl.NumberFormat(undefined, options).formatToParts(1);
      const at = parts.findIndex((p) => p.type === "currency" || p.type === "percentSign");
      const number = parts.findIndex((p) => p.type === "integer");
      const between = parts.slice(Math.min(at, number) + 1, Math.max(at, number));
      found = { sign: parts[at].value, before: at < number, gap: between.filter((p) => p.type === "literal").map((p) => p.value).join("") };
    } catch (_e) {
      // an unknown currency code: the code itself, after the number
    }
    AFFIXES[format] = found;
  }
  return AFFIXES[format];
}

function grouped(text, kind, name, format) {
  if (text === null) return "NULL";
  if (!NUMERIC.has(kind) || (!format && /^(year|.*_?id|id|code|zip|postcode)$/i.test(name))) return text;
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) return text; // 1e+20, nan, inf: as they are
  let whole;
  try {
    whole = BigInt(match[2]).toLocaleString();
  } catch (_e) {
    whole = match[2];
  }
  const number = whole + (match[3] !== undefined ? DECIMAL + match[3] : "");
  if (!format) return match[1] + number;
  const { sign, before, gap } = affix(format);
  return match[1] + (before ? sign + gap + number : number + gap + sign);
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

// Whether the address names a view (a bookmark, a sent link), not only the token.
export function fromAddress(search) {
  const params = new URLSearchParams(search);
  for (const key of params.keys()) if (key !== "t") return true;
  return false;
}

export default {
  render({ model, el }) {
    el.classList.add("p2p2p-explorer");
    const root = make("div", { class: "p2p2p-x" });
    el.append(make("style", { text: CSS }), root);
    // The address is rewritten only once the viewer has done something (or arrived with
    // a view in it): a plain visit keeps the address it came with.
    let touched = fromAddress(location.search);
    const send = (message) => {
      touched = true;
      model.send(message);
    };
    const view = () => model.get("view") || {};
    const setView = (changes) => send({ do: "view", view: { ...view(), ...changes } });

    function nav() {
      const current = view().table;
      const box = make("nav", { class: "p2p2p-x-nav", "aria-label": "tables" });
      for (const table of model.get("tables") || []) {
        const rows = table.rows === null || table.rows === undefined ? "" : plural(table.rows, "row");
        box.append(
          make(
            "button",
            {
              class: "p2p2p-table-name",
              "aria-current": String(table.name === current),
              onclick: () => send({ do: "view", view: { table: table.name } }),
            },
            make("span", { text: table.label || table.name }),
            make("small", { text: rows }),
          ),
        );
      }
      return box;
    }

    function filterBar(columns) {
      const v = view();
      const bar = make("div", { class: "p2p2p-x-bar p2p2p-x-filters" });
      const labels = Object.fromEntries(columns.map((c) => [c.name, c.label || c.name]));
      (v.filters || []).forEach((f, i) => {
        const name = labels[f.column] || f.column;
        const words = UNARY.has(f.op)
          ? `${name} ${OPS.find((o) => o[0] === f.op)[1]}`
          : `${name} ${OPS.find((o) => o[0] === f.op)[1]} ${f.value}`;
        bar.append(
          make(
            "span",
            { class: "p2p2p-x-chip" },
            make("span", { text: words }),
            make("button", {
              text: "×",
              title: "remove this filter",
              "aria-label": `remove filter ${words}`,
              onclick: () => setView({ filters: v.filters.filter((_, j) => j !== i), page: 0 }),
            }),
          ),
        );
      });
      const column = make("select", { "aria-label": "filter column" });
      for (const c of columns) column.append(make("option", { value: c.name, text: c.label || c.name }));
      const op = make("select", { "aria-label": "filter operator" });
      for (const [key, label] of OPS) op.append(make("option", { value: key, text: label }));
      const value = make("input", { type: "text", placeholder: "value", "aria-label": "filter value" });
      op.addEventListener("change", () => {
        value.disabled = UNARY.has(op.value);
      });
      const add = () => {
        const filter = { column: column.value, op: op.value, value: UNARY.has(op.value) ? "" : value.value };
        setView({ filters: [...(v.filters || []), filter], page: 0 });
      };
      value.addEventListener("keydown", (e) => {
        if (e.key === "Enter") add();
      });
      bar.append(column, op, value, make("button", { class: "p2p2p-x-btn", text: "Add filter", onclick: add }));
      return bar;
    }

    // On a phone the facets fold away under one line (the table comes first); on a wider
    // screen they are open. A viewer's own opening or closing is kept across redraws.
    let facetsOpen = window.matchMedia("(min-width: 900px)").matches;
    function facets() {
      const box = make("div", { class: "p2p2p-x-facets" });
      const folder = make("details", { class: "p2p2p-x-folder" }, make("summary", { text: `Facets (${(model.get("facets") || []).length})` }), box);
      folder.open = facetsOpen;
      folder.addEventListener("toggle", () => {
        facetsOpen = folder.open;
      });
      const v = view();
      for (const facet of model.get("facets") || []) {
        const card = make("div", { class: "p2p2p-x-facet" }, make("b", { text: facet.label || facet.column }));
        for (const item of facet.values) {
          const active = (v.filters || []).some(
            (f) => f.column === facet.column && f.op === (item.value === null ? "isnull" : "exact") && (item.value === null || f.value === item.value),
          );
          const toggle = () => {
            const others = (v.filters || []).filter((f) => f.column !== facet.column);
            const next = active ? others : [...others, item.value === null ? { column: facet.column, op: "isnull" } : { column: facet.column, op: "exact", value: item.value }];
            setView({ filters: next, page: 0 });
          };
          card.append(
            make(
              "button",
              { "aria-pressed": String(active), onclick: toggle, title: item.value === null ? "NULL" : item.value },
              make("span", { text: item.value === null ? "NULL" : item.value }),
              make("span", { text: Number(item.n).toLocaleString() }),
            ),
          );
        }
        if (facet.more) card.append(make("span", { class: "p2p2p-x-muted", text: "… and more" }));
        box.append(card);
      }
      return (model.get("facets") || []).length ? folder : null;
    }

    function table(data) {
      const v = view();
      const columns = data.columns || [];
      const head = make("tr");
      const notes = model.get("annotate");
      if (notes) head.append(make("th", { class: "p2p2p-x-note", "aria-label": "notes" }));
      for (const c of columns) {
        const sorted = v.sort === c.name;
        const arrow = sorted ? (v.descending ? " ▼" : " ▲") : "";
        const next = !sorted ? { sort: c.name, descending: false } : !v.descending ? { sort: c.name, descending: true } : { sort: null, descending: false };
        head.append(
          make(
            "th",
            {
              class: NUMERIC.has(c.kind) ? "num" : "",
              "aria-sort": sorted ? (v.descending ? "descending" : "ascending") : "none",
            },
            make("button", { text: (c.label || c.name) + arrow, title: `sort by ${c.name}`, onclick: () => setView({ ...next, page: 0 }) }),
          ),
        );
      }
      const body = make("tbody");
      for (const row of data.rows || []) {
        const tr = make("tr");
        const index = body.children.length;
        if (notes) {
          tr.append(
            make(
              "td",
              { class: "p2p2p-x-note" },
              make("button", { text: "✎", title: "write a note about this row", "aria-label": "write a note about this row", onclick: () => send({ do: "annotate", row: index }) }),
            ),
          );
        }
        row.forEach((text, i) => {
          const c = columns[i];
          const classes = [NUMERIC.has(c.kind) ? "num" : "", text === null ? "null" : ""].join(" ").trim();
          tr.append(make("td", { class: classes, text: grouped(text, c.kind, c.name, c.format), title: text === null ? "NULL" : text }));
        });
        body.append(tr);
      }
      return make("div", { class: "p2p2p-x-scroll" }, make("table", { class: "p2p2p-x-table" }, make("thead", {}, head), body));
    }

    function pager(data) {
      const v = view();
      const shown = (data.rows || []).length;
      const first = shown ? v.page * v.page_size + 1 : 0;
      const last = v.page * v.page_size + shown;
      const total = data.total;
      const of = total === null || total === undefined ? "" : ` of ${total.toLocaleString()}`;
      const size = make("select", { "aria-label": "rows per page", onchange: (e) => setView({ page_size: Number(e.target.value), page: 0 }) });
      for (const n of model.get("page_sizes") || [25, 50, 100]) {
        const option = make("option", { value: String(n), text: `${n} per page` });
        if (n === v.page_size) option.selected = true;
        size.append(option);
      }
      return make(
        "div",
        { class: "p2p2p-x-bar p2p2p-x-pager" },
        make("button", { class: "p2p2p-x-btn", text: "◀ Previous", disabled: v.page > 0 ? null : "", onclick: () => setView({ page: v.page - 1 }) }),
        make("span", { class: "p2p2p-x-range", text: shown ? `rows ${first.toLocaleString()}–${last.toLocaleString()}${of}` : "no rows" }),
        make("button", { class: "p2p2p-x-btn", text: "Next ▶", disabled: data.more ? null : "", onclick: () => setView({ page: v.page + 1 }) }),
        size,
      );
    }

    function tools() {
      const bar = make("div", { class: "p2p2p-x-bar p2p2p-x-tools" });
      bar.append(make("button", { class: "p2p2p-x-btn", text: "Open as SQL", title: "this view as SQL in the SQL box", onclick: () => send({ do: "sql" }) }));
      const cap = model.get("export_rows");
      for (const format of model.get("exports") || []) {
        bar.append(
          make("button", {
            class: "p2p2p-x-btn p2p2p-x-export",
            text: `${format.toUpperCase()}`,
            title: `download this view as ${format} (up to ${Number(cap).toLocaleString()} rows)`,
            onclick: () => send({ do: "export", format }),
          }),
        );
      }
      if ((model.get("exports") || []).length) {
        bar.append(make("span", { class: "p2p2p-x-muted", text: `export up to ${Number(cap).toLocaleString()} rows` }));
      }
      return bar;
    }

    function draw() {
      const data = model.get("data") || {};
      const v = view();
      const info = (model.get("tables") || []).find((t) => t.name === v.table) || {};
      const total = data.total;
      const count = total === null || total === undefined ? "" : info.rows !== undefined && info.rows !== null && total !== info.rows ? ` · ${plural(total, "row")} of ${Number(info.rows).toLocaleString()}` : ` · ${plural(total, "row")}`;
      const main = make(
        "section",
        { class: "p2p2p-x-main", "aria-busy": String(model.get("busy")) },
        make("div", { class: "p2p2p-x-title" }, make("span", { text: info.label || v.table || "" }), make("span", { text: count })),
        model.get("error") ? make("div", { class: "p2p2p-x-error", role: "alert", text: model.get("error") }) : null,
        model.get("notice") ? make("div", { class: "p2p2p-x-muted", role: "status", text: model.get("notice") }) : null,
        filterBar(data.columns || []),
        facets(),
        table(data),
        pager(data),
        tools(),
      );
      root.replaceChildren(nav(), main);
    }

    // The address follows the view (and the SQL box), without a new history entry per click.
    function remember() {
      const query = view().query;
      if (query === undefined || !touched) return;
      const sql = model.get("sql");
      const search = query + (sql ? `&_sql=${encodeURIComponent(sql)}` : "");
      const target = `${location.pathname}?${search}${location.hash}`;
      if (target !== location.pathname + location.search + location.hash) history.replaceState(history.state, "", target);
    }

    // Files arrive in pieces (the kernel's messages stay small): joined, then saved.
    const files = {};
    model.on("msg:custom", (msg, buffers) => {
      if (msg.do !== "file") return;
      const file = (files[msg.id] = files[msg.id] || []);
      file.push(...(buffers || []));
      if (msg.part + 1 < msg.parts) return;
      delete files[msg.id];
      const url = URL.createObjectURL(new Blob(file, { type: msg.mime }));
      const link = make("a", { href: url, download: msg.name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });

    model.on("change:data change:facets change:error change:notice change:busy change:tables change:exports change:annotate", draw);
    model.on("change:view", () => {
      draw();
      remember();
    });
    model.on("change:sql", remember);
    draw();
    // A page that drew a preview of this view (dashboards/preview.js) hands over to it now.
    if (!model.preview) document.dispatchEvent(new CustomEvent("p2p2p-explorer-live"));
    if (fromAddress(location.search)) send({ do: "address", query: location.search.slice(1) });
  },
};
