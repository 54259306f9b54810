// A resumable client for the relaydesk websocket protocol (docs/protocol.md).
//
// Shared by the widget and the console. It keeps the last log position it saw and
// reconnects with full-jitter backoff, resuming from that position, so a dropped
// connection or a gateway restart neither loses nor repeats events. Commands carry a
// client-chosen idempotency key and stay in an outbox until the server acks them, so a
// message typed while offline is sent once when the connection is back. Ordered commands
// (a customer's messages) go one at a time, oldest first: the server executes frames as
// they arrive, so two in flight may reach the log in either order (docs/protocol.md,
// "Keeping the order of messages").

export function fullJitterDelay(attempt, baseMs = 300, capMs = 10000) {
  // AWS "Exponential Backoff And Jitter": sleep = random(0, min(cap, base * 2^attempt)).
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}

export function newKey() {
  // crypto.randomUUID needs a secure context; getRandomValues works on any host page.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const NOT_RESUMABLE = new Set([4403, 1008]);
// Errors that mean "not now": the command stays in the outbox and is resent, same id.
const RETRYABLE = new Set(["rate_limited", "unavailable"]);
const AUTH_EXPIRED = 4401;
// resume_from was refused (not a position of this log, e.g. after the system was reset):
// forget it, reload state as on a resync, and reconnect for live events.
const BAD_RESUME_FROM = 4400;
// A connection can die without a close (a laptop lid, a dropped Wi-Fi, a NAT forgetting it):
// nothing arrives and nothing says so. After HEARTBEAT_MS without a frame the client asks
// (`ping`, answered with `pong`); a ping unanswered (no frame at all) for ANSWER_WITHIN_MS
// gives the connection up and reconnects, so the page says "reconnecting" instead of
// looking live. Judged by an unanswered ping, not by silence alone: a background tab's
// timers may run once a minute, and a quiet healthy socket must not be dropped for it.
export const HEARTBEAT_MS = 15000;
export const ANSWER_WITHIN_MS = 15000;
const WATCH_EVERY_MS = 5000;

export class RelaySocket {
  /**
   * @param {object} options
   * @param {string} options.url        ws(s)://host/ws
   * @param {() => string} options.token a function so a refreshed token is picked up
   * @param {Storage} [options.storage] where the position and the outbox survive reloads
   * @param {string} [options.storageKey]
   * @param {(event: object, position: number) => void} options.onEvent
   * @param {(state: string, detail?: object) => void} [options.onState]
   * @param {() => void} [options.onResync]
   * @param {() => Promise<boolean>} [options.onAuthExpired] refresh the token; false stops
   */
  constructor(options) {
    this.options = options;
    this.storage = options.storage || null;
    this.key = options.storageKey || "relaydesk";
    this.position = this._load("pos", null);
    // id -> {frame, resolve, reject, persist, retry, ordered, sent, waiting}; a Map keeps the
    // order commands were made in, which is the order ordered ones are sent in.
    this.outbox = new Map();
    for (const saved of this._load("outbox", [])) {
      const [frame, ordered] = saved.frame ? [saved.frame, saved.ordered] : [saved, false]; // older pages saved bare frames
      this.outbox.set(frame.id, { frame, persist: true, ordered: Boolean(ordered) });
    }
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.session = null;
  }

  start() {
    this.stopped = false;
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => this._checkAlive(), WATCH_EVERY_MS);
    this._connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    if (this.ws) this.ws.close(1000);
  }

  /** Ping a quiet connection; give up one that stayed silent (see HEARTBEAT_MS). */
  _checkAlive() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    const unanswered = this.pingedAt !== null && this.lastHeard < this.pingedAt;
    if (unanswered && now - this.pingedAt >= ANSWER_WITHIN_MS) {
      ws.onclose = null; // its own close may come much later, or never: this is it
      ws.onmessage = null;
      ws.close(4000);
      this._closed(ws, 1006);
    } else if (!unanswered && now - this.lastHeard >= HEARTBEAT_MS) {
      this.pingedAt = now;
      ws.send(JSON.stringify({ op: "ping" }));
    }
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.session);
  }

  /**
   * Send a command; resolves with the ack once the server made it durable.
   * `retry: false` rejects on `rate_limited` / `unavailable` instead of resending: for a
   * person waiting on a dialog, and for `transfer`, whose `unavailable` means "nobody can
   * take it" and gets the same answer however often the same key is sent.
   * `ordered: true` queues it behind the earlier ordered commands: it is sent once they are
   * settled, so the log holds them in the order they were made, refusals and resends included.
   */
  command(op, fields = {}, { persist = false, id = newKey(), retry = true, ordered = false } = {}) {
    const frame = { op, id, ...fields };
    return new Promise((resolve, reject) => {
      this.outbox.set(id, { frame, resolve, reject, persist, retry, ordered });
      if (persist) this._saveOutbox();
      this._flush();
    });
  }

  /** Fire-and-forget frames (typing) are not worth replaying after a reconnect. */
  transient(op, fields = {}) {
    if (this.connected) this.ws.send(JSON.stringify({ op, id: newKey(), ...fields }));
  }

  pendingFrames() {
    return [...this.outbox.values()].map((entry) => entry.frame);
  }

  _connect() {
    if (this.stopped) return;
    const params = new URLSearchParams({ token: this.options.token() });
    if (this.position !== null && this.position !== undefined) params.set("resume_from", String(this.position));
    this._state("connecting");
    const ws = new WebSocket(`${this.options.url}?${params}`);
    this.ws = ws;
    this.lastHeard = Date.now();
    this.pingedAt = null;
    ws.onmessage = (message) => {
      this.lastHeard = Date.now();
      this._receive(message.data);
    };
    ws.onclose = (close) => this._closed(ws, close.code);
  }

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.t === "hello") {
      this.session = frame.session;
      this.attempt = 0;
      if (this.position === null || this.position === undefined) this._setPosition(frame.position);
      // A new connection: everything in the outbox is unsent on it. Marked before the state
      // callbacks run: a command they send now is sent once, not sent and then marked unsent
      // and sent again by the flush below (the console's status did that on every reconnect).
      for (const entry of this.outbox.values()) entry.sent = false;
      this._state("online", frame.session);
      this._flush();
    } else if (frame.t === "event") {
      if (this.position !== null && frame.position <= this.position) return; // seen already
      this._setPosition(frame.position);
      this.options.onEvent(frame.event, frame.position);
    } else if (frame.t === "ack") {
      this._settle(frame.id, (entry) => entry.resolve && entry.resolve(frame));
    } else if (frame.t === "error") {
      if (frame.id && RETRYABLE.has(frame.code) && this.outbox.get(frame.id)?.retry !== false) this._retryLater(frame.id, frame.retry_after_ms);
      else if (frame.id) this._settle(frame.id, (entry) => entry.reject && entry.reject(Object.assign(new Error(frame.message), { code: frame.code })));
      else this._state("error", frame);
    } else if (frame.t === "resync") {
      this._setPosition(null);
      if (this.options.onResync) this.options.onResync();
    }
  }

  /** Send what may go now: every unordered command not sent on this connection, and the
   * oldest ordered one once nothing ordered is in flight or waiting to be resent. */
  _flush() {
    if (!this.connected) return;
    let orderedBusy = false;
    for (const entry of this.outbox.values()) {
      if (entry.ordered) {
        if (orderedBusy) continue;
        orderedBusy = true; // the oldest ordered entry: sent, in flight or waiting, it blocks the rest
      }
      if (entry.sent || entry.waiting) continue;
      entry.sent = true;
      this.ws.send(JSON.stringify(entry.frame));
    }
  }

  _retryLater(id, retryAfterMs) {
    const entry = this.outbox.get(id);
    if (!entry) return;
    entry.retries = (entry.retries || 0) + 1;
    entry.sent = false;
    entry.waiting = true;
    // The server says when a resend can be taken (a rate limit); otherwise back off.
    const delay = retryAfterMs > 0 ? retryAfterMs + Math.random() * 50 : fullJitterDelay(entry.retries, 500, 8000);
    setTimeout(() => {
      entry.waiting = false;
      this._flush();
    }, delay);
  }

  _settle(id, callback) {
    const entry = this.outbox.get(id);
    if (!entry) return;
    this.outbox.delete(id);
    if (entry.persist) this._saveOutbox();
    callback(entry);
    this._flush(); // the next ordered command may go
  }

  async _closed(ws, code) {
    if (ws !== this.ws) return;
    this.session = null;
    if (this.stopped) return this._state("stopped");
    if (NOT_RESUMABLE.has(code)) return this._state("refused", { code });
    if (code === BAD_RESUME_FROM) {
      this._setPosition(null);
      if (this.options.onResync) this.options.onResync();
    }
    if (code === AUTH_EXPIRED && this.options.onAuthExpired) {
      const renewed = await this.options.onAuthExpired();
      if (!renewed) return this._state("refused", { code });
    }
    const delay = fullJitterDelay(this.attempt++);
    this._state("reconnecting", { code, delay });
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  _state(state, detail) {
    if (this.options.onState) this.options.onState(state, detail);
  }

  _setPosition(position) {
    this.position = position;
    this._save("pos", position);
  }

  _saveOutbox() {
    this._save("outbox", [...this.outbox.values()].filter((e) => e.persist).map((e) => ({ frame: e.frame, ordered: Boolean(e.ordered) })));
  }

  _load(name, fallback) {
    if (!this.storage) return fallback;
    try {
      const raw = this.storage.getItem(`${this.key}:${name}`);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  }

  _save(name, value) {
    if (!this.storage) return;
    try {
      this.storage.setItem(`${this.key}:${name}`, JSON.stringify(value));
    } catch {
      // Storage full or blocked (private mode): the socket still works, only reloads forget.
    }
  }
}

/** JSON over HTTP with the relaydesk error shape turned into thrown errors. */
export async function api(base, path, { method = "GET", token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(base + path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
    // field: the body field at fault, when the server names one (a form shows it there).
    throw Object.assign(new Error(error.message), { code: error.code, status: response.status, field: error.field });
  }
  return data;
}

/**
 * A conversation's messages as history holds them, up to what the socket has seen.
 *
 * History's read model may lag behind the log, and a message it is missing would never show:
 * the socket only brings events after its position. `upto` (the socket's position) makes the
 * server wait up to 3 s for history to get there; still behind, it answers `503 behind`, and
 * this asks again, up to `tries` times, while `wanted()` (the reader still wants this
 * conversation). `read(query)` does the request ("" or "?upto=<position>").
 */
export async function readMessagesUpTo(read, position, { tries = 10, wanted = () => true } = {}) {
  const query = position === null || position === undefined ? "" : `?upto=${position}`;
  for (let attempt = 0; ; attempt++) {
    try {
      return await read(query);
    } catch (error) {
      if (error.code !== "behind" || attempt >= tries || !wanted()) throw error;
    }
  }
}

// The largest page the gateway reads (`limit`, 1–500).
export const MAX_PAGE = 500;

/**
 * Whether a conversation has messages before `position` (the oldest one shown). A page of
 * messages says nothing of what is before it: a chat of two messages answers a full-looking
 * page too. So one more is read: `read(query)` as for readMessagesUpTo.
 */
export async function hasMessagesBefore(read, position) {
  return (await read(`?before=${position}&limit=1`)).length > 0;
}

/**
 * The page of `size` messages before `position`, and whether there are more before it
 * (`{items, more}`): `size + 1` are asked for and the oldest is kept back, so `more` needs
 * no second read (but at the gateway's largest page, which has no room for one more).
 * `size` is the first page's length, the tenant's `messages_on_enter` whenever earlier
 * messages exist (the gateway filled the page).
 */
export async function readPageBefore(read, position, size) {
  size = Math.max(1, size || 0);
  if (size >= MAX_PAGE) {
    const items = await read(`?before=${position}&limit=${MAX_PAGE}`);
    return { items, more: items.length > 0 && (await hasMessagesBefore(read, items[0].position)) };
  }
  const items = await read(`?before=${position}&limit=${size + 1}`);
  const more = items.length > size;
  return { items: more ? items.slice(1) : items, more };
}
