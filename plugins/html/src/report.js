// atex HTML report: renders the JSON chunks that follow this script.
// Vanilla JS, no network. Each data chunk is followed by atexChunk(), the
// end of the data by atexDone(), so the first screen is drawn while the
// browser still reads the rest of the file.
(function () {
  "use strict";
  var T0 = performance.now();
  var D = JSON.parse(document.getElementById("atex-data").textContent);
  var TESTS = [];
  var ROW = 30;            // px of a row (one line)
  var DET_GUESS = 320;     // px of an opened test before it is measured
  var OVERSCAN = 12;       // rows drawn above and below the screen
  var FAIL_LIST = 100;     // entries of the compact failure list
  var NOT_RUN_LIST = 300;  // names in the not-run list
  // atex_plugin_api::Status::severity; warn and worse are failures.
  var SEV = { infra: 7, error: 6, fail: 5, other: 4, warn: 3, skip: 2, info: 1, pass: 0 };
  var KNOWN = { pass: 1, fail: 1, error: 1, infra: 1, skip: 1, warn: 1, info: 1 };
  var ORDER = ["fail", "error", "infra", "warn", "pass", "skip", "info"];
  var NOT_RUN = "not run";
  var ERR_LINE = /\b(error|fail(ed|ure)?|fatal|panic(ked)?|assert(ion)?|denied|traceback|exception|segfault|not ok)\b/i;

  function sev(s) { return s in SEV ? SEV[s] : SEV.other; }
  function failure(s) { return sev(s) >= SEV.warn; }
  function cls(s) { return s === NOT_RUN ? "s-skip" : "s-" + (KNOWN[s] ? s : "other"); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "class") e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function iso(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }
  function dur(ms) {
    if (ms < 1000) return ms + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    var m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h) return h + " h " + (m % 60) + " min";
    return m + " min " + Math.round(s % 60) + " s";
  }
  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1048576).toFixed(1) + " MiB";
  }
  function keyOf(t) { return t.p + (t.n.charAt(0) === "/" ? "" : "/") + t.n; }
  function hashOf(key) { return encodeURIComponent(key).replace(/%2F/g, "/").replace(/%40/g, "@"); }
  function encPath(p) { return p.split("/").map(encodeURIComponent).join("/"); }
  function fileDir(t, a) {
    if (a.fp !== undefined) return a.fp;
    return "files/" + t.p + "/" + t.n.replace(/^\/+/, "") + "/";
  }
  function fileHref(t, a, f) { return D.base + encPath(fileDir(t, a) + f); }
  function firstLine(s) { return s ? s.split("\n")[0] : ""; }
  // The first line of a log that looks like an error, else its last line.
  function errorLine(log) {
    if (!log) return "";
    var lines = log.split("\n"), last = "";
    for (var i = 0; i < lines.length; i++) {
      if (ERR_LINE.test(lines[i])) return lines[i].trim();
      if (lines[i].trim()) last = lines[i].trim();
    }
    return last;
  }
  // Why a test ended, in one line: the reason, else the note, else (for a
  // failure) the log's first error line.
  function why(t) {
    if (t.w === undefined) {
      t.w = t.y || firstLine(t.o) || subWhy(t) || (failure(t.s) ? errorLine(t.l) : "") || "";
    }
    return t.w;
  }
  function subWhy(t) {
    if (!t.uw) return "";
    for (var i = 0; i < t.u.length; i++) {
      var u = t.u[i];
      if (u.s === t.uw) return "sub-result " + u.n + ": " + u.s + (u.o ? " (" + firstLine(u.o) + ")" : "");
    }
    return "";
  }
  var PLAT = {};
  D.platforms.forEach(function (p, i) { PLAT[p] = i; });
  var counts = {}, flakyCount = 0, byKey = new Map(), byRank = [];
  function prep(t) {
    t.i = TESTS.length;
    if (t.s === undefined) t.s = "pass";
    t.p = D.platforms[t.p];
    t.key = keyOf(t);
    t.st = t.nr ? NOT_RUN : t.s;
    t.flaky = !!(t.x && t.x.length && sev(t.s) <= SEV.info);
    if (t.flaky) flakyCount++;
    counts[t.st] = (counts[t.st] || 0) + 1;
    if (t.u) {
      var worst = null;
      for (var j = 0; j < t.u.length; j++) if (failure(t.u[j].s) && (!worst || sev(t.u[j].s) > sev(worst))) worst = t.u[j].s;
      t.uw = worst;
    }
    byKey.set(t.key, t);
    byRank[t.k] = t;
    TESTS.push(t);
  }

  // ---- state, kept in the URL (#!q=...&only=fail,error&sort=name) ---------
  var DEFAULT_DESC = { status: false, name: false, platform: false, system: false, dur: true };
  var state = { only: {}, flaky: false, q: "", sort: "status", desc: false, view: "list" };
  var opened = new Set();  // keys of the tests shown opened
  function stateHash() {
    var p = [];
    if (state.q) p.push("q=" + encodeURIComponent(state.q));
    var only = Object.keys(state.only);
    if (only.length) p.push("only=" + only.map(encodeURIComponent).join(","));
    if (state.flaky) p.push("flaky=1");
    if (state.sort !== "status") p.push("sort=" + state.sort);
    if (state.desc !== DEFAULT_DESC[state.sort]) p.push("dir=" + (state.desc ? "desc" : "asc"));
    if (state.view !== "list") p.push("view=" + state.view);
    return p.length ? "#!" + p.join("&") : "";
  }
  function readState(h) {
    state.only = {}; state.flaky = false; state.q = ""; state.sort = "status"; state.desc = false; state.view = "list";
    h.slice(2).split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = i < 0 ? kv : kv.slice(0, i), v = i < 0 ? "" : kv.slice(i + 1);
      try { v = decodeURIComponent(v.replace(/\+/g, " ")); } catch (e) { return; }
      if (k === "q") state.q = v.toLowerCase();
      else if (k === "only") v.split(",").forEach(function (s) { if (s) state.only[s] = true; });
      else if (k === "flaky") state.flaky = v === "1";
      else if (k === "sort" && v in DEFAULT_DESC) state.sort = v;
      else if (k === "view" && (v === "matrix" || v === "list")) state.view = v;
    });
    state.desc = DEFAULT_DESC[state.sort];
    var dir = /(^|&)dir=(asc|desc)/.exec(h.slice(2));
    if (dir) state.desc = dir[2] === "desc";
  }
  var writingHash = false;
  function saveState() {
    var h = stateHash();
    if (location.hash === h || (!h && !location.hash)) return;
    writingHash = true;
    history.replaceState(null, "", h || location.pathname + location.search);
    writingHash = false;
  }

  // ---- layout -------------------------------------------------------------
  var app = document.getElementById("app");
  var header = el("header");
  header.appendChild(el("h1", null, D.title));
  var meta = el("div", { class: "meta" });
  meta.appendChild(el("span", null, "run " + D.run.id));
  meta.appendChild(el("span", null, "started " + iso(D.run.start)));
  meta.appendChild(el("span", null, "took " + dur(D.run.dur)));
  meta.appendChild(el("span", null, D.total + " results" +
    (D.run.selected ? " of " + D.run.selected + " selected tests" : "")));
  if (D.platforms.length > 1) meta.appendChild(el("span", null, D.platforms.length + " platforms"));
  header.appendChild(meta);
  if (D.run.interrupted) header.appendChild(el("div", { class: "banner" }, "The run was interrupted: results may be missing."));

  var toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "Filters" });
  var allPill = el("button", { class: "pill", type: "button", "data-status": "", "aria-pressed": "true", title: "Show every status" });
  allPill.appendChild(el("span", null, "all")); allPill.appendChild(el("b", null, String(D.total)));
  toolbar.appendChild(allPill);
  var pills = [allPill];
  var statuses = Object.keys(D.counts).sort(function (a, b) {
    var ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
  });
  if (D.notRun) statuses.push(NOT_RUN);
  statuses.forEach(function (s) {
    var b = el("button", { class: "pill " + cls(s), type: "button", "data-status": s, "aria-pressed": "false",
      title: "Show only " + s + " (click more to add)" });
    b.appendChild(el("span", { class: "dot" })); b.appendChild(el("span", null, s));
    b.appendChild(el("b", null, String(s === NOT_RUN ? D.notRun : D.counts[s])));
    toolbar.appendChild(b); pills.push(b);
  });
  var flakyPill = el("button", { class: "pill s-warn", type: "button", "data-status": "flaky", "aria-pressed": "false",
    title: "Tests that passed after failing first", hidden: "" });
  flakyPill.appendChild(el("span", null, "flaky")); var flakyN = el("b", null, "0"); flakyPill.appendChild(flakyN);
  toolbar.appendChild(flakyPill);
  var search = el("input", { class: "search", type: "search", placeholder: "Search names, reasons, notes and logs…",
    "aria-label": "Search names, reasons, notes and logs", spellcheck: "false" });
  toolbar.appendChild(search);
  var tools = el("span", { class: "tools" });
  var expandAll = el("button", { class: "pill", type: "button", "data-act": "expand", title: "Open every test shown" }, "Expand all");
  var collapseAll = el("button", { class: "pill", type: "button", "data-act": "collapse", title: "Close every test" }, "Collapse all");
  tools.appendChild(expandAll); tools.appendChild(collapseAll);
  var viewBtn = null;
  if (D.platforms.length > 1) {
    viewBtn = el("button", { class: "pill", type: "button", "data-act": "view", "aria-pressed": "false",
      title: "Tests × platforms" }, "Matrix");
    tools.appendChild(viewBtn);
  }
  toolbar.appendChild(tools);
  var shown = el("span", { class: "shown", "aria-live": "polite" });
  toolbar.appendChild(shown);
  header.appendChild(toolbar);
  app.appendChild(header);

  var main = el("main");
  var summaries = el("div", { class: "summaries" });
  main.appendChild(summaries);

  // The list: a sticky head and a virtual body holding only what is on
  // screen, positioned inside a spacer as tall as the whole list.
  var cols = [["status", "Status", "c-status"], ["name", "Test", "c-name"]];
  if (D.cols.platform) cols.push(["platform", "Platform", "c-plat"]);
  if (D.cols.system) cols.push(["system", "System", "c-sys"]);
  cols.push(["dur", "Duration", "c-dur"], [null, "Why / note", "c-note"]);
  var grid = cols.map(function (c) {
    return { "c-status": "92px", "c-name": "minmax(0,3fr)", "c-plat": "minmax(0,1fr)", "c-sys": "minmax(0,1fr)",
      "c-dur": "90px", "c-note": "minmax(0,3fr)" }[c[2]];
  }).join(" ");
  var listBox = el("section", { class: "list" });
  var thead = el("div", { class: "thead row-grid", role: "row" });
  thead.style.gridTemplateColumns = grid;
  var ths = {};
  cols.forEach(function (c) {
    var th = el("div", { class: "th", role: "columnheader" });
    if (c[0]) { th.appendChild(el("button", { type: "button", "data-sort": c[0] }, c[1])); ths[c[0]] = th; }
    else th.textContent = c[1];
    thead.appendChild(th);
  });
  listBox.appendChild(thead);
  var spacer = el("div", { class: "spacer", role: "rowgroup" });
  var win = el("div", { class: "win" });
  spacer.appendChild(win);
  listBox.appendChild(spacer);
  var emptyMsg = el("div", { class: "empty", hidden: "" }, "No results match.");
  listBox.appendChild(emptyMsg);
  main.appendChild(listBox);

  var matrixBox = el("section", { class: "matrix", hidden: "" });
  main.appendChild(matrixBox);
  app.appendChild(main);

  // ---- filtering and sorting ------------------------------------------------
  var view = [];
  function anyOnly() { for (var k in state.only) return true; return false; }
  var qre = null, qfor = null;
  function matches(t, only, q) {
    if (only && !only[t.st]) return false;
    if (state.flaky && !t.flaky) return false;
    if (!q) return true;
    if (qfor !== q) { qfor = q; qre = new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); }
    return qre.test(t.n) || (t.o !== undefined && qre.test(t.o)) || (t.y !== undefined && qre.test(t.y)) ||
      (t.l !== undefined && qre.test(t.l));
  }
  var SORTS = {
    status: function (a, b) { return a.i - b.i; },
    name: function (a, b) { return a.k - b.k; },
    platform: function (a, b) { return (PLAT[a.p] - PLAT[b.p]) || (a.k - b.k); },
    system: function (a, b) { var x = a.r || "", y = b.r || ""; return x < y ? -1 : x > y ? 1 : a.k - b.k; },
    dur: function (a, b) { return (a.d - b.d) || (a.k - b.k); }
  };
  function compute() {
    var q = state.q, only = anyOnly() ? state.only : null, i, t;
    view = [];
    // The data comes worst first, and each test knows its rank by name:
    // those orders need no sorting.
    if (state.sort === "name" || state.sort === "platform") {
      var byPlat = state.sort === "platform" ? D.platforms.map(function () { return []; }) : null;
      for (i = 0; i < byRank.length; i++) {
        t = byRank[i];
        if (t && matches(t, only, q)) { if (byPlat) byPlat[PLAT[t.p]].push(t); else view.push(t); }
      }
      if (byPlat) view = Array.prototype.concat.apply([], byPlat);
    } else {
      for (i = 0; i < TESTS.length; i++) if (matches(TESTS[i], only, q)) view.push(TESTS[i]);
      if (state.sort !== "status") view.sort(SORTS[state.sort]);
    }
    if (state.desc) view.reverse();
    dirty = true;
  }

  // ---- the virtual list -------------------------------------------------------
  var heights = {};       // measured heights of opened tests' details
  var offsets = null;     // offsets[i]: top of view[i] in the spacer
  var dirty = true;
  function layout() {
    var n = view.length, off = new Float64Array(n + 1), y = 0, any = opened.size > 0;
    for (var i = 0; i < n; i++) {
      off[i] = y;
      y += ROW;
      if (!any) continue;
      var k = view[i].key;
      if (any && opened.has(k)) y += heights[k] || DET_GUESS;
    }
    off[n] = y;
    offsets = off;
    spacer.style.height = y + "px";
    dirty = false;
  }
  function firstAt(y) {
    var lo = 0, hi = view.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (offsets[mid + 1] <= y) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function listTop() { return spacer.getBoundingClientRect().top + window.scrollY; }

  function tag(text, klass, title) { return el("span", { class: "tag " + (klass || ""), title: title || "" }, text); }
  function row(t) {
    var r = el("div", { class: "row row-grid", role: "row", "data-key": t.key, tabindex: "0",
      "aria-expanded": opened.has(t.key) ? "true" : "false" });
    r.style.gridTemplateColumns = grid;
    var s = el("div", { class: "c" }); s.appendChild(el("span", { class: "badge " + cls(t.st) }, t.st)); r.appendChild(s);
    var name = el("div", { class: "c name", title: t.n });
    name.appendChild(el("span", { class: "tw" }, opened.has(t.key) ? "▾" : "▸"));
    name.appendChild(el("span", { class: "nm" }, t.n));
    if (t.flaky) name.appendChild(tag("flaky", "", "passed after " + t.x.length + " failed attempt(s)"));
    else if (t.x) name.appendChild(tag("attempt " + (t.a || 1)));
    if (t.uw) {
      var nf = t.u.filter(function (u) { return failure(u.s); }).length;
      name.appendChild(tag(nf + " sub " + t.uw, "subfail " + cls(t.uw), "a sub-result is " + t.uw));
    } else if (t.u) name.appendChild(tag(t.u.length + " sub", "s-info"));
    name.appendChild(el("a", { class: "anchor", href: "#" + hashOf(t.key), title: "Link to this test" }, "#"));
    r.appendChild(name);
    if (D.cols.platform) r.appendChild(el("div", { class: "c", title: t.p }, t.p));
    if (D.cols.system) r.appendChild(el("div", { class: "c", title: t.r || "" }, t.r || ""));
    r.appendChild(el("div", { class: "c dur" }, t.nr ? "" : dur(t.d)));
    var w = why(t);
    r.appendChild(el("div", { class: "c note" + (t.y ? " reason" : ""), title: t.o || w }, w));
    if (t.key === hlKey) r.classList.add("hl");
    if (opened.has(t.key)) r.classList.add("open");
    return r;
  }

  function draw() {
    if (state.view === "matrix") { drawMatrix(); return; }
    if (dirty) layout();
    var top = listTop(), y0 = window.scrollY - top, y1 = y0 + window.innerHeight;
    var first = Math.max(0, firstAt(Math.max(0, y0)) - OVERSCAN);
    var last = Math.min(view.length, firstAt(Math.max(0, y1)) + OVERSCAN + 1);
    var frag = document.createDocumentFragment(), dets = [];
    for (var i = first; i < last; i++) {
      var t = view[i];
      frag.appendChild(row(t));
      if (opened.has(t.key)) { var d = details(t); dets.push([t.key, d]); frag.appendChild(d); }
    }
    win.style.transform = "translateY(" + (view.length ? offsets[first] : 0) + "px)";
    win.textContent = "";
    win.appendChild(frag);
    emptyMsg.hidden = view.length > 0;
    // Measure what was guessed, and open logs at their end.
    var changed = false;
    dets.forEach(function (p) {
      var h = p[1].offsetHeight;
      if (heights[p[0]] !== h) { heights[p[0]] = h; changed = true; }
      var pres = p[1].querySelectorAll("pre.log");
      for (var j = 0; j < pres.length; j++) pres[j].scrollTop = pres[j].scrollHeight;
    });
    if (changed) {
      layout();
      win.style.transform = "translateY(" + (view.length ? offsets[first] : 0) + "px)";
    }
    drawn = last - first;
  }
  var drawn = 0;

  function status() {
    var total = loaded ? TESTS.length : D.total;
    shown.textContent = (loaded ? "" : "loading " + TESTS.length + " of " + D.total + " · ") +
      (view.length === total ? total + " shown" : view.length + " of " + total + " shown");
    pills.forEach(function (p) {
      var s = p.getAttribute("data-status");
      p.setAttribute("aria-pressed", String(s ? !!state.only[s] : !anyOnly() && !state.flaky));
    });
    flakyPill.setAttribute("aria-pressed", String(state.flaky));
    Object.keys(ths).forEach(function (k) {
      if (k === state.sort) ths[k].setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else ths[k].removeAttribute("aria-sort");
    });
    if (viewBtn) viewBtn.setAttribute("aria-pressed", String(state.view === "matrix"));
    listBox.hidden = state.view === "matrix";
    matrixBox.hidden = state.view !== "matrix";
  }

  function update() { hlKey = null; compute(); if (state.view === "matrix") matrixDirty = true; draw(); status(); saveState(); }

  var pendingFrame = 0;
  window.addEventListener("scroll", function () {
    if (pendingFrame) return;
    pendingFrame = requestAnimationFrame(function () { pendingFrame = 0; draw(); });
  }, { passive: true });
  window.addEventListener("resize", function () { draw(); });

  // ---- a test's details ---------------------------------------------------------
  function fileLinks(t, a) {
    var d = el("div", { class: "files" });
    (a.f || []).forEach(function (f) {
      d.appendChild(el("a", { href: fileHref(t, a, f), target: "_blank", rel: "noopener" }, f));
    });
    return d;
  }
  function logBlock(parent, t, a) {
    if (a.li === undefined) return;
    var f = a.f[a.li];
    var m = el("div", { class: "logmeta" });
    if (a.l !== undefined) {
      m.appendChild(document.createTextNode(a.lt ? "last " + bytes(a.l.length) + " of " + bytes(a.lb) + " · " : bytes(a.lb) + " · "));
    } else if (a.lx) {
      m.appendChild(document.createTextNode("log left out (report size budget) · "));
    } else if (a.le) {
      m.appendChild(document.createTextNode("could not read the log: " + a.le + " · "));
    }
    m.appendChild(el("a", { href: fileHref(t, a, f), target: "_blank", rel: "noopener" }, "full " + f));
    parent.appendChild(m);
    if (a.l !== undefined) parent.appendChild(el("pre", { class: "log" + (a.l === "" ? " nolog" : "") }, a.l === "" ? "(no output)" : a.l));
  }
  function extras(parent, a) {
    if (!a.e) return;
    var d = el("div", { class: "kv" });
    // The reason is shown on its own line above.
    var ks = Object.keys(a.e).filter(function (k) { return k !== "reason" && k !== "not_run"; });
    if (!ks.length) return;
    ks.forEach(function (k, i) {
      if (i) d.appendChild(document.createTextNode(" · "));
      d.appendChild(document.createTextNode(k + ": "));
      var v = a.e[k];
      d.appendChild(el("code", null, typeof v === "string" ? v : JSON.stringify(v)));
    });
    parent.appendChild(d);
  }
  function details(t) {
    var det = el("div", { class: "det", "data-key": t.key });
    var info = el("div", { class: "kv" });
    info.textContent = (t.nr ? "did not run" : "started " + iso(t.t) + " · took " + dur(t.d)) +
      (t.r ? " · on " + t.r : "") + " · platform " + t.p + (t.a ? " · attempt " + t.a : "");
    det.appendChild(info);
    var w = why(t);
    if (w) {
      var wd = el("div", { class: "why" });
      wd.appendChild(el("b", null, t.y ? "Reason: " : "Why: "));
      wd.appendChild(document.createTextNode(w));
      det.appendChild(wd);
    }
    extras(det, t);
    if (t.o && t.o !== w) det.appendChild(el("div", { class: "note-full" }, t.o));
    if (t.u) {
      det.appendChild(el("h4", null, "Sub-results (" + t.u.length + ")"));
      var st = el("table", { class: "sub" }), sb = el("tbody");
      t.u.slice().sort(function (a, b) { return (sev(b.s) - sev(a.s)) || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0); })
        .forEach(function (u) {
          var r = el("tr");
          var s = el("td"); s.appendChild(el("span", { class: "badge " + cls(u.s) }, u.s)); r.appendChild(s);
          r.appendChild(el("td", { class: "sn" }, u.n));
          r.appendChild(el("td", { class: "dur" }, dur(u.d)));
          r.appendChild(el("td", null, u.o || ""));
          var f = el("td"); f.appendChild(fileLinks(t, u)); r.appendChild(f);
          sb.appendChild(r);
        });
      st.appendChild(sb); det.appendChild(st);
    }
    if (t.li !== undefined) { det.appendChild(el("h4", null, "Output")); logBlock(det, t, t); }
    if (t.f && t.f.length > (t.li !== undefined ? 1 : 0)) { det.appendChild(el("h4", null, "Files")); det.appendChild(fileLinks(t, t)); }
    if (t.x) {
      det.appendChild(el("h4", null, "Earlier attempts (" + t.x.length + ")"));
      t.x.forEach(function (a) {
        var d = el("details", { class: "att" });
        var s = el("summary");
        s.appendChild(el("span", { class: "badge " + cls(a.s) }, a.s));
        s.appendChild(document.createTextNode(" attempt " + (a.a || 1) + " · " + dur(a.d) + (a.r ? " · on " + a.r : "") +
          (a.y || a.o ? " · " + (a.y || firstLine(a.o)) : "")));
        d.appendChild(s);
        d.appendChild(el("div", { class: "kv" }, "started " + iso(a.t)));
        if (a.o) d.appendChild(el("div", { class: "note-full" }, a.o));
        extras(d, a);
        logBlock(d, t, a);
        if (a.f && a.f.length) d.appendChild(fileLinks(t, a));
        d.addEventListener("toggle", function () { remeasure(t.key, det); });
        det.appendChild(d);
      });
    }
    return det;
  }
  function remeasure(key, det) {
    var h = det.offsetHeight;
    if (heights[key] !== h) { heights[key] = h; dirty = true; draw(); }
  }

  // ---- the compact failure list and the tests that did not run ---------------
  function link(t, text) {
    var a = el("a", { href: "#" + hashOf(t.key), class: "nm" }, text || t.n);
    return a;
  }
  function buildSummaries() {
    summaries.textContent = "";
    var fails = [], notRun = [];
    for (var i = 0; i < TESTS.length; i++) {
      var t = TESTS[i];
      if (t.nr) notRun.push(t);
      else if (failure(t.s)) fails.push(t);
    }
    if (fails.length) {
      var sec = el("section", { class: "fails" });
      sec.appendChild(el("h2", null, "Failures (" + fails.length + ")"));
      var ul = el("ul", { class: "compact" });
      fails.slice(0, FAIL_LIST).forEach(function (t) {
        var li = el("li", { "data-key": t.key });
        li.appendChild(el("span", { class: "badge " + cls(t.st) }, t.st));
        li.appendChild(link(t));
        if (D.cols.platform) li.appendChild(el("span", { class: "plat" }, t.p));
        if (t.uw) li.appendChild(tag("sub " + t.uw, "subfail " + cls(t.uw)));
        var w = why(t);
        if (w) li.appendChild(el("span", { class: "why" + (t.y ? " reason" : "") }, w));
        ul.appendChild(li);
      });
      sec.appendChild(ul);
      if (fails.length > FAIL_LIST) {
        var more = el("button", { class: "pill", type: "button", "data-act": "only-fails" },
          "… and " + (fails.length - FAIL_LIST) + " more: show only failures");
        sec.appendChild(more);
      }
      summaries.appendChild(sec);
    }
    if (notRun.length) {
      var ns = el("section", { class: "notrun" });
      ns.appendChild(el("h2", null, "Not run (" + notRun.length + ")"));
      var reasons = {};
      notRun.forEach(function (t) { reasons[t.y || "not run"] = 1; });
      var rs = Object.keys(reasons);
      if (rs.length === 1) ns.appendChild(el("div", { class: "kv" }, rs[0]));
      var nl = el("ul", { class: "names" });
      notRun.slice().sort(function (a, b) { return a.k - b.k; }).slice(0, NOT_RUN_LIST).forEach(function (t) {
        var li = el("li", { "data-key": t.key });
        li.appendChild(link(t));
        if (D.cols.platform) li.appendChild(el("span", { class: "plat" }, t.p));
        if (rs.length > 1 && t.y) li.appendChild(el("span", { class: "why" }, t.y));
        nl.appendChild(li);
      });
      ns.appendChild(nl);
      if (notRun.length > NOT_RUN_LIST) ns.appendChild(el("div", { class: "kv" }, "… and " + (notRun.length - NOT_RUN_LIST) + " more (filter by “not run”)"));
      summaries.appendChild(ns);
    }
  }

  // ---- tests × platforms -------------------------------------------------------
  var MROW = 28, matrixRows = null, matrixView = [], matrixDirty = true;
  var mhead = null, mspacer = null, mwin = null;
  function buildMatrix() {
    var byName = new Map(), rows = [];
    var last = null;
    for (var i = 0; i < byRank.length; i++) {
      var t = byRank[i];
      if (!t) continue;
      // By rank, a test's platforms are next to each other.
      var r = last && last.n === t.n ? last : byName.get(t.n);
      if (!r) { r = { n: t.n, c: new Array(D.platforms.length) }; byName.set(t.n, r); rows.push(r); }
      r.c[PLAT[t.p]] = t;
      last = r;
    }
    rows.forEach(function (r) {
      var seen = null; r.mixed = false;
      for (var i = 0; i < r.c.length; i++) {
        var s = r.c[i] ? r.c[i].st : "–";
        if (seen === null) seen = s; else if (s !== seen) r.mixed = true;
      }
    });
    matrixRows = rows;
    var mgrid = "minmax(0,3fr) " + D.platforms.map(function () { return "minmax(90px,1fr)"; }).join(" ");
    mhead = el("div", { class: "thead row-grid" }); mhead.style.gridTemplateColumns = mgrid;
    mhead.appendChild(el("div", { class: "th pad" }, "Test"));
    D.platforms.forEach(function (p) { mhead.appendChild(el("div", { class: "th pad", title: p }, p)); });
    mspacer = el("div", { class: "spacer" }); mwin = el("div", { class: "win" }); mspacer.appendChild(mwin);
    matrixBox.textContent = "";
    matrixBox.appendChild(mhead); matrixBox.appendChild(mspacer);
    matrixBox.grid = mgrid;
  }
  function drawMatrix() {
    if (!matrixRows) buildMatrix();
    if (matrixDirty) {
      if (view.length === TESTS.length) matrixView = matrixRows;
      else {
        var set = new Set();
        view.forEach(function (t) { set.add(t.n); });
        matrixView = matrixRows.filter(function (r) { return set.has(r.n); });
      }
      mspacer.style.height = matrixView.length * MROW + "px";
      matrixDirty = false;
    }
    var top = mspacer.getBoundingClientRect().top + window.scrollY, y0 = Math.max(0, window.scrollY - top);
    var first = Math.max(0, Math.floor(y0 / MROW) - OVERSCAN);
    var last = Math.min(matrixView.length, Math.ceil((y0 + window.innerHeight) / MROW) + OVERSCAN);
    var frag = document.createDocumentFragment();
    for (var i = first; i < last; i++) {
      var r = matrixView[i];
      var tr = el("div", { class: "mrow row-grid" + (r.mixed ? " mixed" : ""), "data-name": r.n });
      tr.style.gridTemplateColumns = matrixBox.grid;
      tr.appendChild(el("div", { class: "c name", title: r.n }, r.n));
      for (var j = 0; j < r.c.length; j++) {
        var t = r.c[j], c = el("div", { class: "c cell" });
        if (t) {
          var a = el("a", { href: "#" + hashOf(t.key), class: "badge " + cls(t.st), title: t.p + ": " + t.st + (why(t) ? " · " + why(t) : "") }, t.st);
          c.appendChild(a);
        } else c.appendChild(el("span", { class: "none", title: "not selected on " + D.platforms[j] }, "–"));
        tr.appendChild(c);
      }
      frag.appendChild(tr);
    }
    mwin.style.transform = "translateY(" + first * MROW + "px)";
    mwin.textContent = "";
    mwin.appendChild(frag);
    drawn = last - first;
  }

  // ---- events -------------------------------------------------------------------
  toolbar.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button") : null;
    if (!b) return;
    var act = b.getAttribute("data-act");
    if (act === "expand") { view.forEach(function (t) { opened.add(t.key); }); dirty = true; draw(); return; }
    if (act === "collapse") { opened.clear(); dirty = true; draw(); return; }
    if (act === "view") { state.view = state.view === "matrix" ? "list" : "matrix"; matrixDirty = true; window.scrollTo(0, 0); draw(); status(); saveState(); return; }
    var s = b.getAttribute("data-status");
    if (s === null) return;
    if (s === "") { state.only = {}; state.flaky = false; }
    else if (s === "flaky") state.flaky = !state.flaky;
    else if (state.only[s]) delete state.only[s];
    else state.only[s] = true;
    update();
  });
  summaries.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-act=only-fails]") : null;
    if (!b) return;
    state.only = {};
    Object.keys(counts).forEach(function (s) { if (s !== NOT_RUN && failure(s)) state.only[s] = true; });
    update();
  });
  var pending = 0;
  function applySearch() {
    if (pending) clearTimeout(pending);
    pending = 0;
    var q = search.value.trim().toLowerCase();
    if (q !== state.q) { state.q = q; update(); }
  }
  search.addEventListener("input", function () {
    if (pending) clearTimeout(pending);
    pending = setTimeout(applySearch, TESTS.length > 20000 ? 150 : 0);
  });
  thead.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-sort]") : null;
    if (!b) return;
    var k = b.getAttribute("data-sort");
    if (state.sort === k) state.desc = !state.desc;
    else { state.sort = k; state.desc = DEFAULT_DESC[k]; }
    update();
  });
  function toggle(key) {
    if (opened.has(key)) opened.delete(key); else opened.add(key);
    dirty = true;
    draw();
  }
  win.addEventListener("click", function (ev) {
    if (ev.target.closest("a, details, pre, table.sub, .det")) return;
    var r = ev.target.closest(".row");
    if (r) toggle(r.getAttribute("data-key"));
  });
  win.addEventListener("keydown", function (ev) {
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches && ev.target.matches(".row")) {
      ev.preventDefault(); var k = ev.target.getAttribute("data-key"); toggle(k);
      var again = win.querySelector('.row[data-key="' + CSS.escape(k) + '"]'); if (again) again.focus();
    }
  });

  // ---- deep links (#PLATFORM/TEST) and state links (#!...) -------------------
  var hlKey = null;
  function goTo(key) {
    var t = byKey.get(key);
    if (!t) return false;
    state.view = "list";
    opened.add(key);
    var pos = view.indexOf(t);
    if (pos < 0) { state.only = {}; state.flaky = false; state.q = ""; search.value = ""; compute(); pos = view.indexOf(t); }
    hlKey = key;
    dirty = true;
    status();
    layout();
    window.scrollTo(0, Math.max(0, listTop() + offsets[pos] - 80));
    draw();
    // Its details are measured now: the page may have grown below it.
    window.scrollTo(0, Math.max(0, listTop() + offsets[pos] - 80));
    draw();
    return !!win.querySelector('.row[data-key="' + CSS.escape(key) + '"]');
  }
  function onHash() {
    if (writingHash) return;
    var h = location.hash;
    if (h.indexOf("#!") === 0) {
      readState(h); search.value = state.q; compute(); matrixDirty = true; draw(); status();
      return;
    }
    h = h.slice(1);
    if (!h || h.indexOf("selftest") === 0) return;
    try { goTo(decodeURIComponent(h)); } catch (e) { /* a malformed hash is ignored */ }
  }
  window.addEventListener("hashchange", onHash);

  // ---- loading ------------------------------------------------------------------
  var loaded = false, firstDrawMs = null, firstFrameMs = null, decodeMs = 0, doneMs = 0, screenFull = false;
  if (location.hash.indexOf("#!") === 0) { readState(location.hash); search.value = state.q; }
  var needsSort = state.sort !== "status" || state.desc;
  window.atexChunk = function () {
    var c0 = performance.now();
    var s = document.currentScript.previousElementSibling;
    var arr = JSON.parse(s.textContent);
    s.textContent = "";
    var only = anyOnly() ? state.only : null;
    for (var i = 0; i < arr.length; i++) {
      prep(arr[i]);
      if (!needsSort && matches(arr[i], only, state.q)) view.push(arr[i]);
    }
    dirty = true;
    if (state.view === "list" && !needsSort && !screenFull) {
      // Until the screen is full, draw what came; then only the count.
      draw();
      screenFull = offsets[view.length] > window.innerHeight + window.scrollY;
      if (firstDrawMs === null) {
        firstDrawMs = performance.now();
        // The first frame the browser makes after that: when people see it.
        requestAnimationFrame(function () { firstFrameMs = performance.now(); });
      }
    }
    status();
    decodeMs += performance.now() - c0;
  };
  window.atexDone = function () {
    var d0 = performance.now();
    loaded = true;
    if (flakyCount) { flakyPill.hidden = false; flakyN.textContent = String(flakyCount); }
    buildSummaries();
    compute();
    matrixDirty = true;
    draw();
    status();
    if (firstDrawMs === null) firstDrawMs = performance.now();
    if (location.hash.indexOf("#!") !== 0) onHash();
    window.atexRenderMs = performance.now();
    doneMs = window.atexRenderMs - d0;
    document.body.setAttribute("data-render-ms", String(Math.round(window.atexRenderMs)));
    document.body.setAttribute("data-first-draw-ms", String(Math.round(firstDrawMs)));
    if (/^#selftest|[#&]selftest=1/.test(location.hash)) selftest();
  };

  // ---- self test (report.html#selftest[:KEY]), used by the test suite ------------
  function selftest() {
    var S0 = performance.now(), H0 = location.hash;
    var paint = performance.getEntriesByType ? performance.getEntriesByType("paint") : [];
    var fcp = null;
    paint.forEach(function (p) { if (p.name === "first-contentful-paint") fcp = Math.round(p.startTime); });
    function visible() {
      return Array.prototype.map.call(win.querySelectorAll(".row"), function (r) { return r.getAttribute("data-key"); });
    }
    function keys(n) { return view.slice(0, n).map(function (t) { return t.key; }); }
    function click(e) { e.dispatchEvent(new MouseEvent("click", { bubbles: true })); }
    function type(q) { search.value = q; search.dispatchEvent(new Event("input", { bubbles: true })); applySearch(); }
    var R = { renderMs: Math.round(window.atexRenderMs), firstDrawMs: Math.round(firstDrawMs), fcpMs: fcp,
      firstFrameMs: firstFrameMs === null ? null : Math.round(firstFrameMs),
      scriptMs: Math.round(window.atexRenderMs - T0), decodeMs: Math.round(decodeMs), doneMs: Math.round(doneMs),
      total: TESTS.length, rows: win.querySelectorAll(".row").length,
      opened: win.querySelectorAll(".det").length, firstStatus: view.length ? view[0].st : null,
      initial: { hash: location.hash, q: search.value, visible: visible().slice(0, 50), count: view.length, view: state.view,
        pressed: pills.filter(function (p) { return p.getAttribute("aria-pressed") === "true"; })
          .map(function (p) { return p.getAttribute("data-status"); }) },
      emptyButtons: Array.prototype.filter.call(document.querySelectorAll("button"), function (b) {
        return !b.hidden && b.offsetParent !== null && !b.textContent.trim(); }).length };
    R.fails = Array.prototype.map.call(summaries.querySelectorAll(".fails li"), function (li) {
      var w = li.querySelector(".why"); return [li.getAttribute("data-key"), w ? w.textContent : null]; });
    R.notRun = Array.prototype.map.call(summaries.querySelectorAll(".notrun li"), function (li) { return li.getAttribute("data-key"); });
    R.notRunText = summaries.querySelector(".notrun") ? summaries.querySelector(".notrun").textContent : null;
    R.rowWhy = {}; R.subTags = {};
    Array.prototype.forEach.call(win.querySelectorAll(".row"), function (r) {
      var k = r.getAttribute("data-key");
      R.rowWhy[k] = r.querySelector(".note").textContent;
      var st = r.querySelector(".tag.subfail"); if (st) R.subTags[k] = st.textContent;
    });
    if (state.view === "matrix" || location.hash.indexOf("#selftest") !== 0) {
      R.matrixRows = !mwin ? [] : Array.prototype.map.call(mwin.querySelectorAll(".mrow"), function (r) {
        return [r.getAttribute("data-name")].concat(Array.prototype.map.call(r.querySelectorAll(".cell"), function (c) { return c.textContent; }));
      }).slice(0, 50);
      R.selftestMs = Math.round(performance.now() - S0);
      document.body.appendChild(el("pre", { id: "selftest-result" }, JSON.stringify(R)));
      return;
    }
    var LAP = performance.now(); R.laps = {};
    function lap(name) { var now = performance.now(); R.laps[name] = Math.round((now - LAP) * 10) / 10; LAP = now; }
    var failPill = toolbar.querySelector('.pill[data-status="fail"]');
    lap("start");
    if (failPill) { click(failPill); R.failFilter = keys(50); R.failCount = view.length; R.failPressed = failPill.getAttribute("aria-pressed"); }
    lap("filter"); R.hashAfterFilter = location.hash;
    click(allPill); R.afterAll = view.length; lap("all");
    type("LOGIN"); R.search = keys(50); R.searchCount = view.length; lap("search");
    R.hashAfterSearch = location.hash;
    type("expected 401"); R.searchNote = keys(50); lap("searchNote");
    type("allocate 8 gib"); R.searchLog = keys(50); lap("searchLog");
    type("no-such-thing-anywhere"); R.searchNone = view.length; lap("searchNone");
    type(""); lap("clear");
    click(thead.querySelector('button[data-sort="dur"]')); R.longest = view.length ? view[0].key : null;
    click(thead.querySelector('button[data-sort="name"]')); R.byName = keys(50); lap("sorts");
    R.hashAfterSort = location.hash;
    click(thead.querySelector('button[data-sort="status"]'));
    click(expandAll); R.expanded = win.querySelectorAll(".det").length; R.rowsExpanded = win.querySelectorAll(".row").length; lap("expand");
    click(collapseAll); R.collapsed = win.querySelectorAll(".det").length; lap("collapse");
    if (viewBtn) {
      click(viewBtn);
      R.matrixHead = Array.prototype.map.call(mhead.children, function (c) { return c.textContent; });
      R.matrixRows = Array.prototype.map.call(mwin.querySelectorAll(".mrow"), function (r) {
        return [r.getAttribute("data-name")].concat(Array.prototype.map.call(r.querySelectorAll(".cell"), function (c) { return c.textContent; }));
      }).slice(0, 50);
      R.hashMatrix = location.hash;
      click(viewBtn); lap("matrix");
    }
    var target = H0.indexOf("#selftest:") === 0 ? decodeURIComponent(H0.slice(10)) : null;
    var last = view.length ? view[view.length - 1] : null;
    var key = target || (last && last.key);
    if (key) {
      R.deepLink = key; R.deepLinkFound = goTo(key);
      var hl = win.querySelector(".row.hl"); R.deepLinkShown = hl ? hl.getAttribute("data-key") : null;
      var det = hl && hl.nextSibling && hl.nextSibling.classList.contains("det") ? hl.nextSibling : null;
      R.deepLinkOpen = !!det;
      if (det) {
        var w = det.querySelector(".why"); R.detailWhy = w ? w.textContent : null;
        var pre = det.querySelector("pre.log");
        if (pre) {
          R.log = { scrollTop: pre.scrollTop, clientHeight: pre.clientHeight, scrollHeight: pre.scrollHeight,
            atEnd: pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 2 };
        }
      }
    }
    lap("deeplink");
    R.logs = document.querySelectorAll("pre.log").length;
    R.links = Array.prototype.map.call(document.querySelectorAll(".det a[href]"), function (a) { return a.getAttribute("href"); }).slice(0, 50);
    R.selftestMs = Math.round(performance.now() - S0);
    document.body.appendChild(el("pre", { id: "selftest-result" }, JSON.stringify(R)));
  }
})();
