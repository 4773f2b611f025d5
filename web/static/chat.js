/* PainPath patient web chat.
 *
 * Message text is untrusted (the patient's own words, and bot text that may
 * quote them): it is only ever inserted with textContent, never innerHTML.
 */
(function () {
  "use strict";

  var POLL_MS = 4000;
  var POLL_HIDDEN_MS = 20000;

  var root = document.getElementById("chat");
  if (!root) { return; }
  var url = root.getAttribute("data-messages-url");
  var maxChars = parseInt(root.getAttribute("data-max-chars"), 10) || 2000;
  var lastId = parseInt(root.getAttribute("data-last-id"), 10) || 0;

  var thread = document.getElementById("thread");
  var list = document.getElementById("messages");
  var empty = document.getElementById("empty-state");
  var typing = document.getElementById("typing");
  var errorBox = document.getElementById("chat-error");
  var form = document.getElementById("composer");
  var input = document.getElementById("message-input");
  var button = document.getElementById("send-button");

  var seen = {};
  var sending = false;
  var stopped = false;
  var pollTimer = null;

  function formatTime(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    var now = new Date();
    var opts = { hour: "numeric", minute: "2-digit" };
    if (d.toDateString() !== now.toDateString()) {
      opts.month = "short";
      opts.day = "numeric";
    }
    try { return d.toLocaleString([], opts); } catch (e) { return d.toLocaleString(); }
  }

  function nearBottom() {
    return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
  }

  function scrollToBottom() {
    thread.scrollTop = thread.scrollHeight;
  }

  function buildMessage(m) {
    var mine = m.direction === "in";
    var li = document.createElement("li");
    li.className = "msg " + (mine ? "msg-user" : "msg-bot");
    if (m.id !== undefined && m.id !== null) { li.setAttribute("data-id", String(m.id)); }
    var who = document.createElement("span");
    who.className = "sr-only";
    who.textContent = mine ? "You said:" : "Clinic assistant said:";
    var body = document.createElement("p");
    body.className = "msg-body";
    body.textContent = String(m.body);
    var time = document.createElement("time");
    time.className = "msg-time";
    if (m.created_at) {
      time.setAttribute("datetime", m.created_at);
      time.textContent = formatTime(m.created_at);
    }
    li.appendChild(who);
    li.appendChild(body);
    li.appendChild(time);
    return li;
  }

  function addMessages(messages) {
    if (!messages || !messages.length) { return; }
    var stick = nearBottom();
    messages.forEach(function (m) {
      if (typeof m.id !== "number" || seen[m.id]) { return; }
      seen[m.id] = true;
      var li = buildMessage(m);
      // Keep id order even when a poll and a send answer overlap.
      var before = null;
      var items = list.querySelectorAll("li[data-id]");
      for (var i = 0; i < items.length; i++) {
        if (parseInt(items[i].getAttribute("data-id"), 10) > m.id) { before = items[i]; break; }
      }
      list.insertBefore(li, before);
      if (m.id > lastId) { lastId = m.id; }
    });
    empty.hidden = true;
    if (stick) { scrollToBottom(); }
  }

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function setBusy(busy) {
    sending = busy;
    typing.hidden = !busy;
    button.setAttribute("aria-disabled", busy ? "true" : "false");
    if (busy) { scrollToBottom(); }
  }

  function linkGone(data) {
    stopped = true;
    if (pollTimer) { clearTimeout(pollTimer); }
    input.disabled = true;
    button.disabled = true;
    showError((data && data.error) ||
      "This chat link is no longer valid. Please contact your clinic or reply to the clinic's text message.");
  }

  function readJson(response) {
    return response.json().catch(function () { return {}; });
  }

  function send(text) {
    setBusy(true);
    showError("");
    var pending = buildMessage({ direction: "in", body: text });
    pending.classList.add("msg-pending");
    list.appendChild(pending);
    empty.hidden = true;
    scrollToBottom();

    fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ text: text }),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      return readJson(response).then(function (data) {
        pending.remove();
        if (response.status === 403 || response.status === 410) {
          input.value = text;
          linkGone(data);
          return;
        }
        addMessages(data.messages);
        if (!response.ok) {
          if (response.status === 422) { input.value = text; }
          showError(data.error || "Sorry, something went wrong. Please try again.");
        }
      });
    }).catch(function () {
      pending.remove();
      input.value = text;
      showError("We couldn't send your message. Please check your connection and try again.");
    }).then(function () {
      setBusy(false);
      if (!stopped) { input.focus(); }
    });
  }

  function poll() {
    pollTimer = null;
    if (stopped) { return; }
    if (sending) { schedule(); return; }
    fetch(url + "?after=" + encodeURIComponent(lastId), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      return readJson(response).then(function (data) {
        if (response.status === 403 || response.status === 410) { linkGone(data); return; }
        if (response.ok && !sending) { addMessages(data.messages); }
      });
    }).catch(function () { /* offline for a moment: try again later */ })
      .then(schedule);
  }

  function schedule() {
    if (stopped || pollTimer) { return; }
    pollTimer = setTimeout(poll, document.hidden ? POLL_HIDDEN_MS : POLL_MS);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending || stopped) { return; }
    var text = input.value.trim();
    if (!text) {
      showError("Please type a message first.");
      input.focus();
      return;
    }
    if (text.length > maxChars) {
      showError("That message is too long. Please keep it under " + maxChars + " characters.");
      return;
    }
    input.value = "";
    send(text);
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped) {
      if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
      poll();
    }
  });

  // Messages rendered by the server: remember their ids, show local times.
  Array.prototype.forEach.call(list.querySelectorAll("li[data-id]"), function (li) {
    seen[parseInt(li.getAttribute("data-id"), 10)] = true;
    var t = li.querySelector("time[datetime]");
    if (t) { t.textContent = formatTime(t.getAttribute("datetime")); }
  });
  scrollToBottom();
  schedule();
})();
