// Agent sign-in shared by the console and the admin pages: tokens live in sessionStorage
// (gone when the tab closes) and the access token is refreshed before it expires.
import { api } from "./socket.js";

const KEY = "relaydesk:agent-session";

export class AgentSession {
  constructor(base = location.origin) {
    this.base = base;
    this.data = JSON.parse(sessionStorage.getItem(KEY) || "null");
  }

  get signedIn() { return Boolean(this.data); }
  get token() { return this.data && this.data.access_token; }
  get agent() { return this.data && this.data.agent; }
  can(permission) { return Boolean(this.agent && this.agent.permissions.includes(permission)); }

  async login(tenant, email, password) {
    this._store(await api(this.base, "/api/auth/login", { method: "POST", body: { tenant, email, password } }));
  }

  /** One refresh at a time: a refresh token is good once (using it twice ends the
   * session), and the timer, a 401 and a socket's 4401 can all ask at the same moment. */
  refresh() {
    if (!this.refreshing) this.refreshing = this._refresh().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  async _refresh() {
    if (!this.data) return false;
    try {
      this._store(await api(this.base, "/api/auth/refresh", { method: "POST", body: { refresh_token: this.data.refresh_token } }));
      return true;
    } catch {
      this.logout();
      return false;
    }
  }

  /** Forget the session here and end it on the server (its refresh tokens stop working). */
  logout() {
    const ending = this.data && this.data.refresh_token;
    this.data = null;
    sessionStorage.removeItem(KEY);
    clearTimeout(this.timer);
    if (ending) return api(this.base, "/api/auth/logout", { method: "POST", body: { refresh_token: ending } }).catch(() => {});
    return Promise.resolve();
  }

  /** HTTP call as this agent; one refresh and retry on 401. */
  async call(path, options = {}) {
    try {
      return await api(this.base, path, { ...options, token: this.token });
    } catch (error) {
      if (error.status === 401 && (await this.refresh())) return api(this.base, path, { ...options, token: this.token });
      throw error;
    }
  }

  _store(data) {
    this.data = data;
    sessionStorage.setItem(KEY, JSON.stringify(data));
    clearTimeout(this.timer);
    // Refresh at 80% of the lifetime so sockets are never closed for an expired token.
    this.timer = setTimeout(() => this.refresh(), Math.max(5, data.expires_in * 0.8) * 1000);
  }
}

/** Wire a login form; resolves once signed in. */
export function signIn(session, form, onDone) {
  const error = form.querySelector(".error");
  const tenant = new URLSearchParams(location.search).get("tenant");
  if (tenant) form.tenant.value = tenant;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await session.login(form.tenant.value.trim(), form.email.value.trim(), form.password.value);
      form.remove(); // gone, not hidden: no second "Email" field for screen readers
      onDone();
    } catch (failure) {
      error.textContent = failure.code === "locked" ? "Too many attempts; wait a minute and try again." : failure.message;
    }
  });
}

export function el(tag, attributes = {}, ...children) {
  // Builds DOM from data with textContent only: chat content is never parsed as HTML.
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    // Through the CSSOM: pages whose CSP allows no inline style attributes still apply it.
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  return node;
}

export function toast(text) {
  const note = el("div", { class: "toast", role: "status" }, text);
  document.body.append(note);
  setTimeout(() => note.remove(), 3500);
}

export function ago(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
