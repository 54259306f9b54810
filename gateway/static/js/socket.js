// A resumable client for the relaydesk websocket protocol (docs/protocol.md).
//
// Shared by the widget and the console. It keeps the last log position it saw and
// reconnects with full-jitter backoff, resuming from that position, so a dropped
// connection or a gateway restart neither loses nor repeats events. Commands carry a
// client-chosen idempotency key and stay in an outbox until the server acks them, so a
// message typed while offline is sent once when the connection is back.

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
    this.outbox = new Map(); // id -> {frame, resolve, reject, persist}
    for (const frame of this._load("outbox", [])) this.outbox.set(frame.id, { frame, persist: true });
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.session = null;
  }

  start() {
    this.stopped = false;
    this._connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.session);
  }

  /**
   * Send a command; resolves with the ack once the server made it durable.
   * `retry: false` rejects on `rate_limited` / `unavailable` instead of resending: for a
   * person waiting on a dialog, and for `transfer`, whose `unavailable` means "nobody can
   * take it" and gets the same answer however often the same key is sent.
   */
  command(op, fields = {}, { persist = false, id = newKey(), retry = true } = {}) {
    const frame = { op, id, ...fields };
    return new Promise((resolve, reject) => {
      this.outbox.set(id, { frame, resolve, reject, persist, retry });
      if (persist) this._saveOutbox();
      if (this.connected) this.ws.send(JSON.stringify(frame));
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
    ws.onmessage = (message) => this._receive(message.data);
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
      this._state("online", frame.session);
      for (const entry of this.outbox.values()) this.ws.send(JSON.stringify(entry.frame));
    } else if (frame.t === "event") {
      if (this.position !== null && frame.position <= this.position) return; // seen already
      this._setPosition(frame.position);
      this.options.onEvent(frame.event, frame.position);
    } else if (frame.t === "ack") {
      this._settle(frame.id, (entry) => entry.resolve && entry.resolve(frame));
    } else if (frame.t === "error") {
      if (frame.id && RETRYABLE.has(frame.code) && this.outbox.get(frame.id)?.retry !== false) this._retryLater(frame.id);
      else if (frame.id) this._settle(frame.id, (entry) => entry.reject && entry.reject(Object.assign(new Error(frame.message), { code: frame.code })));
      else this._state("error", frame);
    } else if (frame.t === "resync") {
      this._setPosition(null);
      if (this.options.onResync) this.options.onResync();
    }
  }

  _retryLater(id) {
    const entry = this.outbox.get(id);
    if (!entry) return;
    entry.retries = (entry.retries || 0) + 1;
    setTimeout(() => {
      if (this.connected && this.outbox.has(id)) this.ws.send(JSON.stringify(entry.frame));
    }, fullJitterDelay(entry.retries, 500, 8000));
  }

  _settle(id, callback) {
    const entry = this.outbox.get(id);
    if (!entry) return;
    this.outbox.delete(id);
    if (entry.persist) this._saveOutbox();
    callback(entry);
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
    this._save("outbox", [...this.outbox.values()].filter((e) => e.persist).map((e) => e.frame));
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
    throw Object.assign(new Error(error.message), { code: error.code, status: response.status });
  }
  return data;
}
