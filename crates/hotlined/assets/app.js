// Hotline workspace pages: the live connection (Server-Sent Events from /events), the
// operator's desk and the supervisor's board. Plain JavaScript, no build step; the pages
// work without it for reading (registry, card, reports), the live parts need it.
"use strict";
(function () {
  var body = document.body;
  var T = {};
  try { T = JSON.parse(document.getElementById("texts").textContent); } catch (e) { T = {}; }
  var csrf = body.dataset.csrf || "";
  var me = body.dataset.me || "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function text(el, s) { if (el) { el.textContent = s; } }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function stateLabel(s) { return T["st_" + s] || s; }
  // a caller's menu path in words (the server's `path_words` in the page's language)
  var LANG = document.documentElement.lang === "en" ? "en" : "ru";
  function pathWords(d) {
    var w = d.path_words && d.path_words[LANG];
    if (!w) { w = d.path || []; }
    return w.length ? w.join(" → ") : "—";
  }
  // queue titles by id: the board's tiles, then every queue event (a reload renames them)
  var queueNames = {};
  $all("section[data-queue]").forEach(function (sec) {
    var h = $("h2", sec);
    if (h) { queueNames[sec.dataset.queue] = h.textContent; }
  });
  $all("button[data-transfer-queue]").forEach(function (b) {
    queueNames[b.dataset.transferQueue] = b.textContent.trim();
  });
  function queueName(id) { return queueNames[id] || id; }
  function reasonLabel(r) { return r ? (T["reason_" + r] || r) : ""; }
  function seconds(since) {
    var t = Date.parse(since);
    return isNaN(t) ? null : Math.max(0, Math.floor((Date.now() - t) / 1000));
  }
  function mmss(s) {
    if (s == null) { return ""; }
    var m = Math.floor(s / 60), r = s % 60;
    return (m >= 60 ? Math.floor(m / 60) + ":" + ("0" + m % 60).slice(-2) : m) + ":" + ("0" + r).slice(-2);
  }

  // JSON API calls with the session's CSRF token. Resolves to {status, json}; a network
  // failure resolves to status 0.
  function api(method, url, payload) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        return { status: r.status, json: j };
      });
    }, function () { return { status: 0, json: null }; });
  }
  function problem(r) {
    if (r.status === 0) { return T.error_try_again; }
    return (r.json && r.json.error) ? r.json.error : (T.error_try_again + " (" + r.status + ")");
  }

  // ---- large text ---------------------------------------------------------------------
  var large = $("#btn-large");
  function setLarge(on) {
    document.documentElement.classList.toggle("large", on);
    if (large) { large.setAttribute("aria-pressed", on ? "true" : "false"); }
    try { localStorage.setItem("hotline-large", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  try { setLarge(localStorage.getItem("hotline-large") === "1"); } catch (e) { setLarge(false); }
  if (large) { large.addEventListener("click", function () { setLarge(!document.documentElement.classList.contains("large")); }); }

  // ---- the live connection ------------------------------------------------------------
  var status = $("#live-status");
  var banner = $("#live-banner");
  var handlers = {};
  var onReconnect = [];
  function setLive(up) {
    if (!status || status.dataset.live === "off") { return; }
    var was = status.dataset.live;
    status.dataset.live = up ? "up" : "down";
    text(status, up ? status.dataset.up : status.dataset.down);
    if (banner) { banner.hidden = up; }
    if (up && was === "down") { onReconnect.forEach(function (f) { f(); }); }
  }
  function connect() {
    if (!window.EventSource) { return; }
    var delay = 1000;
    var es;
    function open() {
      es = new EventSource("/events", { withCredentials: true });
      es.onopen = function () { delay = 1000; setLive(true); };
      es.onerror = function () {
        setLive(false);
        // the browser retries by itself unless the answer closed the stream for good
        if (es.readyState === EventSource.CLOSED) {
          setTimeout(open, delay);
          delay = Math.min(delay * 2, 15000);
        }
      };
      ["operator", "queue", "offer"].forEach(function (kind) {
        es.addEventListener(kind, function (ev) {
          var d;
          try { d = JSON.parse(ev.data); } catch (e) { return; }
          (handlers[kind] || []).forEach(function (f) { f(d); });
        });
      });
    }
    open();
    // A page left for another is kept frozen by the browser (back/forward cache) with its
    // stream open; the browser allows six connections to one host, so the seventh page
    // would wait forever. Close the stream when the page is hidden, open it again when a
    // cached page comes back.
    window.addEventListener("pagehide", function () { if (es) { es.close(); } });
    window.addEventListener("pageshow", function (e) { if (e.persisted) { setLive(false); open(); } });
  }
  function on(kind, f) { (handlers[kind] = handlers[kind] || []).push(f); }

  // once a second: times in state, waits, the wrap-up countdown
  var tickers = [];
  setInterval(function () { tickers.forEach(function (f) { f(); }); }, 1000);

  // ---- the operator's desk ------------------------------------------------------------
  function desk() {
    var root = $(".desk");
    var operator = root.dataset.operator;
    var stateEl = $("#desk-state");
    var countdown = $("#wrapup-countdown");
    var wrapup = parseInt(root.dataset.wrapupS, 10) || 0;
    var form = $("#appeal-form");
    var fields = $("#appeal-fields");
    var saved = $("#appeal-saved");
    var pop = $("#screen-pop");
    var err = $("#desk-error");
    var caseFields = form.dataset.caseFields === "1";
    var readOnly = root.dataset.readOnly === "1";
    var HOLD_REASON = "Поствызывная обработка";
    var holdQueues = (root.dataset.holdQueues || "").split(",").filter(Boolean);

    function showError(msg) { err.hidden = !msg; text(err, msg || ""); }
    function applyState(d) {
      stateEl.dataset.state = d.state;
      stateEl.dataset.since = d.since || "";
      text(stateEl, stateLabel(d.state));
      text($("#state-reason"), d.state === "paused" ? reasonLabel(d.reason) : "");
      if (d.queues) { text($("#my-queues"), d.queues.length ? d.queues.map(queueName).join(", ") : T.no_queues); }
      var s = d.state;
      $("#btn-login").disabled = s !== "logged_out";
      $("#btn-pause").disabled = s === "logged_out" || s === "paused";
      $("#btn-resume").disabled = s !== "paused";
      $("#btn-logout").disabled = s === "logged_out";
      $all("[data-transfer-queue],[data-transfer-operator],[data-transfer-organisation],[data-transfer-number]")
        .forEach(function (b) { b.disabled = s !== "on_call"; });
      if (s === "wrap_up" && form.elements.disposition && !form.elements.disposition.value) {
        text(saved, T.disposition_needed);
      }
      // held until the disposition is saved (the queue requires one): say so
      var hold = $("#disposition-hold");
      // (in wrap-up after a call of such a queue without a disposition, then paused so)
      var needs = s === "wrap_up" && holdQueues.indexOf(form.dataset.queue || "") >= 0 &&
        form.elements.disposition && !form.elements.disposition.value;
      if (hold) { hold.hidden = !(needs || (s === "paused" && d.reason === HOLD_REASON)); }
      // a supervisor looking on: everything shows, nothing is pressed from here
      if (readOnly) {
        $all("button, select, input, textarea", root).forEach(function (el) { el.disabled = true; });
      }
    }
    applyState({ state: stateEl.dataset.state, since: stateEl.dataset.since, reason: stateEl.dataset.reason || null });
    tickers.push(function () {
      var s = seconds(stateEl.dataset.since);
      text($("#state-time"), s == null ? "" : mmss(s));
      if (stateEl.dataset.state === "wrap_up" && wrapup > 0) {
        countdown.hidden = false;
        text($("[data-left]", countdown), String(Math.max(0, wrapup - (s || 0))));
      } else {
        countdown.hidden = true;
      }
    });

    function command(verb, payload) {
      showError("");
      return api("POST", "/api/v1/operators/" + encodeURIComponent(operator) + "/" + verb, payload).then(function (r) {
        if (r.status === 200 && r.json) {
          applyState({ state: r.json.activity || r.json.state, since: r.json.paused_since || r.json.logged_in_since,
            reason: r.json.pause_reason, queues: r.json.queues });
        } else { showError(problem(r)); }
      });
    }
    $("#btn-login").addEventListener("click", function () { command("login", {}); });
    $("#btn-pause").addEventListener("click", function () { command("pause", { reason: $("#pause-reason").value }); });
    $("#btn-resume").addEventListener("click", function () { command("unpause"); });
    $("#btn-logout").addEventListener("click", function () { command("logout"); });

    on("operator", function (d) {
      if (d.id === operator) { applyState(d); }
      var b = $('[data-transfer-operator="' + d.id + '"]');
      if (b) { b.dataset.state = d.state; }
    });

    // -- the screen pop
    function loadPop(appeal, tries) {
      fetch("/desk/pop/" + encodeURIComponent(appeal), { credentials: "same-origin" }).then(function (r) {
        if (r.status === 404 && tries < 15) { setTimeout(function () { loadPop(appeal, tries + 1); }, 300); return null; }
        return r.text();
      }).then(function (html) {
        if (html != null && form.dataset.appeal === appeal) { pop.innerHTML = html; }
      }, function () { if (tries < 15) { setTimeout(function () { loadPop(appeal, tries + 1); }, 1000); } });
    }
    function startCall(d) {
      if (form.dataset.appeal !== d.appeal) {
        form.dataset.appeal = d.appeal;
        form.dataset.version = "";
        form.reset();
        setCitizen("", "—");
        $("#citizen-results").innerHTML = "";
        $("#citizen-new").hidden = true;
        restoreDraft(d.appeal);
        if (!form.dataset.version) { fetchVersion(d.appeal); }
        text($("#form-appeal"), "");
        text(saved, "");
      }
      form.dataset.queue = d.queue || "";
      text($("#transfer-status"), "");
      fields.disabled = false;
      $("#no-call").hidden = true;
      pop.hidden = false;
      pop.classList.remove("ended");
      // what the offer already says, at once; the card follows from the server
      pop.innerHTML = '<div class="pop"><p class="number"><span class="lbl">' + esc(T.caller_number) +
        '</span> <strong data-caller-number="' + esc(d.caller || "") + '">' + esc(d.caller || "") + "</strong></p>" +
        '<p><span class="lbl">' + esc(T.ivr_path) + ':</span> <span id="ivr-path">' + esc(pathWords(d)) +
        '</span> · <span class="lbl">' + esc(T.waited) + ':</span> <span id="waited">' + esc(d.waited_s) + " " + esc(T.seconds) + "</span></p></div>";
      loadPop(d.appeal, 0);
    }
    on("offer", function (d) {
      if (d.operator !== operator) { return; }
      if (d.phase === "ringing" || d.phase === "answered") { startCall(d); }
      if (d.phase === "ended" || d.phase === "cancelled") { pop.classList.add("ended"); }
    });

    // -- the appeal form: saved as typed; what is not saved yet stays in localStorage
    var timer = null, backoff = 2000, sending = false, dirty = false;
    function draftKey(appeal) { return "hotline-draft-" + appeal; }
    function values() {
      var v = {};
      ["service", "district", "address", "notes", "disposition", "organisation", "citizen_id"].forEach(function (n) {
        if (form.elements[n]) { v[n] = form.elements[n].value; }
      });
      return v;
    }
    function keepDraft() {
      try {
        localStorage.setItem(draftKey(form.dataset.appeal), JSON.stringify({ at: Date.now(), version: form.dataset.version, values: values() }));
      } catch (e) { /* full or private: the text stays in the page */ }
    }
    function restoreDraft(appeal) {
      var d = null;
      try { d = JSON.parse(localStorage.getItem(draftKey(appeal)) || "null"); } catch (e) { d = null; }
      if (!d || !d.values) { return false; }
      Object.keys(d.values).forEach(function (n) { if (form.elements[n]) { form.elements[n].value = d.values[n]; } });
      form.dataset.version = d.version || "";
      dirty = true;
      schedule(200);
      return true;
    }
    function payload() {
      var v = values(), p = {};
      if (v.notes) { p.notes = v.notes; }
      if (caseFields) {
        ["service", "district", "address", "disposition", "organisation"].forEach(function (n) {
          if (v[n] !== undefined) { p[n] = v[n] === "" ? null : v[n]; }
        });
        if (v.citizen_id) { p.citizen_id = v.citizen_id; }
      } else if (v.organisation) {
        p.destination_org = v.organisation;
      }
      // every edit names the version it was made on (a stale one gets 409)
      if (form.dataset.version) { p.version = parseInt(form.dataset.version, 10); }
      return p;
    }
    function fetchVersion(appeal) {
      api("GET", "/api/v1/appeals/" + encodeURIComponent(appeal)).then(function (g) {
        if (form.dataset.appeal === appeal && !form.dataset.version && g.json && g.json.version != null) {
          form.dataset.version = g.json.version;
        }
      });
    }
    // "district: no district …" → «Поле «Район»: …» with the form's own label
    function fieldProblem(r) {
      var m = r.json && r.json.error ? /^([a-z_]+):/.exec(r.json.error) : null;
      var name = (r.json && r.json.field) || (m && m[1]);
      var el = name && form.elements[name];
      var lbl = el && el.id ? $('label[for="' + el.id + '"]') : null;
      if (!lbl) { return T.save_refused + ": " + problem(r); }
      el.setAttribute("aria-invalid", "true");
      return T.field_refused.replace("{field}", lbl.textContent.trim());
    }
    // the organisation the directory suggests for the service and district chosen
    function suggest() {
      var hint = $("#org-suggested"), sv = form.elements.service, ds = form.elements.district;
      if (!hint || !sv || !sv.value) { if (hint) { text(hint, ""); } return; }
      var q = "?service=" + encodeURIComponent(sv.value) + (ds && ds.value ? "&district=" + encodeURIComponent(ds.value) : "");
      api("GET", "/api/v1/organisations" + q).then(function (r) {
        var id = r.json && r.json.suggested, org = form.elements.organisation;
        if (!id || !org) { text(hint, ""); return; }
        var opt = $all("#f-organisation option").filter(function (o) { return o.value === id; })[0];
        text(hint, T.suggested_org + ": " + (opt ? opt.textContent : id));
        if (!org.value) { org.value = id; dirty = true; keepDraft(); schedule(300); }
        // the suggested organisation heads the transfer list
        var sel = $("#transfer-org"), o = sel && $all("option", sel).filter(function (x) { return x.value === id; })[0];
        if (o) { sel.insertBefore(o, sel.firstChild); if (!form.elements.organisation.value || form.elements.organisation.value === id) { pickTransferOrg(id); } }
      });
    }
    function schedule(ms) { clearTimeout(timer); timer = setTimeout(save, ms); }
    function say(msg, good) { saved.dataset.ok = good ? "1" : "0"; text(saved, msg); }
    function save() {
      var appeal = form.dataset.appeal;
      if (!appeal || sending || !dirty) { return; }
      var p = payload();
      if (Object.keys(p).filter(function (k) { return k !== "version"; }).length === 0) { dirty = false; return; }
      if (p.version === undefined) {
        // the version is not known yet: read it, then send
        api("GET", "/api/v1/appeals/" + encodeURIComponent(appeal)).then(function (g) {
          if (form.dataset.appeal === appeal && g.json && g.json.version != null) { form.dataset.version = g.json.version; }
          schedule(g.status === 200 ? 0 : backoff);
          if (g.status !== 200) { backoff = Math.min(backoff * 2, 15000); }
        });
        return;
      }
      sending = true; dirty = false;
      say(T.saving, true);
      api("PATCH", "/api/v1/appeals/" + encodeURIComponent(appeal), p).then(function (r) {
        sending = false;
        if (r.status === 200) {
          backoff = 2000;
          if (r.json && r.json.version != null) { form.dataset.version = r.json.version; }
          say(T.saved, true);
          // a citizen just linked: the pop shows their card
          if (p.citizen_id && pop.dataset.citizen !== p.citizen_id) { pop.dataset.citizen = p.citizen_id; loadPop(appeal, 0); }
          if (!dirty) { try { localStorage.removeItem(draftKey(appeal)); } catch (e) { /* ignore */ } } else { schedule(300); }
          return;
        }
        dirty = true;
        if (r.status === 409) {
          // someone else changed it: take the current version and send ours again
          api("GET", "/api/v1/appeals/" + encodeURIComponent(appeal)).then(function (g) {
            if (g.json && g.json.version != null) { form.dataset.version = g.json.version; }
            schedule(200);
          });
          return;
        }
        if (r.status === 400 || r.status === 422) {
          // the notes and the draft stay; the message names the field in the page's language
          dirty = false;
          say(fieldProblem(r), false);
          return;
        }
        // no connection, the database away, or the call not answered yet: keep and retry
        say(r.status === 0 || r.status >= 500 ? T.unsaved : r.status === 403 ? T.save_after_answer : T.save_refused + ": " + problem(r), false);
        schedule(backoff);
        backoff = Math.min(backoff * 2, 15000);
      });
    }
    form.addEventListener("input", function () { dirty = true; keepDraft(); text(saved, ""); schedule(800); });
    form.addEventListener("change", function (e) {
      dirty = true; keepDraft(); schedule(300);
      if (e.target && e.target.removeAttribute) { e.target.removeAttribute("aria-invalid"); }
      if (e.target && (e.target.name === "service" || e.target.name === "district")) { suggest(); }
    });
    form.addEventListener("submit", function (e) { e.preventDefault(); dirty = true; keepDraft(); schedule(0); });
    window.addEventListener("online", function () { schedule(0); });
    onReconnect.push(function () { schedule(0); });
    // a draft left by a reload or a crash comes back
    try {
      Object.keys(localStorage).filter(function (k) { return k.indexOf("hotline-draft-") === 0; })
        .sort(function (a, b) { return JSON.parse(localStorage.getItem(b)).at - JSON.parse(localStorage.getItem(a)).at; })
        .slice(0, 1).forEach(function (k) {
          var appeal = k.slice("hotline-draft-".length);
          form.dataset.appeal = appeal;
          fields.disabled = false;
          text($("#form-appeal"), appeal.slice(0, 8));
          restoreDraft(appeal);
        });
    } catch (e) { /* nothing kept */ }

    $("#btn-forward").addEventListener("click", function () {
      var appeal = form.dataset.appeal;
      if (!appeal) { return; }
      api("POST", "/api/v1/appeals/" + encodeURIComponent(appeal) + "/forward", {}).then(function (r) {
        text(saved, r.status < 300 ? T.done_ok : T.save_refused + ": " + problem(r));
      });
    });

    // -- the citizen of the call: find a card by name or phone and pick it, or create one with
    // the caller's number; the pick is saved with the appeal (citizen_id, with its version)
    var citizenErr = $("#citizen-error");
    function citizenProblem(msg) { citizenErr.hidden = !msg; text(citizenErr, msg || ""); }
    function setCitizen(id, name) {
      form.elements.citizen_id.value = id;
      var el = $("#citizen-chosen");
      el.dataset.citizenId = id;
      text(el, name);
    }
    function pickCitizen(id, name) {
      setCitizen(id, name);
      citizenProblem("");
      $("#citizen-results").innerHTML = "";
      dirty = true; keepDraft(); schedule(0);
    }
    function findCitizens() {
      var q = $("#citizen-q").value.trim();
      if (!q) { return; }
      var digits = q.replace(/\D/g, "");
      var url = "/api/v1/citizens?per_page=10&" + (digits.length >= 5 ? "phone=" + encodeURIComponent(digits) : "name=" + encodeURIComponent(q));
      api("GET", url).then(function (r) {
        if (r.status !== 200) { citizenProblem(problem(r)); return; }
        var list = (r.json && r.json.citizens) || [];
        citizenProblem("");
        $("#citizen-results").innerHTML = list.length ? list.map(function (x) {
          return '<li data-citizen-id="' + esc(x.id) + '"><span>' + esc(x.name) + (x.phones && x.phones.length ? ", " + esc(x.phones.join(", ")) : "") +
            (x.address ? " — " + esc(x.address) : "") + '</span> <button type="button" class="secondary" data-pick-citizen="' + esc(x.id) +
            '" data-name="' + esc(x.name) + '">' + esc(T.citizen_pick) + "</button></li>";
        }).join("") : '<li class="none">' + esc(T.citizen_none_found) + "</li>";
      });
    }
    $("#btn-citizen-find").addEventListener("click", findCitizens);
    $("#citizen-q").addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); findCitizens(); }
    });
    $("#citizen-results").addEventListener("click", function (e) {
      var b = e.target.closest("button[data-pick-citizen]");
      if (b) { pickCitizen(b.dataset.pickCitizen, b.dataset.name); }
    });
    $("#btn-citizen-new").addEventListener("click", function () {
      var box = $("#citizen-new");
      box.hidden = false;
      var num = $("#screen-pop [data-caller-number]");
      var phone = $("#citizen-new-phone");
      if (!phone.value && num) { phone.value = num.dataset.callerNumber || num.textContent.trim(); }
      var q = $("#citizen-q").value.trim();
      if (!$("#citizen-new-name").value && q && !/\d/.test(q)) { $("#citizen-new-name").value = q; }
      $("#citizen-new-name").focus();
    });
    $("#btn-citizen-create").addEventListener("click", function () {
      var name = $("#citizen-new-name").value.trim(), phone = $("#citizen-new-phone").value.trim();
      if (!name) { citizenProblem(T.citizen_name_needed); $("#citizen-new-name").focus(); return; }
      api("POST", "/api/v1/citizens", { name: name, phones: phone ? [phone] : [] }).then(function (r) {
        if (r.status !== 201 || !r.json) { citizenProblem(problem(r)); return; }
        $("#citizen-new").hidden = true;
        pickCitizen(r.json.id, r.json.name);
      });
    });

    // -- the whole name of a long choice, under its select (however the value was set)
    function showChosen() {
      $all("p.chosen[data-chosen-for]").forEach(function (p) {
        var sel = document.getElementById(p.dataset.chosenFor);
        var opt = sel && sel.value ? sel.options[sel.selectedIndex] : null;
        var full = opt ? opt.textContent : "";
        if (p.textContent !== full) { p.textContent = full; }
      });
    }
    form.addEventListener("change", showChosen);
    tickers.push(showChosen);

    // -- transfers move the live call; the organisation button transfers to the one chosen
    function pickTransferOrg(id) {
      var sel = $("#transfer-org"), b = $("#btn-transfer-org");
      if (!sel || !b || !$all("option", sel).some(function (x) { return x.value === id; })) { return; }
      sel.value = id;
      b.dataset.transferOrganisation = id;
    }
    if ($("#transfer-org")) {
      $("#transfer-org").addEventListener("change", function (e) { pickTransferOrg(e.target.value); });
    }
    if (form.elements.organisation) {
      form.elements.organisation.addEventListener("change", function (e) { if (e.target.value) { pickTransferOrg(e.target.value); } });
    }
    $("#transfer").addEventListener("click", function (e) {
      var b = e.target.closest("button");
      if (!b || b.disabled) { return; }
      var p = null;
      if (b.dataset.transferQueue) { p = { queue: b.dataset.transferQueue }; }
      if (b.dataset.transferOperator) { p = { operator: b.dataset.transferOperator }; }
      if (b.dataset.transferOrganisation) { p = { organisation: b.dataset.transferOrganisation }; }
      if (!p) { return; }
      var st = $("#transfer-status");
      api("POST", "/api/v1/operators/" + encodeURIComponent(operator) + "/transfer", p).then(function (r) {
        text(st, r.status === 202 || r.status === 200 ? T.transfer_sent : problem(r));
      });
    });
  }

  // ---- the supervisor's board ---------------------------------------------------------
  function board() {
    var root = $("#board");
    var warn = parseInt(root.dataset.warnS, 10) || 30;
    var alarm = parseInt(root.dataset.alarmS, 10) || 60;
    var target = (parseInt(root.dataset.slTarget, 10) || 80) / 100;
    var err = $("#board-error");

    function colour(longest, sl) {
      var w = longest >= alarm ? 2 : longest >= warn ? 1 : 0;
      var s = sl == null ? 0 : sl < target - 0.15 ? 2 : sl < target ? 1 : 0;
      return ["ok", "warn", "alarm"][Math.max(w, s)];
    }
    on("queue", function (d) {
      var sec = $('section[data-queue="' + d.id + '"]');
      if (!sec) { return; }
      if (d.name) { queueNames[d.id] = d.name; text($("h2", sec), d.name); }
      var waiting = d.waiting || [];
      text($("[data-waiting-count]", sec), String(waiting.length));
      var longest = $("[data-longest-wait]", sec);
      longest.dataset.since = waiting.length ? waiting.map(function (w) { return w.since; }).sort()[0] : "";
      text(longest, String(d.longest_wait_s || 0));
      text($("[data-answered]", sec), String(d.answered_today || 0));
      text($("[data-abandoned]", sec), String(d.abandoned_today || 0));
      text($("[data-service-level]", sec), d.service_level == null ? "—" : Math.round(d.service_level * 100) + "%");
      sec.dataset.sl = d.service_level == null ? "" : d.service_level;
      var c = colour(d.longest_wait_s || 0, d.service_level);
      sec.dataset.colour = c;
      sec.className = sec.className.replace(/colour-\w+/, "colour-" + c);
      var list = $("[data-waiting-list]", sec);
      if (!waiting.length) {
        list.innerHTML = '<tr class="none"><td colspan="3">' + esc(T.nobody_waits) + "</td></tr>";
        return;
      }
      list.innerHTML = waiting.map(function (w) {
        return '<tr data-waiting-appeal="' + esc(w.appeal) + '" data-since="' + esc(w.since) + '"><td>' +
          esc(w.caller || "—") + '</td><td data-wait>' + esc(seconds(w.since)) + "</td><td>" +
          esc(pathWords(w)) + "</td></tr>";
      }).join("");
    });
    // what a row offers in a state: nothing when not logged in, unpause instead of pause when paused
    function offers(action, state) {
      if (state === "logged_out") { return false; }
      if (action === "pause") { return state !== "paused"; }
      if (action === "unpause") { return state === "paused"; }
      return action === "logout";
    }
    on("operator", function (d) {
      var row = $('tr[data-operator="' + d.id + '"]');
      if (!row) {
        var tpl = $("#operator-rows tr");
        if (!tpl) { return; }
        row = tpl.cloneNode(true);
        row.dataset.operator = d.id;

        $all("[data-operator-id]", row).forEach(function (b) { b.dataset.operatorId = d.id; });
        $("#operator-rows").appendChild(row);
      }
      $("th", row).innerHTML = esc(d.name || d.id) + ' <span class="muted">(' + esc(d.id) + ")</span>";
      row.dataset.state = d.state;
      row.dataset.since = d.since || "";
      var st = $('[data-cell="state"] .state', row);
      st.dataset.state = d.state;
      text(st, stateLabel(d.state));
      text($('[data-cell="reason"]', row), d.state === "paused" ? reasonLabel(d.reason) : "");
      text($('[data-cell="queues"]', row), (d.queues || []).map(queueName).join(", "));
      // the buttons the state offers, as the page was rendered (OperatorRow::offers); «—» when none
      var buttons = $all("button[data-action]", row);
      buttons.forEach(function (b) { b.hidden = !offers(b.dataset.action, d.state); });
      var none = $("[data-no-action]", row);
      if (none) { none.hidden = buttons.some(function (b) { return !b.hidden; }); }
    });
    tickers.push(function () {
      // time in the state, except for who is logged out (not at work: nothing to count)
      $all("tr[data-operator]").forEach(function (row) {
        text($('[data-cell="time"]', row), row.dataset.state === "logged_out" ? "" : mmss(seconds(row.dataset.since)));
      });
      $all("tr[data-waiting-appeal]").forEach(function (row) { text($("[data-wait]", row), String(seconds(row.dataset.since))); });
      $all("[data-longest-wait]").forEach(function (el) {
        if (!el.dataset.since) { return; }
        var s = seconds(el.dataset.since) || 0;
        text(el, String(s));
        var sec = el.closest("section[data-queue]");
        var sl = sec.dataset.sl === "" || sec.dataset.sl == null ? null : parseFloat(sec.dataset.sl);
        var c = colour(s, sl);
        sec.dataset.colour = c;
        sec.className = sec.className.replace(/colour-\w+/, "colour-" + c);
      });
    });
    $("#operator-rows").addEventListener("click", function (e) {
      var b = e.target.closest("button[data-action]");
      if (!b) { return; }
      var id = b.dataset.operatorId;
      var verb = b.dataset.action;
      if (["pause", "unpause", "logout"].indexOf(verb) < 0) { return; }
      var row = b.closest("tr");
      err.hidden = true;
      api("POST", "/api/v1/operators/" + encodeURIComponent(id) + "/" + verb, verb === "pause" ? { reason: "supervisor" } : undefined)
        .then(function (r) {
          if (r.status !== 200) { err.hidden = false; text(err, problem(r)); return; }
          var v = r.json;
          handlers.operator.forEach(function (f) {
            f({ id: v.id, name: v.name, state: v.activity || v.state, since: v.paused_since || v.logged_in_since, reason: v.pause_reason, queues: v.queues });
          });
          // the button pressed may be gone (pause → «Снять паузу»): the keyboard stays in the row
          if (b.hidden) {
            var next = $all("button[data-action]", row).filter(function (x) { return !x.hidden; })[0];
            if (next) { next.focus(); }
          }
        });
    });
    $("#reassign-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var id = $("#re-appeal").value.trim();
      var who = $("#re-operator").value;
      var st = $("#reassign-status");
      api("GET", "/api/v1/appeals/" + encodeURIComponent(id)).then(function (g) {
        if (g.status !== 200) { text(st, problem(g)); return; }
        var p = { assignee: who, version: g.json && g.json.version };
        api("PATCH", "/api/v1/appeals/" + encodeURIComponent(id), p).then(function (r) {
          text(st, r.status === 200 ? T.done_ok : problem(r));
        });
      });
    });
  }

  if ($(".desk")) { desk(); }
  if ($("#board")) { board(); }
  if (body.dataset.liveStream === "on") { connect(); }
})();
