/* PainPath dashboard: live queue (polls /queue.json) and waiting times.
   Patient text is only ever inserted with textContent, never as HTML. */
(function () {
  "use strict";

  var app = document.getElementById("queue-app");
  if (!app) { return; }

  var pollUrl = app.getAttribute("data-poll-url");
  var pollMs = Math.max(2, parseInt(app.getAttribute("data-poll-seconds"), 10) || 5) * 1000;
  var clockOffset = 0; // server time minus browser time, in ms
  var known = {};      // escalation ids already shown
  var failures = 0;
  var timer = null;
  var inflight = false;

  function setOffset(serverIso) {
    var t = Date.parse(serverIso);
    if (!isNaN(t)) { clockOffset = t - Date.now(); }
  }

  function waitingLabel(seconds) {
    var minutes = Math.max(Math.floor(seconds / 60), 0);
    if (minutes < 1) { return "waiting <1 min"; }
    if (minutes < 60) { return "waiting " + minutes + " min"; }
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) { return "waiting " + hours + " h" + (minutes ? " " + minutes + " min" : ""); }
    var days = Math.floor(hours / 24);
    hours = hours % 24;
    return "waiting " + days + " d" + (hours ? " " + hours + " h" : "");
  }

  function tick() {
    var now = Date.now() + clockOffset;
    var nodes = document.querySelectorAll(".qwait[data-created]");
    for (var i = 0; i < nodes.length; i++) {
      var created = Date.parse(nodes[i].getAttribute("data-created"));
      if (!isNaN(created)) { nodes[i].textContent = waitingLabel((now - created) / 1000); }
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeUrl(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" ? url : "#";
  }

  function itemNode(e, isNew) {
    var tier = String(e.tier).replace(/[^a-z_]/g, "");
    var status = String(e.status).replace(/[^a-z_]/g, "");
    var li = el("li", "qitem tier-" + tier + (isNew ? " qnew" : ""));
    li.setAttribute("data-id", String(e.id));
    li.setAttribute("data-tier", tier);
    li.setAttribute("data-status", status);
    var a = el("a", "qlink");
    a.href = safeUrl(e.url);
    var head = el("span", "qhead");
    head.appendChild(el("span", "badge badge-" + tier, e.tier_label));
    head.appendChild(el("span", "qkind", e.kind_label));
    var st = e.status_label;
    if (e.acknowledged_by && status === "acknowledged") { st += " by " + e.acknowledged_by; }
    head.appendChild(el("span", "qstatus status-" + status, st));
    a.appendChild(head);
    a.appendChild(el("span", "qwho", e.patient_name));
    if (e.reasons && e.reasons.length) { a.appendChild(el("span", "qreasons", e.reasons.join("; "))); }
    if (e.text) { a.appendChild(el("span", "qtext", "\u201c" + e.text + "\u201d")); }
    if (status === "noted") {
      a.appendChild(el("span", "qage", "noted " + e.created_label));
    } else {
      var wait = el("span", "qwait", e.waiting_label);
      wait.setAttribute("data-created", e.created_at);
      a.appendChild(wait);
    }
    li.appendChild(a);
    return li;
  }

  function render(listId, emptyId, countId, items, announce) {
    var list = document.getElementById(listId);
    var focusedId = null;
    if (document.activeElement && list.contains(document.activeElement)) {
      var holder = document.activeElement.closest("li");
      focusedId = holder ? holder.getAttribute("data-id") : null;
    }
    var fresh = [];
    var frag = document.createDocumentFragment();
    for (var i = 0; i < items.length; i++) {
      var isNew = announce && !known[items[i].id];
      if (isNew) { fresh.push(items[i]); }
      frag.appendChild(itemNode(items[i], isNew));
    }
    list.replaceChildren(frag);
    document.getElementById(emptyId).hidden = items.length > 0;
    document.getElementById(countId).textContent = String(items.length);
    if (focusedId) {
      var again = list.querySelector('li[data-id="' + focusedId.replace(/[^0-9]/g, "") + '"] a');
      if (again) { again.focus(); }
    }
    return fresh;
  }

  function remember(items) {
    known = {};
    for (var i = 0; i < items.length; i++) { known[items[i].id] = true; }
  }

  function apply(data) {
    setOffset(data.now);
    var fresh = render("queue", "queue-empty", "queue-count", data.items, true);
    render("noted", "noted-empty", "noted-count", data.noted, false);
    remember(data.items);
    document.title = (data.items.length ? "(" + data.items.length + ") " : "") +
      "Queue \u2014 PainPath care team";
    if (fresh.length) {
      var words = fresh.map(function (e) { return e.tier_label + " for " + e.patient_name; });
      document.getElementById("queue-announce").textContent = "New: " + words.join(", ");
    }
    var now = new Date(Date.now() + clockOffset);
    document.getElementById("queue-updated").textContent =
      "Updated " + now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) +
      " \u00b7 updates every " + (pollMs / 1000) + " seconds.";
    tick();
  }

  function showError(text) {
    var box = document.getElementById("queue-error");
    box.textContent = text;
    box.hidden = !text;
  }

  function poll() {
    if (inflight) { return; }
    inflight = true;
    fetch(pollUrl, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 401) {
          window.location.assign("/login?next=" + encodeURIComponent("/queue"));
          return null;
        }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (data) {
        if (!data) { return; }
        failures = 0;
        showError("");
        apply(data);
      })
      .catch(function () {
        failures += 1;
        if (failures >= 2) {
          showError("The queue could not be updated. Check the connection; retrying\u2026");
        }
      })
      .then(function () {
        inflight = false;
        window.clearTimeout(timer);
        timer = window.setTimeout(poll, pollMs);
      });
  }

  setOffset(app.getAttribute("data-now"));
  var initial = document.querySelectorAll("#queue li[data-id]");
  for (var i = 0; i < initial.length; i++) { known[initial[i].getAttribute("data-id")] = true; }
  window.setInterval(tick, 15000);
  timer = window.setTimeout(poll, pollMs);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      window.clearTimeout(timer);
      poll();
    }
  });
})();
