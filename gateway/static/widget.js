// The relaydesk chat widget: one script tag on any site.
//
//   <script src="https://support.example.com/static/widget.js" data-tenant="acme" async></script>
//
// Optional attributes: data-title, data-topics="Sales,Billing,Support" (adds a topic
// select to the pre-chat form), data-prechat="off", data-open="true".
// The UI lives in a shadow root so the host page's CSS cannot reach it, every text is
// set with textContent (never HTML), and the socket resumes from the last log position.
(function () {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__relaydeskWidget) return;
  window.__relaydeskWidget = true;
  const base = new URL(script.src, location.href).origin;
  const config = {
    tenant: script.dataset.tenant,
    title: script.dataset.title || "Chat with us",
    topics: (script.dataset.topics || "").split(",").map((s) => s.trim()).filter(Boolean),
    prechat: script.dataset.prechat !== "off",
    open: script.dataset.open === "true",
  };
  if (!config.tenant) {
    console.error("relaydesk widget: data-tenant is required");
    return;
  }
  import(base + "/static/js/socket.js").then((lib) => new Widget(base, config, lib).mount());

  const STYLE = `
    :host { all: initial; }
    /* The host element itself can be styled by the page (its rules beat :host), so the font is set on our own boxes. */
    .bubble, .panel { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2330; text-align: left; }
    * { box-sizing: border-box; }
    .bubble { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0;
      background: #2f5bea; color: #fff; cursor: pointer; box-shadow: 0 6px 20px rgba(20,40,90,.3); z-index: 2147483000; }
    .bubble:focus-visible, button:focus-visible, textarea:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #9db4ff; outline-offset: 2px; }
    .bubble svg { width: 26px; height: 26px; fill: currentColor; }
    .badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px; border-radius: 10px; background: #e5484d; font-size: 12px; line-height: 20px; }
    .panel { position: fixed; right: 20px; bottom: 88px; width: 360px; max-width: calc(100vw - 24px); height: 540px; max-height: calc(100vh - 110px);
      background: #fff; border-radius: 14px; box-shadow: 0 12px 40px rgba(20,40,90,.25); display: flex; flex-direction: column; overflow: hidden; z-index: 2147483000; }
    .panel[hidden] { display: none; }
    header { background: #2f5bea; color: #fff; padding: 14px 16px; display: flex; align-items: center; gap: 8px; }
    header h2 { font-size: 16px; margin: 0; flex: 1; }
    /* Full white on the header blue (5.5:1): 12px text needs 4.5:1, which translucent text or buttons lose. */
    header .status { font-size: 12px; display: block; font-weight: 400; }
    header button { background: rgba(0,0,0,.2); color: #fff; border: 0; border-radius: 6px; padding: 5px 9px; cursor: pointer; font: inherit; font-size: 12px; }
    .log { flex: 1; overflow-y: auto; padding: 14px; display: flex; flex-direction: column; gap: 6px; background: #f6f8fc; }
    .earlier { align-self: center; background: #fff; border: 1px solid #c9d3e6; border-radius: 12px; padding: 4px 10px; cursor: pointer; font: inherit; font-size: 12px; color: #1f44c0; }
    .msg { max-width: 80%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; }
    .msg.customer { align-self: flex-end; background: #2f5bea; color: #fff; border-bottom-right-radius: 4px; }
    .msg.agent, .msg.connector { align-self: flex-start; background: #fff; border: 1px solid #e3e8f2; border-bottom-left-radius: 4px; }
    .msg .who { display: block; font-size: 11px; opacity: .7; margin-bottom: 2px; }
    .msg.pending { opacity: .6; }
    .system { align-self: center; font-size: 12px; color: #5b6578; text-align: center; padding: 2px 8px; }
    .receipt { align-self: flex-end; font-size: 11px; color: #5b6578; }
    .typing { font-size: 12px; color: #5b6578; padding: 0 16px 4px; min-height: 18px; }
    .notice { background: #fff7e6; border-top: 1px solid #f3e1b5; padding: 10px 14px; font-size: 13px; }
    .composer { display: flex; gap: 8px; border-top: 1px solid #e3e8f2; padding: 10px; }
    .composer textarea { flex: 1; resize: none; border: 1px solid #cfd6e4; border-radius: 8px; padding: 8px; font: inherit; height: 40px; }
    .primary { background: #2f5bea; color: #fff; border: 0; border-radius: 8px; padding: 8px 14px; cursor: pointer; font: inherit; }
    .primary:disabled { opacity: .5; cursor: default; }
    form.card { padding: 16px; display: flex; flex-direction: column; gap: 10px; overflow-y: auto; }
    form.card label { display: flex; flex-direction: column; gap: 4px; font-size: 13px; color: #39445a; }
    form.card input, form.card select, form.card textarea { border: 1px solid #cfd6e4; border-radius: 8px; padding: 8px; font: inherit; }
    .stars { display: flex; gap: 4px; }
    .stars button { font-size: 24px; background: none; border: 0; cursor: pointer; color: #c5cbd8; padding: 0 2px; }
    .stars button[aria-pressed="true"] { color: #f5a524; }
    [hidden] { display: none !important; }
  `;

  const STATE_EVENTS = new Set(["conversation.queued", "conversation.accepted", "conversation.transferred", "conversation.agent_disconnected", "conversation.agent_reconnected", "conversation.missed", "conversation.closed"]);

  class Widget {
    constructor(base, config, lib) {
      this.base = base;
      this.config = config;
      this.lib = lib;
      this.storageKey = `relaydesk:${config.tenant}`;
      this.shown = new Set(); // message ids already on screen: history and live events meet here
      this.agentAway = false; // the agent lost their connection and has not written since
      this.conversationId = null;
      this.status = "new";
      this.visitorEmail = null; // from the pre-chat form: the offline form asks only when we have none
      this.unread = 0;
      this.lastOwnMessage = null;
      this.failedConnects = 0;
      this.oldestPosition = null; // of the oldest message shown: where "Earlier messages" reads back from
      this.pageSize = 0; // the first page's length (messages_on_enter): "Earlier messages" reads pages of it
      this.earlierNodes = null; // while an earlier page is drawn: its nodes, to go above the rest
    }

    mount() {
      const host = document.createElement("div");
      host.id = "relaydesk-widget";
      document.body.appendChild(host);
      this.root = host.attachShadow({ mode: "open" });
      this.root.innerHTML = this.template();
      const $ = (sel) => this.root.querySelector(sel);
      this.el = {
        bubble: $(".bubble"), badge: $(".badge"), panel: $(".panel"), status: $(".status"), end: $(".end"), minimize: $(".minimize"),
        log: $(".log"), earlier: $(".earlier"), typing: $(".typing"), notice: $(".notice"), prechat: $(".prechat"), rating: $(".rating"), offline: $(".offline"),
        composer: $(".composer"), input: $(".composer textarea"), send: $(".composer .primary"), stars: $(".stars"),
      };
      this.bind();
      // Open as the customer left it: a reload or the shop's next page mid-chat must not fold
      // the conversation away behind the bubble (data-open="true" opens it the first time).
      const left = this.store("open");
      if (left === "1" || (left === null && this.config.open)) this.toggle(true, { restoring: true });
      this.startSession().catch((error) => (error.status === 403 ? this.showBlocked() : this.setStatus(`Chat unavailable: ${error.message}`)));
    }

    template() {
      const topics = this.config.topics.length
        ? `<label>Topic<select name="topic">${this.config.topics.map(() => "<option></option>").join("")}</select></label>` : "";
      return `<style>${STYLE}</style>
        <button class="bubble" aria-label="Open chat" aria-expanded="false">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>
          <span class="badge" hidden></span></button>
        <section class="panel" role="dialog" aria-label="Chat" hidden>
          <header><h2><span class="title"></span><span class="status" role="status"></span></h2>
            <button class="end" type="button" hidden>End chat</button>
            <button class="minimize" type="button" aria-label="Minimize chat">&#x2212;</button></header>
          <form class="card prechat" hidden>
            <p>Hi! Tell us who you are and we will connect you with an agent.</p>
            <label>Name<input name="name" autocomplete="name" maxlength="200" required></label>
            <label>Email<input name="email" type="email" autocomplete="email" maxlength="200"></label>
            ${topics}
            <button class="primary" type="submit">Start chat</button></form>
          <div class="log" role="log" aria-live="polite" aria-label="Messages" tabindex="0"><button type="button" class="earlier" hidden>Earlier messages</button></div>
          <div class="typing" aria-live="polite"></div>
          <div class="notice" hidden></div>
          <form class="card offline" hidden>
            <label class="offline-email">Where can we reach you?<input name="email" type="email" autocomplete="email" maxlength="200" pattern="[^@\\s]+@[^@\\s]+\\.[^@\\s]+" title="An address like name@example.com"></label>
            <label>Message for us<textarea name="message" maxlength="8000" rows="3" required></textarea></label>
            <button class="primary" type="submit">Leave message</button></form>
          <form class="card rating" hidden>
            <p>How did we do?</p>
            <div class="stars" role="group" aria-label="Rating">${[1, 2, 3, 4, 5].map((n) => `<button type="button" data-score="${n}" aria-label="${n} star${n > 1 ? "s" : ""}" aria-pressed="false">&#9733;</button>`).join("")}</div>
            <label>Comment<textarea name="comment" maxlength="2000" rows="2"></textarea></label>
            <button class="primary" type="submit" disabled>Send rating</button>
            <button class="primary new-chat" type="button">Start a new chat</button></form>
          <form class="composer" hidden>
            <textarea aria-label="Your message" placeholder="Type a message…" maxlength="8000"></textarea>
            <button class="primary" type="submit">Send</button></form>
        </section>`;
    }

    bind() {
      this.root.querySelector(".title").textContent = this.config.title;
      this.config.topics.forEach((topic, i) => { this.root.querySelectorAll("select[name=topic] option")[i].textContent = topic; });
      this.el.bubble.addEventListener("click", () => this.toggle());
      this.el.minimize.addEventListener("click", () => this.toggle(false));
      this.el.end.addEventListener("click", () => this.endChat());
      this.el.earlier.addEventListener("click", () => this.loadEarlier());
      this.el.prechat.addEventListener("submit", (e) => { e.preventDefault(); this.start(new FormData(this.el.prechat)); });
      this.el.composer.addEventListener("submit", (e) => { e.preventDefault(); this.sendMessage(); });
      this.el.input.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.sendMessage(); }
      });
      this.el.input.addEventListener("input", () => this.typing());
      this.el.stars.addEventListener("click", (e) => this.pickScore(e.target.closest("button")));
      this.el.rating.addEventListener("submit", (e) => { e.preventDefault(); this.rate(); });
      this.el.offline.addEventListener("submit", (e) => { e.preventDefault(); this.leaveMessage(); });
      this.el.rating.querySelector(".new-chat").addEventListener("click", () => this.newChat());
      // Escape closes the chat panel, as it does any dialog, and gives focus back to the bubble.
      this.el.panel.addEventListener("keydown", (e) => {
        if (e.key !== "Escape") return;
        e.stopPropagation();
        this.toggle(false);
        this.el.bubble.focus();
      });
    }

    // `restoring`: opened by the page's load, not by the customer: focus stays where the page
    // puts it (a field of the shop's own must not lose it to the chat on every page).
    toggle(open = this.el.panel.hidden, { restoring = false } = {}) {
      this.el.panel.hidden = !open;
      this.store("open", open ? "1" : "0");
      this.el.bubble.setAttribute("aria-expanded", String(open));
      this.el.bubble.setAttribute("aria-label", open ? "Close chat" : "Open chat");
      if (open) {
        this.unread = 0;
        this.renderBadge();
        this.markRead();
        if (!restoring) (this.el.composer.hidden ? this.el.prechat.querySelector("input") : this.el.input)?.focus();
      }
    }

    store(name, value) {
      if (value === undefined) return localStorage.getItem(`${this.storageKey}:${name}`);
      if (value === null) localStorage.removeItem(`${this.storageKey}:${name}`);
      else localStorage.setItem(`${this.storageKey}:${name}`, value);
    }

    async openSession() {
      // 503: the server could not learn whether this visitor has a live chat. Starting
      // afresh would open a second conversation beside it, so ask again, backing off.
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.lib.api(this.base, "/api/visitor/session", { method: "POST", body: { tenant: this.config.tenant, visitor_token: this.store("token") } });
        } catch (error) {
          if (error.status !== 503 || attempt >= 8) throw error;
          this.setStatus("Connecting…");
          await new Promise((resume) => setTimeout(resume, 250 + this.lib.fullJitterDelay(attempt, 500, 8000)));
        }
      }
    }

    async startSession() {
      const session = await this.openSession();
      this.token = session.visitor_token;
      this.store("token", this.token);
      this.conversationId = session.conversation_id || null;
      this.socket = new this.lib.RelaySocket({
        url: this.base.replace(/^http/, "ws") + "/ws", token: () => this.token, storage: localStorage, storageKey: this.storageKey,
        onEvent: (event, position) => this.onEvent(event, false, position), onState: (state, detail) => this.onSocketState(state, detail), onResync: () => this.loadHistory(),
      }).start();
      if (this.conversationId) {
        this.showConversation();
        this.restoreState();
        await this.loadHistory();
      } else if (this.config.prechat) {
        this.showPrechat();
      } else {
        this.start(new FormData());
      }
      for (const frame of this.socket.pendingFrames()) if (frame.op === "send") this.renderMessage({ message_id: frame.id, body: frame.body, author_kind: "customer", client_ts_ms: frame.client_ts_ms }, true);
    }

    async loadHistory() {
      const id = this.conversationId;
      if (!id) return;
      // Up to what the socket has seen (its position survives the reload): history may lag
      // behind the log, and a message it misses would never show, since the socket resumes
      // after that position. The server waits for history; "behind", it is asked again.
      const read = this.messagesOf(id);
      const items = await this.lib.readMessagesUpTo(read, this.socket.position, { wanted: () => this.conversationId === id });
      if (this.conversationId !== id) return;
      // "Earlier messages" only when there are some before the oldest shown (a page does not
      // say so: a chat of two messages answers one too), asked before drawing, so the chat
      // and the button appear together. A chat paged back further keeps what it knows.
      const oldest = items.length > 0 && (this.oldestPosition === null || items[0].position < this.oldestPosition);
      const more = oldest && (await this.earlierExists(read, items[0].position));
      if (this.conversationId !== id) return;
      if (oldest && (this.oldestPosition === null || items[0].position < this.oldestPosition)) {
        this.oldestPosition = items[0].position;
        this.pageSize = items.length;
        this.el.earlier.hidden = !more;
      }
      for (const item of items) this.onEvent(item.event, true, item.position);
    }

    /** `read(query)` of a conversation's messages (socket.js readMessagesUpTo). */
    messagesOf(id) {
      return (query) => this.lib.api(this.base, `/api/conversations/${encodeURIComponent(id)}/messages${query}`, { token: this.token });
    }

    async earlierExists(read, position) {
      try {
        return await this.lib.hasMessagesBefore(read, position);
      } catch {
        return true; // not known: the button, and an empty page read with it removes it
      }
    }

    // The page before the oldest message shown (the first read has the tenant's
    // messages_on_enter, the latest ones): drawn above what is there, the view kept still.
    // One more is asked for, to learn whether the page reaches the chat's first message.
    async loadEarlier() {
      const id = this.conversationId;
      const position = this.oldestPosition;
      if (!id || position === null) return;
      const log = this.el.log;
      const height = log.scrollHeight;
      let page;
      try {
        page = await this.lib.readPageBefore(this.messagesOf(id), position, this.pageSize);
      } catch {
        return this.showNotice("Earlier messages could not be loaded; try again in a moment.");
      }
      if (this.conversationId !== id || this.oldestPosition !== position) return; // a new chat, or a page drawn meanwhile
      const { items, more } = page;
      this.el.earlier.hidden = !more;
      if (!items.length) return;
      this.oldestPosition = items[0].position;
      this.earlierNodes = [];
      try {
        for (const item of items) this.onEvent(item.event, true, item.position);
      } finally {
        this.el.earlier.after(...this.earlierNodes);
        this.earlierNodes = null;
      }
      log.scrollTop = log.scrollHeight - height;
    }

    showPrechat() {
      this.el.offline.hidden = true;
      this.el.prechat.hidden = false;
      this.el.composer.hidden = true;
      this.el.rating.hidden = true;
      this.el.end.hidden = true;
      this.setStatus("We typically reply in a few minutes");
    }

    showConversation() {
      this.el.prechat.hidden = true;
      this.el.composer.hidden = this.status === "missed"; // a missed chat has the offline form (or, over the limit, nothing) instead
      this.el.rating.hidden = true;
      this.el.end.hidden = false;
    }

    async start(form) {
      const visitor = { page_url: location.href.slice(0, 2000) };
      for (const field of ["name", "email"]) if (form.get(field)) visitor[field] = String(form.get(field));
      this.visitorEmail = visitor.email || null;
      const topic = form.get("topic");
      this.el.prechat.querySelector("button").disabled = true;
      try {
        const ack = await this.socket.command("start", { visitor, ...(topic ? { topic: String(topic) } : {}) });
        this.conversationId = ack.conversation_id;
        this.showConversation();
        // The decision's events may arrive before its ack: never overwrite what they said.
        if (this.status === "new") {
          this.status = "queued";
          this.setStatus("Connecting you with an agent…");
        }
        this.el.input.focus();
      } catch (error) {
        this.setStatus(`Could not start the chat: ${error.message}`);
      } finally {
        this.el.prechat.querySelector("button").disabled = false;
      }
    }

    sendMessage() {
      const body = this.el.input.value.trim();
      if (!body || !this.conversationId) return;
      this.el.input.value = "";
      this.sendBody(body);
    }

    sendBody(body) {
      const id = this.lib.newKey();
      // Shown at once (pending); the id is the idempotency key, so a resend after a
      // reconnect is the same message and the server's event replaces this bubble.
      const sentAt = Date.now();
      this.renderMessage({ message_id: id, body, author_kind: "customer", client_ts_ms: sentAt }, true);
      this.stopTyping(false); // the message itself ends "typing…" on the agent's side
      // Ordered: one message in flight, the next once it is acked, so the conversation
      // keeps the order they were typed in, rate-limit refusals and reconnects included.
      this.socket.command("send", { conversation_id: this.conversationId, body, client_ts_ms: sentAt }, { persist: true, ordered: true, id })
        .then((ack) => this.confirm(id, ack.message_id))
        .catch((error) => this.failed(id, error));
    }

    confirm(key, messageId) {
      const pending = this.root.querySelector(`[data-key="${key}"]`);
      this.shown.add(messageId);
      if (!pending) return;
      pending.classList.remove("pending");
      pending.dataset.id = messageId;
    }

    failed(key, error) {
      const pending = this.root.querySelector(`[data-key="${key}"]`);
      if (pending) pending.remove();
      this.showNotice(`Your message was not sent: ${error.message}`);
    }

    typing() {
      if (!this.conversationId || !this.socket.connected) return;
      const now = Date.now();
      // "Still typing" every 3 s while it shows; after a message ended it, again at most once
      // a second: a customer sending message after message stays well inside the gateway's
      // typing budget (5 a second), and signals never cost a message its place.
      const since = now - (this.typingSentAt || 0);
      if ((this.typingShown && since > 3000) || (!this.typingShown && since > 1000)) {
        this.typingSentAt = now;
        this.typingShown = true;
        this.socket.transient("typing", { conversation_id: this.conversationId, typing: true });
      }
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.stopTyping(), 4000);
    }

    stopTyping(signal = true) {
      clearTimeout(this.typingTimer);
      if (signal && this.typingShown && this.conversationId) this.socket.transient("typing", { conversation_id: this.conversationId, typing: false });
      this.typingShown = false;
    }

    // The conversation's last state event (queued, accepted, …) is kept next to the log
    // position the socket resumes from: a reload shows the status it had (history holds
    // messages only), and the events after that position, replayed on resume, update it.
    rememberState(event) {
      const { conversation_id, position, agent_name, reason } = event.data || {};
      this.store("state", JSON.stringify({ type: event.type, data: { conversation_id, position, agent_name, reason } }));
    }

    restoreState() {
      try {
        const saved = JSON.parse(this.store("state") || "null");
        if (saved && saved.data.conversation_id === this.conversationId) this.onEvent(saved, true);
      } catch {
        // Unreadable (another version's format): the next state event sets it again.
      }
    }

    // `position`: the event's place in the log (the socket frame's, or the history item's);
    // messages are drawn in that order whichever of the two brought them first.
    onEvent(event, fromHistory = false, position = null) {
      const data = event.data || {};
      if (data.conversation_id && this.conversationId && data.conversation_id !== this.conversationId) return;
      if (STATE_EVENTS.has(event.type) && data.conversation_id) this.rememberState(event);
      switch (event.type) {
        case "message.sent":
          // An agent writing live is back, whatever the last state event said.
          if (this.agentAway && data.author_kind === "agent" && !fromHistory) {
            this.agentAway = false;
            this.setStatus(`${data.author_name || "An agent"} is here to help`);
          }
          return this.renderMessage(data, false, fromHistory, position);
        case "message.attachment_sent":
          return this.renderMessage({ ...data, body: `📎 ${data.filename}` }, false, fromHistory, position);
        case "message.system":
          if (!this.shown.has(data.message_id)) { this.shown.add(data.message_id); this.renderSystem(data.text, position); }
          return;
        case "conversation.requested":
          if (!this.conversationId) this.conversationId = data.conversation_id;
          return;
        case "conversation.queued":
          this.status = "queued";
          return this.setStatus(data.position > 0 ? `You are number ${data.position} in the queue` : "Connecting you with an agent…");
        case "conversation.accepted":
        case "conversation.transferred":
          this.status = "engaged";
          this.agentAway = false;
          this.hideNotice();
          if (!this.el.offline.hidden) { this.el.offline.hidden = true; this.el.composer.hidden = false; } // picked up after all
          return this.setStatus(`${data.agent_name || "An agent"} is here to help`);
        case "conversation.agent_disconnected":
          this.agentAway = true;
          return this.setStatus("The agent lost connection; please hold on");
        case "conversation.agent_reconnected":
          this.agentAway = false;
          return this.setStatus(`${data.agent_name || "Your agent"} is here to help`);
        case "conversation.missed":
          this.status = "missed";
          if (data.reason === "over_limit") {
            this.el.composer.hidden = true;
            this.setStatus("Chat unavailable");
            return this.showNotice("This chat is unavailable right now. Please try again later or contact us another way.");
          }
          this.setStatus("No agent available");
          this.showNotice("No agent is available right now. Leave us a message and we will get back to you by email.");
          return this.showOfflineForm();
        case "conversation.closed":
          this.status = "closed";
          return this.showRating();
        case "conversation.rated":
          return this.thankForRating();
        case "typing.changed":
          this.el.typing.textContent = data.typing ? "Agent is typing…" : "";
          return;
        case "message.read":
          if (data.reader_kind === "agent") this.renderReceipt();
          return;
        default:
          return;
      }
    }

    renderMessage(data, pending = false, fromHistory = false, position = null) {
      if (!pending) {
        if (this.shown.has(data.message_id)) {
          // Our own message, confirmed by its ack before its event came: it learns its place now.
          const confirmed = this.root.querySelector(`.msg[data-id="${CSS.escape(data.message_id)}"]`);
          if (confirmed && !confirmed.dataset.position && position !== null) confirmed.dataset.position = String(position);
          return;
        }
        this.shown.add(data.message_id);
        // Our own message, shown as pending when typed: the event (which may come before
        // the ack) adopts that bubble, matched by the client timestamp it carries.
        const mine = data.client_ts_ms && this.root.querySelector(`.pending[data-ts="${Number(data.client_ts_ms)}"]`);
        if (mine) {
          mine.classList.remove("pending");
          mine.dataset.id = data.message_id;
          if (position !== null) mine.dataset.position = String(position);
          return;
        }
      }
      const bubble = document.createElement("div");
      bubble.className = `msg ${data.author_kind}` + (pending ? " pending" : "");
      if (pending) {
        bubble.dataset.key = data.message_id;
        bubble.dataset.ts = String(data.client_ts_ms);
      } else {
        bubble.dataset.id = data.message_id;
      }
      if (data.author_kind !== "customer") {
        const who = document.createElement("span");
        who.className = "who";
        who.textContent = data.author_name || "Agent";
        bubble.appendChild(who);
      }
      bubble.appendChild(document.createTextNode(data.body)); // text, never HTML
      this.place(bubble, position);
      if (this.earlierNodes) return; // read receipts and the unread badge follow the latest messages only
      // A history item drawn under a message that came live is not the latest one of its kind.
      if (data.author_kind === "customer") {
        if (this.latestOfItsKind(bubble, ".msg.customer")) this.lastOwnMessage = bubble;
      } else if (this.latestOfItsKind(bubble, ".msg:not(.customer)")) {
        this.el.typing.textContent = "";
        this.lastAgentMessageId = data.message_id;
        if (!fromHistory) this.notifyIncoming();
      }
    }

    renderSystem(text, position = null) {
      const line = document.createElement("div");
      line.className = "system";
      line.textContent = text;
      this.place(line, position);
    }

    renderReceipt() {
      this.root.querySelectorAll(".receipt").forEach((r) => r.remove());
      if (!this.lastOwnMessage) return;
      const receipt = document.createElement("div");
      receipt.className = "receipt";
      receipt.textContent = "Read";
      // at its message's place: a message after it in the log goes below the receipt
      if (this.lastOwnMessage.dataset.position) receipt.dataset.position = this.lastOwnMessage.dataset.position;
      this.lastOwnMessage.after(receipt);
    }

    // In log order, not in the order they arrived: after a reload the socket resumes at
    // once and a live message can come before the history answer, whose messages belong
    // above it. A node without a position (a message of ours not on the log yet) goes last,
    // since whatever it becomes on the log comes after every event seen so far.
    place(node, position) {
      if (position !== null && position !== undefined) node.dataset.position = String(position);
      if (this.earlierNodes) return this.earlierNodes.push(node); // an earlier page, drawn above
      const log = this.el.log;
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      if (!node.dataset.position) log.appendChild(node);
      else {
        // after the last node placed before it (nodes without a position are passed over)
        let after = this.el.earlier;
        for (let child = log.lastElementChild; child && child !== this.el.earlier; child = child.previousElementSibling) {
          if (child.dataset.position && Number(child.dataset.position) < position) { after = child; break; }
        }
        after.after(node);
      }
      if (atBottom || node.classList.contains("customer")) log.scrollTop = log.scrollHeight;
    }

    latestOfItsKind(node, selector) {
      for (let next = node.nextElementSibling; next; next = next.nextElementSibling) if (next.matches(selector)) return false;
      return true;
    }

    notifyIncoming() {
      if (this.el.panel.hidden) {
        this.unread += 1;
        this.renderBadge();
      } else {
        this.markRead();
      }
    }

    markRead() {
      if (!this.lastAgentMessageId || !this.conversationId || this.readUpTo === this.lastAgentMessageId) return;
      this.readUpTo = this.lastAgentMessageId;
      this.socket.transient("read", { conversation_id: this.conversationId, message_id: this.lastAgentMessageId });
    }

    renderBadge() {
      this.el.badge.hidden = this.unread === 0;
      this.el.badge.textContent = String(this.unread);
    }

    setStatus(text) {
      this.el.status.textContent = text;
    }

    showNotice(text) {
      this.el.notice.textContent = text;
      this.el.notice.hidden = false;
    }

    hideNotice() {
      this.el.notice.hidden = true;
    }

    onSocketState(state) {
      if (state === "reconnecting") {
        this.showNotice("Connection lost, reconnecting… Messages you send now will be delivered when we are back.");
        // A browser reports a refused upgrade (this site no longer allowed) as a dropped
        // connection: after a few in a row, ask the session endpoint, which says so.
        if (++this.failedConnects === 3) this.checkSite();
      } else if (state === "online") {
        this.failedConnects = 0;
        if (this.status !== "missed") this.hideNotice();
      } else if (state === "refused") this.showBlocked();
    }

    async checkSite() {
      try {
        await this.lib.api(this.base, "/api/visitor/session", { method: "POST", body: { tenant: this.config.tenant, visitor_token: this.token } });
      } catch (error) {
        if (error.status === 403) this.showBlocked();
      }
    }

    showBlocked() {
      // The tenant's allowed sites do not include this page: nothing here can work, so no
      // form and no reconnecting, just the reason (docs/browser.md).
      if (this.socket) this.socket.stop();
      for (const part of [this.el.prechat, this.el.composer, this.el.offline, this.el.rating, this.el.end]) part.hidden = true;
      this.setStatus("Chat unavailable");
      this.showNotice("This chat is not available on this site.");
    }

    async endChat() {
      if (!this.conversationId || this.status === "closed") return;
      try {
        await this.socket.command("close", { conversation_id: this.conversationId });
      } catch (error) {
        this.showNotice(`Could not end the chat: ${error.message}`);
      }
    }

    showOfflineForm() {
      // The chat stays a missed conversation: what is left here is answered later, by email.
      const askEmail = !this.visitorEmail;
      this.el.offline.querySelector(".offline-email").hidden = !askEmail;
      this.el.offline.querySelector("input[name=email]").required = askEmail;
      this.el.composer.hidden = true;
      this.el.offline.hidden = false;
    }

    async leaveMessage() {
      const form = new FormData(this.el.offline);
      const body = String(form.get("message") || "").trim();
      if (!body || !this.conversationId) return;
      const button = this.el.offline.querySelector("button");
      button.disabled = true;
      try {
        if (!this.visitorEmail) {
          const email = String(form.get("email") || "").trim();
          try {
            await this.socket.command("contact", { conversation_id: this.conversationId, email });
          } catch (error) {
            // the server's rule for an address, said as a person would (not its pattern)
            if (error.code === "invalid_payload") throw new Error("please check the e-mail address (like name@example.com)");
            throw error;
          }
          this.visitorEmail = email;
        }
        this.sendBody(body);
        this.el.offline.reset();
        this.el.offline.hidden = true;
        this.el.composer.hidden = false; // more can still be added to the same conversation
        this.showNotice(`Thanks! We will get back to you at ${this.visitorEmail}.`); // textContent: shown as text
      } catch (error) {
        this.showNotice(`Your message was not sent: ${error.message}`);
      } finally {
        button.disabled = false;
      }
    }

    showRating() {
      this.el.offline.hidden = true;
      this.stopTyping();
      this.el.composer.hidden = true;
      this.el.end.hidden = true;
      this.el.rating.hidden = false;
      // The card takes room from the log: keep its end (the agent's last words) in view.
      this.el.log.scrollTop = this.el.log.scrollHeight;
      this.el.typing.textContent = "";
      this.setStatus("Chat ended");
    }

    pickScore(button) {
      if (!button) return;
      this.score = Number(button.dataset.score);
      this.el.stars.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.score) <= this.score)));
      this.el.rating.querySelector("[type=submit]").disabled = false;
    }

    async rate() {
      const comment = this.el.rating.querySelector("textarea").value.trim();
      try {
        await this.socket.command("rate", { conversation_id: this.conversationId, score: this.score, ...(comment ? { comment } : {}) });
        this.thankForRating();
      } catch (error) {
        if (error.code === "already_rated") this.thankForRating();
        else this.showNotice(`Could not send the rating: ${error.message}`);
      }
    }

    thankForRating() {
      this.el.rating.querySelector("p").textContent = "Thank you for your feedback!";
      this.el.stars.hidden = true;
      this.el.rating.querySelector("label").hidden = true;
      this.el.rating.querySelector("[type=submit]").hidden = true;
    }

    newChat() {
      this.conversationId = null;
      this.store("state", null);
      this.status = "new";
      this.shown.clear();
      this.el.log.replaceChildren(this.el.earlier);
      this.el.earlier.hidden = true;
      this.oldestPosition = null;
      this.pageSize = 0;
      // The rating card is the same element for the next chat: nothing of this one's rating stays.
      this.score = null;
      this.el.stars.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", "false"));
      this.el.rating.querySelector("textarea").value = "";
      this.el.rating.querySelector("[type=submit]").disabled = true;
      this.el.stars.hidden = false;
      this.el.rating.querySelector("label").hidden = false;
      this.el.rating.querySelector("[type=submit]").hidden = false;
      this.el.rating.querySelector("p").textContent = "How did we do?";
      this.hideNotice();
      this.showPrechat();
    }
  }
})();
