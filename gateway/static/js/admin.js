// Admin pages: each section is a function that reads over the HTTP API and renders with
// textContent-only DOM helpers. Sections appear only when the agent's permissions allow.
import { AgentSession, signIn, el, toast } from "./session.js";

const $ = (id) => document.getElementById(id);
const session = new AgentSession();
const PERMISSIONS = ["see_all_conversations", "see_history", "transfer", "edit_shared_canned", "manage_agents", "manage_settings", "manage_connectors", "view_billing", "view_audit", "view_reports"];

// Which show() is the latest: a section whose data comes back after the person has moved on
// to another one must not replace it (the first section, still loading, overwrote the one
// picked meanwhile, under load).
// Declared before anything that runs at load can call show().
let showing = 0;

// The section the address names: "#agents", or "#audit=<conversation id>" (the console's
// "Audit trail" link), which opens that conversation's timeline at once.
const linked = (() => {
  const [section, argument] = location.hash.slice(1).split("=", 2);
  return { section, conversation: argument ? decodeURIComponent(argument) : null };
})();

const SECTIONS = [
  { id: "agents", title: "Agents", permission: "manage_agents", render: agentsSection },
  { id: "groups", title: "Permission groups", permission: "manage_agents", render: groupsSection },
  { id: "canned", title: "Canned responses", permission: null, render: cannedSection },
  { id: "settings", title: "Settings", permission: "manage_settings", render: settingsSection },
  { id: "connectors", title: "Connectors", permission: "manage_connectors", render: connectorsSection },
  { id: "webhooks", title: "Webhooks", permission: "manage_settings", render: webhooksSection },
  // Only a SaaS account has plans and bills; a tool-mode one has no billing page at all.
  { id: "billing", title: "Billing", permission: "view_billing", render: billingSection, when: (account) => account?.mode === "saas" },
  { id: "reports", title: "Reports", permission: "view_reports", render: reportsSection },
  { id: "audit", title: "Audit", permission: "view_audit", render: auditSection },
];

if (session.signedIn) {
  $("login").remove();
  start();
}
else {
  $("login").hidden = false;
  signIn(session, $("login"), start);
}

async function start() {
  $("app").hidden = false;
  $("me").textContent = `${session.agent.name} · ${session.agent.role}`;
  $("logout").addEventListener("click", async () => { await session.logout(); location.reload(); });
  // The account's mode decides which sections exist; if it cannot be read now, every section
  // the permissions allow is offered and says for itself what it cannot load.
  const account = await session.call("/api/account").catch(() => null);
  const allowed = SECTIONS.filter((s) => (!s.permission || session.can(s.permission)) && (!s.when || !account || s.when(account)));
  $("sections").replaceChildren(...allowed.map((s) => el("button", { type: "button", "data-section": s.id, onclick: () => show(s) }, s.title)));
  const wanted = allowed.find((s) => s.id === linked.section) || allowed[0];
  show(wanted);
}

async function show(section) {
  const mine = ++showing;
  history.replaceState(null, "", `#${section.id}`);
  document.querySelectorAll("#sections button").forEach((b) => (b.dataset.section === section.id ? b.setAttribute("aria-current", "page") : b.removeAttribute("aria-current")));
  const main = $("main");
  main.replaceChildren(el("h1", {}, section.title), el("p", { class: "muted" }, "Loading…"));
  try {
    const body = await section.render(() => show(section));
    if (mine !== showing) return;
    main.replaceChildren(el("h1", {}, section.title), ...[body].flat());
  } catch (error) {
    if (mine !== showing) return;
    const text = error.status === 404 ? "Not available on this installation." : `Could not load: ${error.message}`;
    main.replaceChildren(el("h1", {}, section.title), el("p", { class: "error", role: "alert" }, text));
  }
}

function table(headers, rows) {
  // In its own scrolling box: a wide table scrolls inside its card instead of pushing the page sideways.
  return el("div", { class: "table-scroll" }, el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))) : [el("tr", {}, el("td", { colspan: String(headers.length), class: "muted" }, "Nothing yet."))])));
}

/** A field's value refused before anything is sent: the message says what to write instead. */
class FieldError extends Error {
  constructor(name, message) {
    super(message);
    this.field = name;
  }
}

function form(fields, submitLabel, onSubmit) {
  // Errors stay in the form until the next try, rather than in a toast that is gone before it
  // is read: next to the field they are about when one is named (a FieldError here, `field`
  // in the server's answer), else in the alert by the button.
  const problem = el("p", { class: "error form-error", role: "alert" });
  const node = el("form", { class: "card form-grid" }, fields, el("button", { class: "btn primary", type: "submit" }, submitLabel), problem);
  let clearFieldError = () => {};
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    clearFieldError();
    try {
      await onSubmit(new FormData(node), node);
    } catch (error) {
      const culprit = error.field && node.elements.namedItem(error.field);
      if (culprit instanceof HTMLElement) clearFieldError = showFieldError(culprit, error.message);
      else problem.textContent = error.message;
    }
  });
  return node;
}

let fieldErrors = 0; // for ids unique in the page

/** Shows ``message`` under ``control`` (inside its label), marks the control invalid and
 * described by the message, and moves focus to it, where a screen reader reads both. Returns
 * the undo, also run when the person edits the field. */
function showFieldError(control, message) {
  const id = `field-error-${++fieldErrors}`;
  // aria-hidden: inside the label it would otherwise become part of the field's name; it
  // still reaches assistive technology, as the field's description (aria-describedby).
  const note = el("span", { class: "error field-error", id, "aria-hidden": "true" }, message);
  const hint = control.getAttribute("aria-describedby"); // a help text the field already has
  const label = control.closest("label");
  if (label) label.append(note);
  else control.after(note);
  control.setAttribute("aria-invalid", "true");
  control.setAttribute("aria-describedby", hint ? `${hint} ${id}` : id);
  const clear = () => {
    note.remove();
    control.removeAttribute("aria-invalid");
    if (hint) control.setAttribute("aria-describedby", hint);
    else control.removeAttribute("aria-describedby");
    control.removeEventListener("input", clear);
  };
  control.addEventListener("input", clear);
  control.focus();
  return clear;
}

const field = (label, name, attributes = {}) => el("label", {}, label, el("input", { name, ...attributes }));
const select = (label, name, options, value) => el("label", {}, label, el("select", { name }, options.map((o) => el("option", { value: o, selected: o === value }, o))));

async function act(promise, message, reload) {
  await promise;
  toast(message);
  reload();
}

/** Asks ``question`` in the page's dialog (admin.html), saying what follows, before anything
 * is deleted or removed: resolves true only for the confirm button. A modal <dialog> keeps
 * focus inside, Escape cancels, and focus goes back to the button that asked. */
function confirmed(question, consequence, confirmLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = question;
  $("confirm-text").textContent = consequence;
  dialog.querySelector("button[value=ok]").textContent = confirmLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

/** A Delete/Remove button that runs ``action`` only once the person confirms (see confirmed). */
function dangerButton(label, question, consequence, confirmLabel, action) {
  return el("button", { class: "btn small danger", type: "button", onclick: async () => (await confirmed(question, consequence, confirmLabel)) && action() }, label);
}

// --- sections ----------------------------------------------------------------------

async function agentsSection(reload) {
  const [agents, status, groups] = await Promise.all([session.call("/api/admin/agents"), session.call("/api/admin/agents/status").catch(() => []), session.call("/api/admin/groups").catch(() => [])]);
  const live = new Map(status.map((s) => [s.agent_id, s]));
  const groupNames = new Map(groups.map((g) => [g.group_id, g.name]));
  const editor = el("div", {}); // the agent being edited, when one is
  return [
    form([field("Name", "name", { required: true }), field("Email", "email", { type: "email", required: true }), field("Password", "password", { type: "password", minlength: "12", required: true }),
      select("Role", "role", ["agent", "supervisor", "admin"], "agent"), field("Max chats", "max_chats", { type: "number", min: "1", max: "100", value: "5" }), groupPicker(groups)],
    "Add agent", (data, node) => act(session.call("/api/admin/agents", { method: "POST", body: { name: data.get("name"), email: data.get("email"), password: data.get("password"), role: data.get("role"), max_chats: Number(data.get("max_chats")), groups: data.getAll("groups") } }).then(() => node.reset()), "Agent added", reload)),
    editor,
    table(["Name", "Email", "Role", "Groups", "Status", ""], agents.map((a) => [a.name, a.email, a.role, (a.groups || []).map((g) => groupNames.get(g) || g).join(", "), live.get(a.agent_id)?.status || "offline",
      el("span", { style: "display:inline-flex;gap:6px" }, el("button", { class: "btn small", type: "button", "aria-label": `Edit ${a.name}`, onclick: () => editAgent(editor, a, groups, reload) }, "Edit"),
        a.role === "owner" ? "" : dangerButton("Remove", `Remove ${a.name}?`, `${a.name} (${a.email}) is signed out and can no longer sign in.`, "Remove agent",
          () => act(session.call(`/api/admin/agents/${a.agent_id}`, { method: "DELETE" }), "Agent removed", reload)))])),
  ];
}

/** The permission groups to pick from (several), ``chosen`` selected. */
function groupPicker(groups, chosen = []) {
  return el("label", {}, "Groups", el("select", { name: "groups", multiple: true, size: String(Math.min(4, Math.max(2, groups.length))) },
    groups.map((g) => el("option", { value: g.group_id, selected: chosen.includes(g.group_id) }, g.name))));
}

/** An agent's name, role, groups and chat limit, changed in place (the API had it; the page
 * offered only Remove). Only what changed is sent; the server decides who may change whom. */
function editAgent(editor, agent, groups, reload) {
  const node = form([
    el("h3", { style: "grid-column:1/-1;margin:0" }, `Edit ${agent.name} (${agent.email})`),
    field("Name", "name", { required: true, value: agent.name }),
    select("Role", "role", ["agent", "supervisor", "admin", "owner"], agent.role),
    field("Max chats", "max_chats", { type: "number", min: "1", max: "100", value: String(agent.max_chats ?? 5) }),
    groupPicker(groups, agent.groups),
    el("button", { class: "btn", type: "button", onclick: () => editor.replaceChildren() }, "Cancel"),
  ], "Save agent", async (data) => {
    const wanted = { name: data.get("name"), role: data.get("role"), max_chats: Number(data.get("max_chats")), groups: data.getAll("groups") };
    const comparable = (key, value) => (key === "groups" ? [...(value || [])].sort().join() : value); // groups: in any order
    const changes = Object.fromEntries(Object.entries(wanted).filter(([key, value]) => comparable(key, value) !== comparable(key, agent[key])));
    if (!Object.keys(changes).length) return editor.replaceChildren();
    await act(session.call(`/api/admin/agents/${agent.agent_id}`, { method: "PATCH", body: changes }), "Agent updated", reload);
  });
  editor.replaceChildren(node);
  node.querySelector("input[name=name]").focus();
}

async function groupsSection(reload) {
  const [groups, agents] = await Promise.all([session.call("/api/admin/groups"), session.call("/api/admin/agents").catch(() => null)]);
  // What deleting a group does to the agents in it, said before it is done.
  const whatHappens = (g) => {
    if (!agents) return "Its members lose the permissions it gives them.";
    const members = agents.filter((a) => (a.groups || []).includes(g.group_id)).map((a) => a.name);
    if (!members.length) return "No agent is in this group.";
    return `Its ${members.length} ${members.length === 1 ? "member" : "members"} (${members.join(", ")}) stay agents but lose the permissions it gives them.`;
  };
  const boxes = el("fieldset", { class: "card", style: "grid-column:1/-1" }, el("legend", {}, "Permissions"),
    PERMISSIONS.map((p) => el("label", { style: "flex-direction:row;align-items:center;display:inline-flex;margin-right:14px" }, el("input", { type: "checkbox", name: "permissions", value: p }), p)));
  return [
    form([field("Group name", "name", { required: true }), boxes], "Create group",
      (data, node) => act(session.call("/api/admin/groups", { method: "POST", body: { name: data.get("name"), permissions: data.getAll("permissions") } }).then(() => node.reset()), "Group created", reload)),
    table(["Name", "Permissions", ""], groups.map((g) => [g.name, (g.permissions || []).join(", ") || "—",
      dangerButton("Delete", `Delete group “${g.name}”?`, whatHappens(g), "Delete group",
        () => act(session.call(`/api/admin/groups/${g.group_id}`, { method: "DELETE" }), "Group deleted", reload))])),
  ];
}

async function cannedSection(reload) {
  const canned = await session.call("/api/canned");
  const scopes = session.can("edit_shared_canned") ? ["tenant", "personal"] : ["personal"];
  return [
    form([field("Shortcut", "shortcut", { required: true, pattern: "[\\w\\-]+", placeholder: "thanks" }), el("label", { style: "grid-column:span 2" }, "Text", el("textarea", { name: "text", required: true, rows: "2", maxlength: "8000" })), select("Shared with", "scope", scopes, scopes[0])],
      "Add response", (data, node) => act(session.call("/api/canned", { method: "POST", body: { shortcut: data.get("shortcut"), text: data.get("text"), scope: data.get("scope") } }).then(() => node.reset()), "Canned response added", reload)),
    // Delete only where the server allows it: your personal responses (the only personal ones
    // listed), shared ones with edit_shared_canned.
    table(["Shortcut", "Text", "Scope", "Used", ""], canned.map((c) => [`/${c.shortcut}`, c.text, c.scope, String(c.uses ?? 0),
      c.scope === "personal" || session.can("edit_shared_canned")
        ? dangerButton("Delete", `Delete canned response /${c.shortcut}?`, c.scope === "personal" ? "You can no longer insert it." : "Nobody can insert it any more.", "Delete response",
          () => act(session.call(`/api/canned/${c.canned_id}`, { method: "DELETE" }), "Deleted", reload))
        : ""])),
  ];
}

async function settingsSection(reload) {
  const s = await session.call("/api/admin/settings");
  return form([
    select("Routing mode", "routing_mode", ["broadcast", "round_robin", "least_busy"], s.routing_mode),
    field("Messages loaded on entering", "messages_on_enter", { type: "number", min: "0", max: "1000", value: String(s.messages_on_enter) }),
    // Empty: the installation's default offer timeout (RELAYDESK_OFFER_TIMEOUT_S).
    field("Offer timeout (s; empty = installation default)", "offer_timeout_s", { type: "number", min: "5", max: "3600", value: s.offer_timeout_s ? String(s.offer_timeout_s) : "" }),
    field("Default max chats", "max_chats_default", { type: "number", min: "1", max: "100", value: String(s.max_chats_default) }),
    field("Allowed sites (comma separated origins)", "allowed_origins", { value: (s.allowed_origins || []).join(", "), placeholder: "https://www.example.com" }),
    field("Time zone", "timezone", { value: s.timezone }),
    // Empty keeps messages for ever; otherwise closed conversations lose their message contents after this many days.
    field("Keep messages of closed conversations (days; empty = for ever)", "retention_days", { type: "number", min: "1", max: "36500", value: s.retention_days ? String(s.retention_days) : "" }),
    el("label", { style: "grid-column:1/-1" }, "Business hours (JSON, e.g. {\"mon\": [[\"09:00\",\"17:00\"]]}; empty = always open)",
      el("textarea", { name: "business_hours", rows: "3", "aria-describedby": "hours-help" }, s.business_hours ? JSON.stringify(s.business_hours) : "")),
    el("p", { id: "hours-help", class: "muted", style: "grid-column:1/-1;margin:0" }, "Days mon … sun, each a list of [opening, closing] times in the time zone above; a day left out is closed."),
    // Both are shown to customers as chat notes (at most 200 characters); empty: no note.
    el("label", { style: "grid-column:1/-1" }, "Greeting", el("input", { name: "greeting", maxlength: "200", value: s.greeting })),
    el("label", { style: "grid-column:1/-1" }, "Offline text", el("input", { name: "offline_text", maxlength: "200", value: s.offline_text })),
  ], "Save settings", async (data) => {
    const hours = String(data.get("business_hours") || "").trim();
    const changes = {
      routing_mode: data.get("routing_mode"), messages_on_enter: Number(data.get("messages_on_enter")),
      offer_timeout_s: data.get("offer_timeout_s") ? Number(data.get("offer_timeout_s")) : null,
      max_chats_default: Number(data.get("max_chats_default")), timezone: data.get("timezone"), greeting: data.get("greeting"), offline_text: data.get("offline_text"),
      allowed_origins: String(data.get("allowed_origins")).split(",").map((o) => o.trim()).filter(Boolean),
      business_hours: parseHours(hours),
      retention_days: data.get("retention_days") ? Number(data.get("retention_days")) : null,
    };
    await act(session.call("/api/admin/settings", { method: "PATCH", body: changes }), "Settings saved", reload);
  });
}

const HOURS_EXAMPLE = '{"mon": [["09:00", "17:00"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]]}';

/** The business-hours field as the API wants it, or a FieldError that says how to write it
 * (JSON.parse's own message, "Unexpected token m…", means nothing to an administrator). */
function parseHours(text) {
  if (!text) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new FieldError("business_hours", `Business hours are not in the expected form. Write each open day with its opening and closing times, e.g. ${HOURS_EXAMPLE}, or leave the field empty for always open.`);
  }
  return value;
}

// Each platform's settings (docs/connectors.md): [name, label]; `choices` are selects. What
// the platform's own console needs from us is said under the form (`hint`).
const CONNECTOR_FIELDS = {
  telegram: {
    choices: [["mode", "Updates by", [["webhook", "webhook (public https)"], ["polling", "polling (no public address)"]]]],
    public: [],
    secrets: [["bot_token", "Bot token (from @BotFather)"], ["webhook_secret", "Webhook secret (webhook mode; generated when empty)"]],
    hint: "Webhook mode registers the bot's webhook itself, at the connectors service's public https address; choose polling when this installation has none.",
  },
  messenger: {
    choices: [],
    public: [["page_id", "Page id"]],
    secrets: [["page_token", "Page access token"], ["app_secret", "App secret"], ["verify_token", "Verify token"]],
    hint: "In Meta's app dashboard, set the callback URL to <connectors public address>/webhooks/messenger/<connector id> and the same verify token.",
  },
  wechat: {
    choices: [],
    public: [["app_id", "AppID"]],
    secrets: [["app_secret", "AppSecret"], ["token", "Token"], ["encoding_aes_key", "EncodingAESKey"]],
    hint: "In the WeChat Official Account console, set the server URL to <connectors public address>/webhooks/wechat/<connector id> with the same Token and EncodingAESKey.",
  },
};

async function connectorsSection(reload) {
  const connectors = await session.call("/api/admin/connectors");
  const platform = el("select", { name: "platform" }, Object.keys(CONNECTOR_FIELDS).map((p) => el("option", { value: p }, p)));
  const extra = el("div", { style: "display:contents" });
  const hint = el("p", { class: "muted", id: "connector-hint" });
  const paint = () => {
    const spec = CONNECTOR_FIELDS[platform.value];
    extra.replaceChildren(
      ...spec.choices.map(([name, label, options]) => el("label", {}, label, el("select", { name: `public:${name}` }, options.map(([value, text]) => el("option", { value }, text))))),
      ...spec.public.map(([name, label]) => field(label, `public:${name}`, { required: true })),
      ...spec.secrets.map(([name, label]) => field(label, `secret:${name}`, { type: "password", autocomplete: "off" })),
    );
    hint.textContent = spec.hint;
  };
  platform.addEventListener("change", paint);
  paint();
  return [
    form([field("Connector id", "connector_id", { required: true, pattern: "[\\w\\-]+", placeholder: "telegram-main" }), el("label", {}, "Platform", platform), extra], "Save connector", (data, node) => {
      const body = { platform: data.get("platform"), public_config: {}, secrets: {} };
      for (const [key, value] of data.entries()) {
        const [kind, name] = key.split(":");
        if (kind === "public" && value) body.public_config[name] = String(value);
        if (kind === "secret" && value) body.secrets[name] = String(value);
      }
      return act(session.call(`/api/admin/connectors/${encodeURIComponent(data.get("connector_id"))}`, { method: "PUT", body }).then(() => node.reset()), "Connector saved", reload);
    }),
    hint,
    table(["Id", "Platform", "Settings", "Secrets set", "Status", ""], connectors.map((c) => [c.connector_id, c.platform, JSON.stringify(c.public_config || {}), (c.secrets_set || []).join(", ") || "—", c.paused ? "paused" : c.status || "",
      [pauseButton("connectors", c.connector_id, c.paused, "Connector", reload),
        dangerButton("Remove", `Remove connector ${c.connector_id}?`, "Replies not yet sent through it are never sent.", "Remove connector",
          () => act(session.call(`/api/admin/connectors/${c.connector_id}`, { method: "DELETE" }), "Connector removed", reload))]])),
  ];

}

/** Pause or resume a connector or webhook subscription (imported ones start paused). */
function pauseButton(what, id, paused, noun, reload) {
  const action = paused ? "resume" : "pause";
  return el("button", { class: "btn small", type: "button", onclick: () => act(session.call(`/api/admin/${what}/${encodeURIComponent(id)}/${action}`, { method: "POST" }), `${noun} ${paused ? "resumed" : "paused"}`, reload) }, paused ? "Resume" : "Pause");
}

async function webhooksSection(reload) {
  const hooks = await session.call("/api/admin/webhooks");
  return [
    el("p", { class: "muted" }, "A paused subscription delivers nothing; on resume it delivers what was published meanwhile, in order. Imported subscriptions start paused."),
    table(["Id", "URL", "Event types", "Status", ""], hooks.map((h) => [h.subscription_id, h.url, h.event_types.join(", "), h.paused ? "paused" : "active",
      [pauseButton("webhooks", h.subscription_id, h.paused, "Webhook", reload), dangerButton("Remove", `Remove webhook ${h.url}?`, "Events are no longer delivered to it.", "Remove webhook",
        () => act(session.call(`/api/admin/webhooks/${encodeURIComponent(h.subscription_id)}`, { method: "DELETE" }), "Webhook removed", reload))]])),
  ];
}

const money = (cents, currency = "EUR") => new Intl.NumberFormat(undefined, { style: "currency", currency }).format((cents || 0) / 100);

async function billingSection(reload) {
  const [account, plans] = await Promise.all([session.call("/api/billing/account"), session.call("/api/billing/plans")]);
  const usage = account.usage || {};
  const currency = account.plan.currency;
  const change = session.can("manage_settings")
    ? form([select("Plan", "plan", plans.map((p) => p.plan_id), account.plan.plan_id), field("Effective from", "effective", { type: "date" })], "Change plan",
      (data) => act(session.call("/api/billing/plan", { method: "POST", body: { plan: data.get("plan"), ...(data.get("effective") ? { effective: data.get("effective") } : {}) } }), "Plan changed (prorated by day)", reload))
    : null;
  return [
    el("div", { class: "card" }, el("h2", {}, `Plan: ${account.plan.name}`), el("p", { class: "muted" }, `${money(account.plan.price_cents, currency)} per month · period ${account.period}`),
      // Limit vs used as the owner of each decision counts it; a reached limit says what is refused.
      table(["Plan limit", "Used", "Limit"], (account.limits || []).map((l) => [l.limit.replaceAll("_", " "), String(l.used), l.value === null ? "unlimited" : String(l.value)])
        .concat([["agents online this period (billed seats)", String(usage.agent_seats ?? 0), "—"], ["messages", String(usage.messages ?? 0), "—"], ["connector messages", String(usage.connector_messages ?? 0), "—"]])),
      account.blocked ? el("p", { class: "error", role: "alert" }, account.blocked) : null,
      ...(account.limits || []).filter((l) => l.reached && l.limit !== "conversations_per_month").map((l) => el("p", { class: "error", role: "alert" }, l.reason))),
    change,
    el("div", { class: "card" }, el("h2", {}, "Invoices"), el("p", {}, `Balance due: ${money(account.balance_cents, currency)}${account.overdue ? " (overdue)" : ""}`),
      table(["Number", "Period", "Total", "Due", "Status", ""], (account.invoices || []).map((i) => [i.number, i.period, money(i.total_cents, i.currency), i.due_date, i.status,
        el("span", {}, el("button", { class: "btn small", type: "button", onclick: () => openInvoice(i.number) }, "Print"), " ",
          el("button", { class: "btn small", type: "button", onclick: () => download(`/api/billing/invoices/${encodeURIComponent(i.number)}.json`, `${i.number}.json`) }, "JSON"))]))),
  ];
}

async function openInvoice(number) {
  // The page needs the bearer token, so it is fetched here and shown from a blob.
  const response = await fetch(`/api/billing/invoices/${encodeURIComponent(number)}.html`, { headers: { Authorization: `Bearer ${session.token}` } });
  window.open(URL.createObjectURL(new Blob([await response.text()], { type: "text/html" })), "_blank", "noopener");
}

let reportGrouping = "day";

/** agent id → name, for labels (any agent may list colleagues; removed ones keep their id). */
async function agentNames() {
  const agents = await session.call("/api/admin/agents/status").catch(() => []);
  return new Map(agents.filter((a) => a.name).map((a) => [a.agent_id, a.name]));
}

async function reportsSection(reload) {
  const [report, names] = await Promise.all([session.call(`/api/reports/summary?group_by=${reportGrouping}`), reportGrouping === "agent" ? agentNames() : new Map()]);
  // Rows per agent are keyed by agent id: show the name (the id stays in the CSV export).
  const rows = (report.rows || []).map((r) => ({ ...r, key: names.get(r.key) || r.key }));
  const peak = Math.max(1, ...rows.map((r) => r.conversations || 0));
  const grouping = el("select", { "aria-label": "Group by", onchange: (e) => { reportGrouping = e.target.value; reload(); } },
    ["day", "agent", "group", "channel"].map((g) => el("option", { value: g, selected: g === reportGrouping }, `per ${g}`)));
  return [
    el("div", { class: "card" }, el("h2", {}, "Conversations ", grouping),
      el("div", { class: "bars", role: "img", "aria-label": `Conversations per ${reportGrouping}` }, rows.map((r) => el("div", { style: `height:${Math.round((100 * (r.conversations || 0)) / peak)}%`, title: `${r.key}: ${r.conversations}` }, el("span", {}, reportGrouping === "day" ? String(r.key).slice(5) : String(r.key).slice(0, 10))))),
      el("p", { style: "margin-top:26px" }, el("button", { class: "btn small", type: "button", onclick: () => download(`/api/reports/summary.csv?group_by=${reportGrouping}`, `relaydesk-${reportGrouping}.csv`) }, "Export CSV"))),
    table([reportGrouping, "Conversations", "Missed", "Messages", "First response (s)", "Wait (s)", "Handle (s)", "CSAT"], rows.map((r) =>
      [r.key, String(r.conversations), String(r.missed), String(r.messages), fmt(r.first_response_s), fmt(r.wait_s), fmt(r.handle_s), fmt(r.csat)])),
    el("details", { class: "card" }, el("summary", {}, "How each metric is computed"), el("dl", {}, Object.entries(report.definitions || {}).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))),
  ];
}

const fmt = (value) => (value === null || value === undefined ? "—" : Number(value).toFixed(1));

async function download(path, name) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.token}` } });
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
  link.click();
}

async function auditSection() {
  const output = el("div");
  const showTimeline = async (id) => output.replaceChildren(timelineView(id, await session.call(`/api/audit/conversations/${encodeURIComponent(id)}/timeline`)));
  const search = form([field("Conversation id", "conversation_id", { required: true })], "Show timeline", (data) => showTimeline(String(data.get("conversation_id")).trim()));
  const opened = linked.conversation;
  linked.conversation = null; // once: coming back to the section starts empty
  if (opened) {
    search.querySelector('[name="conversation_id"]').value = opened;
    try {
      await showTimeline(opened);
    } catch (error) {
      output.replaceChildren(el("p", { class: "error", role: "alert" }, error.status === 404 ? "No such conversation in this account." : `Could not load: ${error.message}`));
    }
  }
  // A <pre> may not carry a name (axe: aria-prohibited-attr); the figure around it does.
  const settingsOutput = el("pre");
  const settingsForm = form([field("Tenant settings as they were at", "at", { type: "datetime-local", required: true })], "Show settings", async (data) => {
    const at = new Date(String(data.get("at"))).toISOString();
    const found = await session.call(`/api/audit/settings?at=${encodeURIComponent(at)}`);
    settingsOutput.textContent = JSON.stringify(found, null, 2);
  });
  return [search, output, settingsForm, el("figure", { "aria-label": "Settings at that moment" }, settingsOutput), adminChangesView()];
}

const ADMIN_KINDS = ["", "agents", "groups", "canned", "settings", "webhooks", "connectors", "plan"];
const asJson = (value) => (value === null || value === undefined ? "—" : el("pre", {}, JSON.stringify(value, null, 1)));

// Who changed what in the administration, with before/after, over a time range (newest first).
function adminChangesView() {
  const output = el("div");
  const search = form([field("Changes since", "since", { type: "datetime-local" }), field("until", "until", { type: "datetime-local" }),
    el("label", {}, "What", el("select", { name: "kind" }, ADMIN_KINDS.map((k) => el("option", { value: k }, k || "everything"))))], "Show admin changes", async (data) => {
    const query = new URLSearchParams();
    for (const name of ["since", "until"]) if (data.get(name)) query.set(name, new Date(String(data.get(name))).toISOString());
    if (data.get("kind")) query.set("kind", String(data.get("kind")));
    const [found, names] = await Promise.all([session.call(`/api/audit/admin-events?${query}`), agentNames()]);
    output.replaceChildren(table(["When", "Who", "What", "Subject", "Before", "After"], found.events.map((e) =>
      [new Date(e.occurred_at).toLocaleString(), e.actor.kind === "agent" && names.has(e.actor.id) ? `${names.get(e.actor.id)} (${e.actor.id})` : `${e.actor.kind}:${e.actor.id}`,
        e.type, e.subject || "—", asJson(e.before), asJson(e.after)])));
  });
  return el("div", { class: "card" }, el("h2", {}, "Administrative changes"), search, output);
}

function timelineView(id, timeline) {
  const state = el("pre", {}, "Pick an event to see the conversation as it was then.");
  const verdict = el("p", { class: timeline.chain_ok ? "muted" : "error" }, timeline.chain_ok ? "Hash chain intact." : `Hash chain broken at position ${timeline.broken_at}.`);
  const items = timeline.events.map((event) => el("li", {},
    el("button", { class: "btn small", type: "button", onclick: async () => {
      const at = await session.call(`/api/audit/conversations/${encodeURIComponent(id)}/state?at=${encodeURIComponent(event.occurred_at)}`);
      state.textContent = JSON.stringify(at, null, 2);
    } }, "State here"), " ",
    el("strong", {}, event.type), " ", el("span", { class: "muted" }, `#${event.position} · ${new Date(event.occurred_at).toLocaleString()} · ${event.actor.kind}:${event.actor.id}`),
    event.data.body ? el("div", {}, event.data.body) : event.data.text ? el("div", { class: "muted" }, event.data.text) : null));
  return el("div", { class: "card" }, verdict, el("ol", { class: "timeline", "aria-label": "Event timeline" }, items), el("h2", {}, "State"), el("figure", { "aria-label": "State at the chosen moment" }, state));
}
