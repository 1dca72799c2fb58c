// ctxsynth view: the page of one run. Offline: data come from script files next to this one, each
// calling CTXV.put/index/run/evaluation. Every text from the data goes into the DOM as textContent
// (never as markup), so a context that contains <script> is shown, not run.
"use strict";
const CTXV = (() => {
  const files = document.body.dataset.files;
  const state = { index: [], run: null, evaluation: null, chunks: {}, waits: {}, rows: [], page: 0,
                  selected: null, evalPage: 0 };
  const PAGE = 100;

  // ---- data loading: a <script> element per file, works from file:// and when served ----
  function load(path) {
    if (state.waits[path]) return state.waits[path];
    state.waits[path] = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = `${files}/data/${path}`;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error(`cannot load ${path}`));
      document.head.appendChild(s);
    });
    return state.waits[path];
  }
  async function record(kind, where) {
    if (!where) return null;
    const [n, pos] = where;
    const key = `${kind}-${n}`;
    if (!state.chunks[key]) await load(`${key}.js`);
    return state.chunks[key][pos];
  }

  // ---- DOM helpers (text only) ----
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const fmt = (x) => (x === null || x === undefined ? "–" : typeof x === "number" ? x.toLocaleString("en") : String(x));
  function table(header, rows, attrs) {
    return el("table", attrs, el("tr", {}, ...header.map((h) => el("th", { text: h }))),
      ...rows.map((r) => el("tr", {}, ...r.map((c) => (c instanceof Node ? el("td", {}, c)
        : el("td", { class: typeof c === "number" ? "num" : "", text: fmt(c) }))))));
  }
  function flat(obj, prefix, out) {
    out = out || [];
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) { out.push([prefix, Array.isArray(obj) ? JSON.stringify(obj) : obj]); return out; }
    const keys = Object.keys(obj);
    if (!keys.length && prefix) out.push([prefix, "{}"]);
    for (const k of keys) flat(obj[k], prefix ? `${prefix}.${k}` : k, out);
    return out;
  }
  const kv = (obj) => table(["key", "value"], flat(obj, "", []), { class: "kv" });

  // ---- buckets shared by the histograms and the filters ----
  function lengthEdges() {
    const ns = state.index.map((r) => r.n).filter((n) => n !== undefined);
    if (!ns.length) return [];
    const max = Math.max(...ns), step = Math.max(1, Math.ceil(max / 10 / 64) * 64);
    return Array.from({ length: Math.ceil((max + 1) / step) }, (_, i) => [i * step, (i + 1) * step]);
  }
  const depthEdges = () => Array.from({ length: 10 }, (_, i) => [i / 10, (i + 1) / 10]);
  const inBucket = (x, [lo, hi], last) => x !== undefined && x >= lo && (x < hi || (last && x <= hi));

  function histogram(title, edges, values, onPick) {
    const counts = edges.map((e, i) => values.filter((v) => inBucket(v, e, i === edges.length - 1)).length);
    const W = 360, H = 120, bw = W / Math.max(edges.length, 1), top = Math.max(1, ...counts);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H + 28); svg.setAttribute("class", "hist");
    counts.forEach((c, i) => {
      const h = (c / top) * H, r = document.createElementNS(ns, "rect");
      r.setAttribute("x", i * bw + 1); r.setAttribute("y", H - h); r.setAttribute("width", bw - 2); r.setAttribute("height", h);
      const t = document.createElementNS(ns, "title");
      t.textContent = `${edges[i][0]}–${edges[i][1]}: ${c}`;
      r.append(t); r.addEventListener("click", () => onPick(i)); svg.append(r);
      if (i % Math.ceil(edges.length / 5) === 0) {
        const lab = document.createElementNS(ns, "text");
        lab.setAttribute("x", i * bw); lab.setAttribute("y", H + 12); lab.textContent = String(edges[i][0]);
        svg.append(lab);
      }
    });
    return el("div", {}, el("h3", { text: `${title} (n = ${values.length}; click a bar to list them)` }), svg);
  }

  // ---- overview ----
  function renderOverview() {
    const run = state.run, box = document.getElementById("overview");
    box.replaceChildren();
    box.append(el("p", {}, `${fmt(state.index.length)} seeds · generator ${fmt(run.model)} (${fmt(run.backend)}) · `
      + `${run.target_tokens ? `target ${fmt(run.target_tokens)} tokens · ` : ""}distractors ${fmt(run.distractors)} · export shown: ${fmt(run.export_format)}`));
    const stages = ["seeds", "filter", "synthesize", "assemble", "export"].filter((s) => run.counts[s]);
    box.append(el("h2", { text: "Stages" }), table(["stage", "kept", "rejected"], stages.map((s) => [
      s, run.counts[s].kept || 0, run.counts[s].rejected || 0]), { id: "stage-counts" }));
    const verdicts = {};
    for (const r of state.index) verdicts[r.v] = (verdicts[r.v] || 0) + 1;
    box.append(el("h2", { text: "Where each seed ended" }), table(["verdict", "seeds"],
      Object.entries(verdicts).map(([v, n]) => [el("span", { class: "clickable", text: v, onclick: () => pick({ verdict: v }) }), n]),
      { id: "verdict-counts" }));
    const reasons = [];
    for (const s of stages) for (const [r, n] of Object.entries(run.counts[`${s}:reasons`] || {}))
      reasons.push([s, el("span", { class: "clickable", text: r, onclick: () => pick({ reason: r }) }), n]);
    if (reasons.length) box.append(el("h2", { text: "Rejection reasons" }), table(["stage", "reason", "records"], reasons, { id: "reason-counts" }));
    const grid = el("div", { class: "grid" });
    const le = lengthEdges();
    if (le.length) grid.append(histogram("Sample tokens", le, state.index.map((r) => r.n).filter((x) => x !== undefined),
      (i) => pick({ length: String(i) })));
    const depths = state.index.map((r) => r.d).filter((x) => x !== undefined);
    if (depths.length) grid.append(histogram("Gold depth (0 = start of the prompt)", depthEdges(), depths, (i) => pick({ depth: String(i) })));
    box.append(grid);
    const s = run.summary;
    if (s && s.model_comparison) box.append(el("h2", { text: "Trained vs base" }),
      typeof s.model_comparison === "string" ? el("p", { text: s.model_comparison }) : kv(s.model_comparison));
    if (run.train) box.append(el("h2", { text: "Training" }), kv(run.train));
  }

  // ---- sample list: filters, one page at a time ----
  const F = () => ({ q: document.getElementById("search").value.trim().toLowerCase(),
    verdict: val("f-verdict"), reason: val("f-reason"), task: val("f-task"), length: val("f-length"), depth: val("f-depth") });
  const val = (id) => document.getElementById(id).value;
  function options(id, label, values) {
    const s = document.getElementById(id);
    s.replaceChildren(el("option", { value: "", text: `${label}: all` }), ...values.map(([v, t]) => el("option", { value: v, text: t })));
  }
  function setupFilters() {
    const uniq = (f) => [...new Set(state.index.map(f).filter((x) => x !== undefined && x !== null))].sort();
    options("f-verdict", "verdict", uniq((r) => r.v).map((v) => [v, v]));
    options("f-reason", "reason", uniq((r) => r.r).map((v) => [v, v]));
    options("f-task", "task", uniq((r) => r.t).map((v) => [v, v]));
    options("f-length", "tokens", lengthEdges().map((e, i) => [String(i), `${e[0]}–${e[1]} tokens`]));
    options("f-depth", "depth", depthEdges().map((e, i) => [String(i), `depth ${e[0].toFixed(1)}–${e[1].toFixed(1)}`]));
    for (const id of ["f-verdict", "f-reason", "f-task", "f-length", "f-depth"]) document.getElementById(id).addEventListener("change", applyFilters);
    let timer = null;
    document.getElementById("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 150); });
  }
  function applyFilters() {
    const f = F(), le = lengthEdges(), de = depthEdges();
    state.rows = state.index.filter((r) => (!f.verdict || r.v === f.verdict) && (!f.reason || r.r === f.reason)
      && (!f.task || r.t === f.task)
      && (!f.length || inBucket(r.n, le[+f.length], +f.length === le.length - 1))
      && (!f.depth || inBucket(r.d, de[+f.depth], +f.depth === de.length - 1))
      && (!f.q || r.id.toLowerCase().includes(f.q) || (r.q || "").toLowerCase().includes(f.q)));
    state.page = 0;
    renderList();
  }
  function pick(filters) {
    for (const [k, v] of Object.entries({ verdict: "", reason: "", task: "", length: "", depth: "", ...filters }))
      document.getElementById(`f-${k}`).value = v;
    document.getElementById("search").value = "";
    applyFilters();
    showTab("samples");
  }
  function renderList() {
    const list = document.getElementById("list"), pages = Math.max(1, Math.ceil(state.rows.length / PAGE));
    const rows = state.rows.slice(state.page * PAGE, (state.page + 1) * PAGE);
    document.getElementById("count").textContent = `${fmt(state.rows.length)} of ${fmt(state.index.length)} seeds`;
    list.replaceChildren(...rows.map((r) => {
      const li = el("li", { "data-id": r.id, onclick: () => select(r) },
        el("div", {}, el("span", { class: `badge ${r.v}`, text: r.r || r.v }), " ", r.q || r.id),
        el("div", { class: "meta", text: `${r.id} · ${fmt(r.t)}${r.n !== undefined ? ` · ${fmt(r.n)} tokens` : ""}`
          + `${r.d !== undefined ? ` · depth ${r.d.toFixed(2)}` : ""}${r.stage ? ` · ${r.stage}` : ""}` }));
      if (state.selected === r.id) li.classList.add("selected");
      return li;
    }));
    const pager = document.getElementById("pager");
    pager.replaceChildren(
      el("button", { text: "‹ prev", id: "prev", onclick: () => { if (state.page > 0) { state.page--; renderList(); } } }),
      el("span", { id: "page", text: `page ${fmt(state.page + 1)} of ${fmt(pages)}` }),
      el("button", { text: "next ›", id: "next", onclick: () => { if (state.page < pages - 1) { state.page++; renderList(); } } }));
  }

  // ---- one sample ----
  async function select(row) {
    state.selected = row.id;
    for (const li of document.querySelectorAll("#list li")) li.classList.toggle("selected", li.dataset.id === row.id);
    const c = row.c;
    const [seed, filt, synth, sample, exp] = await Promise.all(
      ["seeds", "filter", "synth", "sample", "export"].map((k) => record(k, c[k])));
    if (state.selected !== row.id) return;  // another sample was picked meanwhile
    const d = document.getElementById("detail");
    d.replaceChildren(el("h2", {}, el("span", { class: `badge ${row.v}`, text: row.v }), " ", row.id,
      row.r ? ` · ${row.r} at ${row.stage}` : ""));
    const seedRec = seed || {};
    d.append(el("h3", { text: "Seed" }), el("p", {}, el("b", { text: "Instruction: " }), seedRec.instruction || row.q || ""),
      el("p", {}, el("b", { text: "Answer: " }), (seedRec.answers || (sample && sample.answers) || []).join(" | ")));
    if (seedRec.reason) d.append(el("p", { class: "rejected" }, el("b", { text: "Rejected at seeds: " }), `${seedRec.reason}: ${seedRec.detail || ""}`));
    if (seedRec.context) d.append(el("details", {}, el("summary", { text: `The seed's own context (${fmt(seedRec.context_chars)} characters)` }),
      el("pre", { text: seedRec.context })));
    if (filt) {
      d.append(el("h3", { text: "Filter scores" }));
      if (filt.reason) d.append(el("p", {}, el("b", { text: "Rejected: " }), `${filt.reason}: ${filt.detail || ""}`));
      d.append(kv(filt.scores));
    }
    if (synth) renderSynth(d, synth);
    if (sample && sample.user) renderSample(d, sample);
    else if (sample && sample.reason) d.append(el("h3", { text: "Assembly" }), el("p", {}, el("b", { text: "Rejected: " }), `${sample.reason}: ${sample.detail || ""}`));
    if (exp) renderExport(d, exp);
  }
  function renderSynth(d, s) {
    d.append(el("h3", { text: s.backend ? `Synthesis (${fmt(s.model)} via ${s.backend}, target ${fmt(s.target_words)} words)`
      : `Synthesis (task ${fmt(s.task)}: no model)` }));
    if (s.reason) d.append(el("p", {}, el("b", { text: "Rejected: " }), `${s.reason}: ${s.detail || ""}`));
    for (const a of s.attempts || []) {
      const ok = !a.reason && !a.error;
      d.append(el("div", { class: `attempt ${ok ? "ok" : "failed"}` },
        el("div", {}, el("b", { text: `attempt ${fmt(a.attempt)}: ` }), el("span", { class: `badge ${ok ? "passed" : "rejected"}`, text: a.reason || a.error || "passed" }),
          ` finish ${fmt(a.finish_reason)}`),
        el("pre", { class: "attempt-text", text: a.text || "" }),
        el("details", {}, el("summary", { text: "verdicts" }), kv(a.verdicts || {}))));
    }
  }
  function renderSample(d, s) {
    const t = s.tokens || {}, budget = t.budget || t.target;
    d.append(el("h3", { text: "Assembled sample" }), el("p", { id: "token-line" },
      `${fmt(t.total)} tokens${budget ? ` of a ${fmt(budget)} budget` : ""} (prompt ${fmt(t.prompt)}, answer ${fmt(t.answer)}, `
      + `template ${fmt(t.template_overhead)}) · ${fmt(s.n_documents)} documents · gold depth ${fmt(s.gold_depth)} · `
      + `distractors ${fmt(s.distractor_strategy)} · template ${fmt(s.template)} · tokenizer ${fmt(s.tokenizer)}`));
    const total = Math.max(budget || 0, t.total || 0, 1), bar = el("div", { class: "tokbar" });
    const golds = new Set(s.gold_indices || []);
    (t.per_document || []).forEach((n, i) => bar.append(el("div", { class: golds.has(i) ? "gold" : "dis",
      style: `width:${(100 * n) / total}%`, title: `document ${i + 1}: ${n} tokens${golds.has(i) ? " (gold)" : ""}` })));
    if (t.template_overhead) bar.append(el("div", { class: "tpl", style: `width:${(100 * t.template_overhead) / total}%`, title: "template" }));
    if (budget && t.total < budget) bar.append(el("div", { class: "free", style: `width:${(100 * (budget - t.total)) / total}%`, title: "unused budget" }));
    d.append(bar);
    const box = el("div", { class: "context", id: "context" });
    for (const [start, end, kind, label] of s.segments) {
      // the label is drawn by CSS from data-label, so the box's text is exactly the user message
      const span = el("span", { class: `seg-${kind}`, title: label, "data-label": label });
      const sup = s.support;
      if (kind === "gold" && sup && sup[0] >= start && sup[1] <= end) {
        span.append(s.user.slice(start, sup[0]), el("mark", { class: "support", title: "the answer's support span", text: s.user.slice(sup[0], sup[1]) }),
          s.user.slice(sup[1], end));
      } else span.append(s.user.slice(start, end));
      box.append(span);
    }
    d.append(box);
    if (!s.support) d.append(el("p", { class: "hint", text: "No reference answer occurs verbatim in the gold document (support was judged, not matched)." }));
    d.append(el("details", {}, el("summary", { text: "assembly record" }), kv(s.meta)));
  }
  function renderExport(d, e) {
    d.append(el("h3", { text: `Export row (${e.format}): what the trainer sees` }));
    if (e.fields) { d.append(kv(e.fields)); return; }
    const part = (cls, label, msgs) => el("div", { class: cls }, el("div", { class: "part-label", text: label }),
      ...msgs.map((m) => el("pre", { text: m.same_as_user ? `[${m.role}] (the assembled user message above)` : `[${m.role}] ${m.text}` })));
    d.append(el("div", { id: "export-row" }, part("masked", "masked: no loss on these tokens", e.masked),
      part("trained", "trained: the loss is on these tokens", e.trained)));
  }

  // ---- eval ----
  function comparisonTable(c) {
    const cell = (b) => (b && typeof b.mean === "number"
      ? `${(100 * b.mean).toFixed(1)} [${(100 * b.low).toFixed(1)}, ${(100 * b.high).toFixed(1)}]` : "–");
    const blocks = [["all", c.overall || {}], ...Object.entries(c.tasks || {})];
    return table(["items", "n", "base", "trained", "difference"],
      blocks.map(([name, b]) => [name, b.n, cell(b.base), cell(b.trained), cell(b.difference)]), { id: "comparison" });
  }
  function renderEval() {
    const ev = state.evaluation, box = document.getElementById("eval");
    if (!ev || !ev.items.length) return;
    document.getElementById("tab-eval").hidden = false;
    box.replaceChildren();
    if (ev.comparison) box.append(el("h2", { text: "Trained vs base (x100, 95% intervals)" }), comparisonTable(ev.comparison));
    const pages = Math.ceil(ev.items.length / PAGE), items = ev.items.slice(state.evalPage * PAGE, (state.evalPage + 1) * PAGE);
    const header = ["id", "task", "references", ...ev.models.flatMap((m) => [`${m} prediction`, `${m} score`])];
    box.append(el("h2", { text: `Predictions (${ev.items.length} items; ${ev.models.join(" vs ")})` }),
      table(header, items.map((it) => [it.id, it.task, (it.references || []).join(" | "),
        ...ev.models.flatMap((m) => [it[m] ? it[m].prediction : "–", it[m] ? it[m].score : "–"])]), { id: "eval-table" }));
    if (pages > 1) box.append(el("div", {}, el("button", { text: "‹ prev", onclick: () => { state.evalPage = Math.max(0, state.evalPage - 1); renderEval(); } }),
      ` page ${state.evalPage + 1} of ${pages} `, el("button", { text: "next ›", onclick: () => { state.evalPage = Math.min(pages - 1, state.evalPage + 1); renderEval(); } })));
  }

  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== name;
  }

  async function start() {
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
    await Promise.all(["run.js", "index.js", "eval.js"].map(load));
    const links = document.getElementById("links");
    for (const [name, href] of Object.entries(state.run.links || {})) links.append(el("a", { href, text: name }));
    renderOverview();
    setupFilters();
    applyFilters();
    renderEval();
    document.body.dataset.ready = "1";
  }

  return {
    put(kind, n, records) { state.chunks[`${kind}-${n}`] = records; },
    index(rows) { state.index = rows; },
    run(run) { state.run = run; },
    evaluation(ev) { state.evaluation = ev; },
    start, state,
  };
})();
CTXV.start().catch((e) => { document.body.dataset.ready = "error"; document.getElementById("overview").textContent = `error: ${e.message}`; });
