// atex HTML report: renders the JSON in #atex-data. Vanilla JS, no network.
(function () {
  "use strict";
  var T0 = performance.now();
  var D = JSON.parse(document.getElementById("atex-data").textContent);
  var TESTS = D.tests;
  var PAGE = 500;          // rows drawn per page
  var AUTO_OPEN = 20;      // failures opened at start
  // atex_plugin_api::Status::severity; warn and worse are failures.
  var SEV = { infra: 7, error: 6, fail: 5, other: 4, warn: 3, skip: 2, info: 1, pass: 0 };
  var KNOWN = { pass: 1, fail: 1, error: 1, infra: 1, skip: 1, warn: 1, info: 1 };
  var ORDER = ["fail", "error", "infra", "warn", "pass", "skip", "info"];

  function sev(s) { return s in SEV ? SEV[s] : SEV.other; }
  function failure(s) { return sev(s) >= SEV.warn; }
  function cls(s) { return "s-" + (KNOWN[s] ? s : "other"); }
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

  // Precompute what filtering and sorting need.
  var counts = {}, flakyCount = 0, byKey = {};
  TESTS.forEach(function (t, i) {
    t.i = i;
    t.key = keyOf(t);
    t.hay = (t.n + "\n" + (t.o || "")).toLowerCase();
    t.flaky = !!(t.x && t.x.length && sev(t.s) <= SEV.info);
    if (t.flaky) flakyCount++;
    counts[t.s] = (counts[t.s] || 0) + 1;
    byKey[t.key] = t;
  });

  var state = { only: {}, flaky: false, q: "", sort: "status", desc: true, limit: PAGE, open: {} };
  var opened = 0;
  TESTS.slice().sort(cmpStatus).some(function (t) {
    if (!failure(t.s) || opened >= AUTO_OPEN) return true;
    state.open[t.key] = true; opened++; return false;
  });

  function cmpName(a, b) { return a.n < b.n ? -1 : a.n > b.n ? 1 : a.p < b.p ? -1 : a.p > b.p ? 1 : 0; }
  function cmpStatus(a, b) { return (sev(b.s) - sev(a.s)) || (b.flaky - a.flaky) || cmpName(a, b); }
  var SORTS = {
    status: function (a, b) { return cmpStatus(a, b); },
    name: cmpName,
    platform: function (a, b) { return a.p < b.p ? -1 : a.p > b.p ? 1 : cmpName(a, b); },
    system: function (a, b) { var x = a.r || "", y = b.r || ""; return x < y ? -1 : x > y ? 1 : cmpName(a, b); },
    dur: function (a, b) { return (a.d - b.d) || cmpName(a, b); }
  };

  // ---- layout -------------------------------------------------------------
  var app = document.getElementById("app");
  var header = el("header");
  header.appendChild(el("h1", null, D.title));
  var meta = el("div", { class: "meta" });
  meta.appendChild(el("span", null, "run " + D.run.id));
  meta.appendChild(el("span", null, "started " + iso(D.run.start)));
  meta.appendChild(el("span", null, "took " + dur(D.run.dur)));
  meta.appendChild(el("span", null, TESTS.length + " results" +
    (D.run.selected ? " of " + D.run.selected + " selected tests" : "")));
  header.appendChild(meta);
  if (D.run.interrupted) header.appendChild(el("div", { class: "banner" }, "The run was interrupted: results may be missing."));

  var toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "Filters" });
  var allPill = el("button", { class: "pill", type: "button", "data-status": "", "aria-pressed": "true", title: "Show every status" });
  allPill.appendChild(el("span", null, "all")); allPill.appendChild(el("b", null, String(TESTS.length)));
  toolbar.appendChild(allPill);
  var pills = [allPill];
  var statuses = Object.keys(counts).sort(function (a, b) {
    var ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
  });
  statuses.forEach(function (s) {
    var b = el("button", { class: "pill " + cls(s), type: "button", "data-status": s, "aria-pressed": "false",
      title: "Show only " + s + " (click more to add)" });
    b.appendChild(el("span", { class: "dot" })); b.appendChild(el("span", null, s));
    b.appendChild(el("b", null, String(counts[s])));
    toolbar.appendChild(b); pills.push(b);
  });
  var flakyPill = null;
  if (flakyCount) {
    flakyPill = el("button", { class: "pill s-warn", type: "button", "data-status": "flaky", "aria-pressed": "false",
      title: "Tests that passed after failing first" });
    flakyPill.appendChild(el("span", null, "flaky")); flakyPill.appendChild(el("b", null, String(flakyCount)));
    toolbar.appendChild(flakyPill);
  }
  var search = el("input", { class: "search", type: "search", placeholder: "Search name and note…",
    "aria-label": "Search name and note", spellcheck: "false" });
  toolbar.appendChild(search);
  var shown = el("span", { class: "shown", "aria-live": "polite" });
  toolbar.appendChild(shown);
  header.appendChild(toolbar);
  app.appendChild(header);

  var main = el("main");
  var table = el("table", { class: "results" });
  var cols = [["status", "Status", "c-status"], ["name", "Test", "c-name"]];
  if (D.cols.platform) cols.push(["platform", "Platform", "c-plat"]);
  if (D.cols.system) cols.push(["system", "System", "c-sys"]);
  cols.push(["dur", "Duration", "c-dur"], [null, "Note", "c-note"]);
  var colgroup = el("colgroup");
  cols.forEach(function (c) { colgroup.appendChild(el("col", { class: c[2] })); });
  table.appendChild(colgroup);
  var thead = el("thead"), hr = el("tr");
  var ths = {};
  cols.forEach(function (c) {
    var th = el("th", { scope: "col" });
    if (c[0]) {
      var b = el("button", { type: "button", "data-sort": c[0] }, c[1]);
      th.appendChild(b); ths[c[0]] = th;
    } else th.textContent = c[1];
    hr.appendChild(th);
  });
  thead.appendChild(hr); table.appendChild(thead);
  var tbody = el("tbody");
  table.appendChild(tbody);
  main.appendChild(table);
  var more = el("button", { class: "pill more", type: "button" });
  main.appendChild(more);
  app.appendChild(main);

  // ---- filtering and drawing ----------------------------------------------
  var view = [];
  function anyOnly() { for (var k in state.only) return true; return false; }
  function compute() {
    var q = state.q, only = anyOnly() ? state.only : null, fl = state.flaky;
    view = TESTS.filter(function (t) {
      if (only && !only[t.s]) return false;
      if (fl && !t.flaky) return false;
      return !q || t.hay.indexOf(q) >= 0;
    });
    var f = SORTS[state.sort], sign = state.desc ? -1 : 1;
    if (state.sort === "status") sign = state.desc ? 1 : -1;
    view.sort(function (a, b) { return sign * f(a, b); });
  }

  function statusCell(t) {
    var td = el("td");
    td.appendChild(el("span", { class: "badge " + cls(t.s) }, t.s));
    return td;
  }

  function row(t) {
    var tr = el("tr", { class: "row", "data-key": t.key, tabindex: "0", "aria-expanded": state.open[t.key] ? "true" : "false" });
    tr.appendChild(statusCell(t));
    var name = el("td", { class: "name", title: t.n });
    name.appendChild(el("span", { class: "tw" }, state.open[t.key] ? "▾" : "▸"));
    name.appendChild(document.createTextNode(t.n));
    if (t.flaky) name.appendChild(el("span", { class: "tag", title: "passed after " + t.x.length + " failed attempt(s)" }, "flaky"));
    else if (t.x) name.appendChild(el("span", { class: "tag" }, "attempt " + (t.a || 1)));
    if (t.u) name.appendChild(el("span", { class: "tag s-info" }, t.u.length + " sub"));
    var a = el("a", { class: "anchor", href: "#" + hashOf(t.key), title: "Link to this test" }, "#");
    name.appendChild(a);
    tr.appendChild(name);
    if (D.cols.platform) tr.appendChild(el("td", { title: t.p }, t.p));
    if (D.cols.system) tr.appendChild(el("td", { title: t.r || "" }, t.r || ""));
    tr.appendChild(el("td", { class: "dur" }, dur(t.d)));
    var note = t.o ? t.o.split("\n")[0] : "";
    tr.appendChild(el("td", { class: "note", title: t.o || "" }, note));
    return tr;
  }

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
    if (a.l !== undefined) parent.appendChild(el("pre", { class: "log" }, a.l === "" ? "(empty)" : a.l));
  }

  function extras(parent, a) {
    if (!a.e) return;
    var d = el("div", { class: "kv" });
    Object.keys(a.e).forEach(function (k, i) {
      if (i) d.appendChild(document.createTextNode(" · "));
      d.appendChild(document.createTextNode(k + ": "));
      var v = a.e[k];
      d.appendChild(el("code", null, typeof v === "string" ? v : JSON.stringify(v)));
    });
    parent.appendChild(d);
  }

  function details(t) {
    var tr = el("tr", { class: "det" });
    var td = el("td", { colspan: String(cols.length) });
    var info = el("div", { class: "kv" });
    info.textContent = "started " + iso(D.run.start + t.t) + " · took " + dur(t.d) +
      (t.r ? " · on " + t.r : "") + " · platform " + t.p + (t.a ? " · attempt " + t.a : "");
    td.appendChild(info);
    extras(td, t);
    if (t.o) td.appendChild(el("div", { class: "note-full" }, t.o));
    if (t.u) {
      td.appendChild(el("h4", null, "Sub-results (" + t.u.length + ")"));
      var st = el("table", { class: "sub" }), sb = el("tbody");
      t.u.slice().sort(function (a, b) { return (sev(b.s) - sev(a.s)) || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0); })
        .forEach(function (u) {
          var r = el("tr");
          var s = el("td"); s.appendChild(el("span", { class: "badge " + cls(u.s) }, u.s)); r.appendChild(s);
          r.appendChild(el("td", { class: "sn" }, u.n));
          r.appendChild(el("td", { class: "dur" }, dur(u.d)));
          var n = el("td", null, u.o || ""); r.appendChild(n);
          var f = el("td"); f.appendChild(fileLinks(t, u)); r.appendChild(f);
          sb.appendChild(r);
        });
      st.appendChild(sb); td.appendChild(st);
    }
    if (t.li !== undefined) { td.appendChild(el("h4", null, "Output")); logBlock(td, t, t); }
    // The log is linked above; list the files when there are others.
    if (t.f && t.f.length > (t.li !== undefined ? 1 : 0)) { td.appendChild(el("h4", null, "Files")); td.appendChild(fileLinks(t, t)); }
    if (t.x) {
      td.appendChild(el("h4", null, "Earlier attempts (" + t.x.length + ")"));
      t.x.forEach(function (a) {
        var d = el("details", { class: "att" });
        var s = el("summary");
        s.appendChild(el("span", { class: "badge " + cls(a.s) }, a.s));
        s.appendChild(document.createTextNode(" attempt " + (a.a || 1) + " · " + dur(a.d) + (a.r ? " · on " + a.r : "") +
          (a.o ? " · " + a.o.split("\n")[0] : "")));
        d.appendChild(s);
        d.appendChild(el("div", { class: "kv" }, "started " + iso(D.run.start + a.t)));
        if (a.o) d.appendChild(el("div", { class: "note-full" }, a.o));
        extras(d, a);
        logBlock(d, t, a);
        if (a.f && a.f.length) d.appendChild(fileLinks(t, a));
        td.appendChild(d);
      });
    }
    tr.appendChild(td);
    return tr;
  }

  function draw() {
    var frag = document.createDocumentFragment();
    var n = Math.min(view.length, state.limit);
    var pin = pinKey && byKey[pinKey];
    var list = pin && view.indexOf(pin) >= n ? [pin].concat(view.slice(0, n)) : view.slice(0, n);
    for (var i = 0; i < list.length; i++) {
      var t = list[i];
      var r = row(t);
      if (t.key === hlKey) r.classList.add("hl");
      frag.appendChild(r);
      if (state.open[t.key]) { r.classList.add("open"); frag.appendChild(details(t)); }
    }
    if (!view.length) {
      var e = el("tr"); e.appendChild(el("td", { class: "empty", colspan: String(cols.length) }, "No results match."));
      frag.appendChild(e);
    }
    tbody.textContent = "";
    tbody.appendChild(frag);
    var rest = view.length - n;
    more.hidden = rest <= 0;
    more.textContent = rest > 0 ? "Show " + Math.min(rest, PAGE) + " more (" + rest + " hidden)" : "";
    shown.textContent = view.length === TESTS.length ? TESTS.length + " shown" : view.length + " of " + TESTS.length + " shown";
    pills.forEach(function (p) {
      var s = p.getAttribute("data-status");
      p.setAttribute("aria-pressed", String(s ? !!state.only[s] : !anyOnly() && !state.flaky));
    });
    if (flakyPill) flakyPill.setAttribute("aria-pressed", String(state.flaky));
    Object.keys(ths).forEach(function (k) {
      if (k === state.sort) ths[k].setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else ths[k].removeAttribute("aria-sort");
    });
  }

  function update() { state.limit = PAGE; pinKey = null; compute(); draw(); }

  // ---- events ----------------------------------------------------------------
  toolbar.addEventListener("click", function (ev) {
    var p = ev.target.closest ? ev.target.closest(".pill") : null;
    if (!p) return;
    var s = p.getAttribute("data-status");
    if (s === "") { state.only = {}; state.flaky = false; }
    else if (s === "flaky") state.flaky = !state.flaky;
    else if (state.only[s]) delete state.only[s];
    else state.only[s] = true;
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
    pending = setTimeout(applySearch, TESTS.length > 3000 ? 120 : 0);
  });
  thead.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-sort]") : null;
    if (!b) return;
    var k = b.getAttribute("data-sort");
    if (state.sort === k) state.desc = !state.desc;
    else { state.sort = k; state.desc = k === "dur" || k === "status"; }
    update();
  });
  function toggle(tr) {
    var k = tr.getAttribute("data-key");
    if (state.open[k]) delete state.open[k]; else state.open[k] = true;
    draw();
  }
  tbody.addEventListener("click", function (ev) {
    if (ev.target.closest("a, details, pre, table.sub, .det")) return;
    var tr = ev.target.closest("tr.row");
    if (tr) toggle(tr);
  });
  tbody.addEventListener("keydown", function (ev) {
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches && ev.target.matches("tr.row")) {
      ev.preventDefault(); var k = ev.target.getAttribute("data-key"); toggle(ev.target);
      var again = tbody.querySelector('tr.row[data-key="' + CSS.escape(k) + '"]'); if (again) again.focus();
    }
  });
  more.addEventListener("click", function () { state.limit += PAGE; draw(); });

  // ---- deep links ----------------------------------------------------------
  var hlKey = null, pinKey = null;
  function goTo(key) {
    var t = byKey[key];
    if (!t) return false;
    hlKey = key;
    state.open[key] = true;
    compute();
    var pos = view.indexOf(t);
    if (pos < 0) { state.only = {}; state.flaky = false; state.q = ""; search.value = ""; compute(); pos = view.indexOf(t); }
    // Far down the list, it is drawn on top instead of drawing every row
    // before it.
    pinKey = pos >= state.limit ? key : null;
    draw();
    var tr = tbody.querySelector('tr.row[data-key="' + CSS.escape(key) + '"]');
    if (tr) tr.scrollIntoView({ block: "center" });
    return !!tr;
  }
  function onHash() {
    var h = location.hash.slice(1);
    if (!h || h === "selftest") return;
    try { goTo(decodeURIComponent(h)); } catch (e) { /* a malformed hash is ignored */ }
  }
  window.addEventListener("hashchange", onHash);

  compute();
  draw();
  onHash();
  window.atexRenderMs = performance.now();
  window.atexScriptMs = performance.now() - T0;
  document.body.setAttribute("data-render-ms", String(Math.round(window.atexRenderMs)));

  // ---- self test (report.html#selftest), used by the test suite ------------
  if (location.hash === "#selftest") {
    var S0 = performance.now();
    var R = { renderMs: Math.round(window.atexRenderMs), scriptMs: Math.round(window.atexScriptMs),
      total: TESTS.length, rows: tbody.querySelectorAll("tr.row").length,
      opened: tbody.querySelectorAll("tr.det").length, firstStatus: view.length ? view[0].s : null };
    function visible() { return Array.prototype.map.call(tbody.querySelectorAll("tr.row"), function (r) { return r.getAttribute("data-key"); }); }
    function click(e) { e.dispatchEvent(new MouseEvent("click", { bubbles: true })); }
    var LAP = performance.now(); R.laps = {};
    function lap(name) { var now = performance.now(); R.laps[name] = Math.round(now - LAP); LAP = now; }
    var failPill = toolbar.querySelector('.pill[data-status="fail"]');
    if (failPill) { click(failPill); R.failFilter = visible(); R.failPressed = failPill.getAttribute("aria-pressed"); }
    lap("fail"); click(allPill); R.afterAll = visible().length; lap("all");
    search.value = "LOGIN"; search.dispatchEvent(new Event("input", { bubbles: true })); applySearch();
    R.search = visible(); lap("search");
    search.value = "expected 401"; search.dispatchEvent(new Event("input", { bubbles: true })); applySearch();
    R.searchNote = visible(); lap("searchNote");
    search.value = ""; search.dispatchEvent(new Event("input", { bubbles: true })); applySearch(); lap("clear");
    click(thead.querySelector('button[data-sort="dur"]')); R.longest = view.length ? view[0].key : null;
    click(thead.querySelector('button[data-sort="name"]')); R.firstByName = view.length ? view[0].key : null; lap("sorts");
    click(thead.querySelector('button[data-sort="status"]'));
    var last = view.length ? view[view.length - 1] : null;
    if (last) { location.hash = "#" + hashOf(last.key); onHash(); R.deepLink = last.key;
      var hl = tbody.querySelector("tr.row.hl"); R.deepLinkShown = hl ? hl.getAttribute("data-key") : null;
      R.deepLinkOpen = !!(hl && hl.nextSibling && hl.nextSibling.classList.contains("det")); }
    lap("deeplink");
    R.logs = document.querySelectorAll("pre.log").length;
    R.links = Array.prototype.map.call(document.querySelectorAll(".det a[href]"), function (a) { return a.getAttribute("href"); }).slice(0, 50);
    R.selftestMs = Math.round(performance.now() - S0);
    var out = el("pre", { id: "selftest-result" }, JSON.stringify(R));
    document.body.appendChild(out);
  }
})();
