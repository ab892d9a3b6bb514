/*
 * RelayDesk web chat widget. Embed it with one tag:
 *
 *   <script src="https://support.example.com/widget.js" data-channel="CHANNEL_ID" async></script>
 *
 * Optional attributes: data-name and data-email (a visitor you already know),
 * data-open="true" (open the chat at once).
 *
 * Plain JavaScript, no build step, no dependencies. Everything it shows is set with
 * textContent, never parsed as HTML. It talks to the RelayDesk that served it: a visitor
 * token kept in localStorage (so a reload is the same visitor with the same history), a
 * WebSocket for live replies, and the REST endpoints when a WebSocket cannot connect.
 */
(function () {
  "use strict";

  var script = document.currentScript ||
    document.querySelector('script[data-channel][src*="widget.js"]');
  if (!script || window.RelayDeskWidget) return; // one widget per page
  var channel = script.getAttribute("data-channel") || "";
  if (!/^[0-9a-fA-F-]{36}$/.test(channel)) {
    console.error("RelayDesk widget: data-channel must be the web channel's id");
    return;
  }
  // Everything is relative to where widget.js came from, path prefix included.
  var base = script.src.replace(/widget\.js(\?.*)?$/, "") + "widget/" + channel;
  var socketUrl = base.replace(/^http/, "ws") + "/ws";
  var storageKey = "relaydesk:" + channel;
  var POLL_MS = 3000;
  var UPGRADE_MS = 60000;

  // ---- storage (localStorage, or memory where a browser refuses it) ----
  var memory = {};
  function load(key, fallback) {
    try {
      var raw = window.localStorage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (e) {
      return key in memory ? memory[key] : fallback;
    }
  }
  function save(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      memory[key] = value;
    }
  }

  var visitor = load(storageKey, {}); // {token, visitor_id, chatted}
  var pending = load(storageKey + ":pending", []); // [{client_id, text, sent_at}]
  var state = {
    transport: "idle", // idle, connecting, websocket, rest, offline
    cursor: null,
    socket: null,
    socketReady: false,
    socketFailures: 0,
    pollTimer: null,
    upgradeTimer: null,
    open: false,
    config: null,
    receipts: {} // id -> "delivered" | "read" already sent
  };

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // ---- the page: a shadow root keeps the host page's CSS out and ours in ----
  var host = document.createElement("div");
  host.id = "relaydesk-widget";
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial;position:fixed;bottom:20px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;font:14px/1.4 system-ui,sans-serif;color:#111}",
    ".launcher{width:56px;height:56px;border-radius:50%;border:0;color:#fff;cursor:pointer;box-shadow:0 4px 12px rgba(0,0,0,.25);position:relative;display:flex;align-items:center;justify-content:center}",
    ".badge{position:absolute;top:-4px;right:-4px;background:#dc2626;color:#fff;border-radius:10px;font-size:12px;padding:1px 6px}",
    ".panel{display:none;flex-direction:column;width:340px;max-width:calc(100vw - 40px);height:460px;max-height:calc(100vh - 100px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden;margin-bottom:12px}",
    ".panel.open{display:flex}",
    ".header{color:#fff;padding:12px 14px;display:flex;justify-content:space-between;align-items:center;font-weight:600}",
    ".close{background:none;border:0;color:inherit;font-size:20px;cursor:pointer}",
    ".messages{flex:1;overflow-y:auto;padding:12px;background:#f8fafc;display:flex;flex-direction:column;gap:6px}",
    ".msg{max-width:80%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}",
    ".msg.visitor{align-self:flex-end;color:#fff}",
    ".msg.agent,.msg.welcome{align-self:flex-start;background:#e2e8f0}",
    ".msg.pending{opacity:.6}",
    ".msg.failed{outline:2px solid #dc2626}",
    ".status{font-size:12px;color:#64748b;padding:2px 12px;min-height:16px}",
    "form{display:flex;border-top:1px solid #e2e8f0}",
    "textarea{flex:1;border:0;padding:10px;resize:none;font:inherit;height:42px}",
    "button.send{border:0;color:#fff;padding:0 16px;cursor:pointer;font:inherit}"
  ].join("\n");
  var panel = el("div", "panel");
  var header = el("div", "header");
  var title = el("span", "title");
  var closer = el("button", "close");
  closer.type = "button";
  closer.textContent = "\u00d7";
  closer.setAttribute("aria-label", "Close chat");
  header.appendChild(title);
  header.appendChild(closer);
  var list = el("div", "messages");
  list.setAttribute("role", "log");
  list.setAttribute("aria-live", "polite");
  var status = el("div", "status");
  var form = el("form", "form");
  var input = el("textarea", "input");
  input.setAttribute("aria-label", "Message");
  input.placeholder = "Write a message\u2026";
  var sendButton = el("button", "send");
  sendButton.type = "submit";
  sendButton.textContent = "Send";
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(header);
  panel.appendChild(list);
  panel.appendChild(status);
  panel.appendChild(form);
  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open chat");
  var svg = "http://www.w3.org/2000/svg";
  var icon = document.createElementNS(svg, "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("width", "26");
  icon.setAttribute("height", "26");
  var bubble = document.createElementNS(svg, "path");
  bubble.setAttribute("fill", "currentColor");
  bubble.setAttribute("d", "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z");
  icon.appendChild(bubble);
  launcher.appendChild(icon);
  var badge = el("span", "badge");
  badge.style.display = "none";
  launcher.appendChild(badge);
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(launcher);

  function el(tag, cls) {
    var node = document.createElement(tag);
    node.className = cls;
    return node;
  }

  function setTransport(value) {
    state.transport = value;
    host.setAttribute("data-transport", value);
    status.textContent = value === "offline" ? "Offline \u2014 retrying\u2026" : "";
  }

  function applyConfig(config) {
    state.config = config;
    var colour = config.color;
    title.textContent = config.title;
    header.style.background = colour;
    launcher.style.background = colour;
    sendButton.style.background = colour;
    var left = config.position === "left";
    host.style.right = left ? "" : "20px";
    host.style.left = left ? "20px" : "";
    host.style.alignItems = left ? "flex-start" : "flex-end";
    root.querySelector("style").textContent += "\n.msg.visitor{background:" + colour + "}";
    if (config.welcome_text && !list.querySelector(".welcome")) {
      var welcome = el("div", "msg welcome");
      welcome.textContent = config.welcome_text;
      list.insertBefore(welcome, list.firstChild);
    }
  }

  // ---- messages on screen, in the order they were sent, each once ----
  var RANK = { delivered: 1, read: 2 };
  var shown = {}; // id -> {node, at, author}
  var unread = 0;

  function render(message) {
    var known = shown[message.id];
    var level = RANK[message.status] || 0;
    if (message.author === "agent" && level > (RANK[state.receipts[message.id]] || 0)) {
      state.receipts[message.id] = message.status; // the server already has this receipt
    }
    if (known) {
      if (message.status !== "pending") {
        known.node.classList.remove("pending");
        known.node.classList.remove("failed");
      }
      return;
    }
    var at = Date.parse(message.sent_at) || Date.now();
    var node = el("div", "msg " + (message.author === "agent" ? "agent" : "visitor"));
    node.setAttribute("data-id", message.id);
    node.textContent = message.text;
    if (message.status === "pending") node.classList.add("pending");
    shown[message.id] = { node: node, at: at, author: message.author };
    var before = null;
    var nodes = list.querySelectorAll(".msg[data-id]");
    for (var i = nodes.length - 1; i >= 0; i--) {
      var other = shown[nodes[i].getAttribute("data-id")];
      if (other && other.at <= at) break;
      before = nodes[i];
    }
    list.insertBefore(node, before);
    list.scrollTop = list.scrollHeight;
    if (message.author === "agent") {
      receipt(message.id, "delivered");
      if (isSeen()) receipt(message.id, "read");
      else if (level < RANK.read) setUnread(unread + 1);
    }
  }

  function setUnread(n) {
    unread = n;
    badge.textContent = String(n);
    badge.style.display = n > 0 && !state.open ? "" : "none";
  }

  function isSeen() {
    return state.open && document.visibilityState === "visible";
  }

  // ---- receipts: delivered when shown, read when the chat is open in front of the visitor ----
  var receiptQueue = { delivered: [], read: [] };
  var receiptTimer = null;

  function receipt(id, level) {
    if (id.indexOf("agent:") !== 0) return;
    if ((RANK[state.receipts[id]] || 0) >= RANK[level]) return;
    state.receipts[id] = level;
    receiptQueue[level].push(id);
    if (!receiptTimer) receiptTimer = setTimeout(flushReceipts, 300);
  }

  function flushReceipts() {
    receiptTimer = null;
    ["delivered", "read"].forEach(function (level) {
      var ids = receiptQueue[level].splice(0, 200);
      if (!ids.length) return;
      var frame = { ids: ids, status: level };
      if (state.transport === "websocket" && state.socketReady) {
        state.socket.send(JSON.stringify(Object.assign({ type: "receipt" }, frame)));
      } else {
        api("POST", "/receipts", frame, true).catch(function () {});
      }
    });
  }

  function markAllRead() {
    if (!isSeen()) return;
    Object.keys(shown).forEach(function (id) {
      if (shown[id].author === "agent") receipt(id, "read");
    });
    setUnread(0);
  }

  // ---- HTTP ----
  function api(method, path, body, authenticated) {
    var headers = {};
    if (body) headers["Content-Type"] = "application/json";
    if (authenticated && visitor.token) headers.Authorization = "Bearer " + visitor.token;
    return fetch(base + path, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      mode: "cors",
      credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error((data.error && data.error.message) || response.statusText);
          error.status = response.status;
          error.code = data.error && data.error.code;
          throw error;
        }
        return data;
      });
    });
  }

  // ---- session: the stored token renewed, or a new visitor ----
  function startSession() {
    var body = {};
    if (visitor.token) body.token = visitor.token;
    if (script.getAttribute("data-name")) body.name = script.getAttribute("data-name");
    if (script.getAttribute("data-email")) body.email = script.getAttribute("data-email");
    setTransport("connecting");
    return api("POST", "/session", body, false).then(function (session) {
      visitor = { token: session.token, visitor_id: session.visitor_id, chatted: !!visitor.chatted };
      save(storageKey, visitor);
      host.setAttribute("data-visitor", session.visitor_id);
      applyConfig(session.config);
      if (visitor.chatted || state.open || pending.length) connect();
      else setTransport("idle");
    }, function (error) {
      if (error.status === 401 && visitor.token) {
        visitor = {}; // expired or revoked: start over as a new visitor
        save(storageKey, visitor);
        return startSession();
      }
      setTransport("offline");
      if (error.status !== 403 && error.status !== 404) setTimeout(startSession, 10000);
      else status.textContent = "Chat unavailable: " + error.message;
    });
  }

  // ---- transports ----
  function connect() {
    if (state.transport === "websocket" || state.transport === "rest" || state.socket) return;
    if (!("WebSocket" in window)) return startPolling();
    openSocket(false);
  }

  function openSocket(upgrading) {
    var socket;
    try {
      socket = new WebSocket(socketUrl);
    } catch (e) {
      return socketFailed(upgrading);
    }
    state.socket = socket;
    state.socketReady = false;
    if (!upgrading) setTransport("connecting");
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "auth", token: visitor.token, after: state.cursor }));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      var wasReady = state.socketReady;
      if (state.socket === socket) {
        state.socket = null;
        state.socketReady = false;
      }
      if (event.code === 4401) return restart();
      if (event.code === 4403 || event.code === 4404 || event.code === 4409) {
        setTransport("offline");
        status.textContent = "Chat unavailable (" + (event.reason || event.code) + ")";
        return;
      }
      if (wasReady) {
        state.socketFailures = 0;
        setTransport("connecting");
        setTimeout(function () { openSocket(false); }, 1000);
        return;
      }
      socketFailed(upgrading);
    };
  }

  function socketFailed(upgrading) {
    state.socket = null;
    if (upgrading) return; // still on REST; the next upgrade try is scheduled
    state.socketFailures += 1;
    if (state.socketFailures >= 2) return startPolling();
    setTimeout(function () { openSocket(false); }, 1000);
  }

  function restart() {
    visitor = {};
    save(storageKey, visitor);
    stopPolling();
    setTransport("idle");
    startSession();
  }

  function onFrame(frame) {
    if (frame.type === "ready") {
      stopPolling();
      state.socketReady = true;
      state.socketFailures = 0;
      setTransport("websocket");
      received(frame.messages, frame.cursor);
      flushPending();
      flushReceipts();
    } else if (frame.type === "message") {
      if (frame.client_id) settled(frame.client_id);
      render(frame.message);
    } else if (frame.type === "error") {
      failed(frame.client_id, frame.error);
    }
  }

  function received(messages, cursor) {
    if (cursor) state.cursor = cursor;
    (messages || []).forEach(render);
    markAllRead();
  }

  // REST: the same history endpoint the socket's catch-up reads, every few seconds.
  function startPolling() {
    stopPolling();
    setTransport("rest");
    poll();
    state.pollTimer = setInterval(poll, POLL_MS);
    state.upgradeTimer = setInterval(function () {
      if (!state.socket) openSocket(true);
    }, UPGRADE_MS);
    flushPending();
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    clearInterval(state.upgradeTimer);
    state.pollTimer = state.upgradeTimer = null;
  }

  function poll() {
    var query = state.cursor ? "?after=" + encodeURIComponent(state.cursor) : "";
    api("GET", "/messages" + query, null, true).then(function (page) {
      if (state.transport === "rest") received(page.messages, page.cursor);
    }, function (error) {
      if (error.status === 401) restart();
    });
  }

  // ---- sending: kept in localStorage until the server has it, retried with the same id ----
  function send(text) {
    var message = { client_id: uuid(), text: text, sent_at: new Date().toISOString() };
    pending.push(message);
    save(storageKey + ":pending", pending);
    visitor.chatted = true;
    save(storageKey, visitor);
    render({ id: message.client_id, author: "visitor", text: text, sent_at: message.sent_at, status: "pending" });
    if (state.transport === "idle") connect();
    else deliver(message);
  }

  function deliver(message) {
    var frame = { client_id: message.client_id, text: message.text };
    if (state.transport === "websocket" && state.socketReady) {
      state.socket.send(JSON.stringify(Object.assign({ type: "message" }, frame)));
    } else if (state.transport === "rest") {
      api("POST", "/messages", frame, true).then(function (result) {
        settled(message.client_id);
        render(result.message);
      }, function (error) {
        if (error.status === 401) return restart();
        failed(message.client_id, { code: error.code, message: error.message, status: error.status });
      });
    }
  }

  function flushPending() {
    pending.forEach(function (message) {
      render({ id: message.client_id, author: "visitor", text: message.text, sent_at: message.sent_at, status: "pending" });
      deliver(message);
    });
  }

  function settled(clientId) {
    pending = pending.filter(function (m) { return m.client_id !== clientId; });
    save(storageKey + ":pending", pending);
  }

  // A message the server refused for what it is (too long, malformed) is dropped from
  // the retries and shown as failed; anything else is retried on the next connection.
  function failed(clientId, error) {
    var code = error && error.code;
    var permanent = ["text_too_long", "validation_error", "malformed_json"].indexOf(code) >= 0;
    if (clientId && permanent) settled(clientId);
    if (clientId && shown[clientId]) shown[clientId].node.classList.add("failed");
    status.textContent = (error && error.message) || "Not sent";
  }

  // ---- interaction ----
  function setOpen(open) {
    state.open = open;
    panel.classList.toggle("open", open);
    if (open) {
      connect();
      markAllRead();
      input.focus();
    }
    setUnread(open ? 0 : unread);
  }

  launcher.addEventListener("click", function () { setOpen(!state.open); });
  closer.addEventListener("click", function () { setOpen(false); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || !visitor.token) return;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  document.addEventListener("visibilitychange", markAllRead);

  window.RelayDeskWidget = {
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    transport: function () { return state.transport; },
    visitorId: function () { return visitor.visitor_id || null; }
  };

  function mount() {
    document.body.appendChild(host);
    setTransport("idle");
    startSession().then(function () {
      if (script.getAttribute("data-open") === "true") setOpen(true);
    });
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
