// The agent console: requests, conversations, the chat view and the composer.
// State comes from HTTP reads (history, routing queue) and is kept current by the
// event stream; every chat text is rendered with textContent.
import { RelaySocket, newKey } from "./socket.js";
import { AgentSession, signIn, el, toast, ago } from "./session.js";

const $ = (id) => document.getElementById(id);
const session = new AgentSession();

const state = {
  view: "mine",
  conversations: new Map(), // id -> history conversation document (+ unread)
  requests: new Map(), // id -> {conversation_id, since, visitor, topic, channel, seenAt}
  requested: new Map(), // id -> the conversation.requested details (name, topic, channel): the request card's text
  withdrawnAt: new Map(), // id -> when a live event took its card away (a slower queue load must not bring it back)
  openId: null,
  shown: new Set(),
  oldestPosition: null,
  cannedPick: null,
  lastCustomerMessage: null,
  delivery: new Map(), // message id -> {sent, text}: connector delivery results, which may arrive before the message is shown
};

const PLATFORM_NAMES = { telegram: "Telegram", messenger: "Messenger", wechat: "WeChat" };

if (session.signedIn) {
  $("login").remove();
  start();
}
else {
  $("login").hidden = false;
  signIn(session, $("login"), () => {
    start();
  });
}

function start() {
  $("app").hidden = false;
  $("me").textContent = session.agent.name || session.agent.id;
  $("admin-link").hidden = !["manage_agents", "manage_settings", "manage_connectors", "view_billing", "view_audit", "view_reports"].some((p) => session.can(p));
  $("tab-all").hidden = !session.can("see_all_conversations");
  $("reports-link").hidden = !session.can("view_reports");
  $("status").value = sessionStorage.getItem("relaydesk:status") || "online";
  paintStatus();
  bindControls();
  state.socket = new RelaySocket({
    url: location.origin.replace(/^http/, "ws") + "/ws",
    token: () => session.token,
    onEvent,
    onState: connectionState,
    onResync: reloadAll,
    onAuthExpired: () => session.refresh(),
  }).start();
  reloadAll();
  setInterval(paintRequests, 1000);
}

function bindControls() {
  $("logout").addEventListener("click", async () => {
    await state.socket.command("status", { status: "offline" }).catch(() => {});
    await session.logout();
    location.reload();
  });
  $("status").addEventListener("change", () => {
    sessionStorage.setItem("relaydesk:status", $("status").value);
    paintStatus();
    state.socket.command("status", { status: $("status").value }).catch((e) => toast(e.message));
  });
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      state.view = tab.dataset.view;
      document.querySelectorAll(".tabs button").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
      loadList();
    });
  }
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); sendReply(); });
  $("input").addEventListener("keydown", composerKeys);
  $("input").addEventListener("input", composerInput);
  $("close").addEventListener("click", closeConversation);
  $("transfer").addEventListener("click", openTransfer);
  $("earlier").addEventListener("click", loadEarlier);
}

function connectionState(kind) {
  const line = $("connection");
  line.classList.toggle("down", kind !== "online");
  line.textContent = { online: "connected", connecting: "connecting…", reconnecting: "reconnecting…", refused: "signed out", stopped: "offline" }[kind] || kind;
  if (kind === "online") state.socket.command("status", { status: $("status").value }).catch((e) => toast(e.message));
  if (kind === "refused") { session.logout(); location.reload(); }
}

function paintStatus() {
  $("status-dot").className = `status-dot ${$("status").value}`;
}

async function reloadAll() {
  await Promise.all([loadList(), loadRequests()]);
  if (state.openId) openConversation(state.openId, true);
}

// --- requests -------------------------------------------------------------------

async function loadRequests() {
  // Offers keep arriving on the socket while the queue loads; the load must neither wipe a
  // card a live event added meanwhile nor bring back one a live event took away.
  const startedAt = performance.now();
  try {
    const [queue, queued] = await Promise.all([session.call("/api/queue"), session.call("/api/conversations?view=queued")]);
    const docs = new Map(queued.map((c) => [c.conversation_id, c]));
    for (const [id, request] of state.requests) if (!(request.seenAt >= startedAt)) state.requests.delete(id);
    for (const item of queue) {
      const id = item.conversation_id;
      if (!item.offered_to_me || state.requests.has(id) || state.withdrawnAt.get(id) >= startedAt) continue;
      const doc = docs.get(id) || {};
      const told = state.requested.get(id) || {};
      state.requests.set(id, { conversation_id: id, since: doc.created_at || told.since || new Date().toISOString(), visitor: doc.visitor || told.visitor || {}, topic: doc.topic || told.topic, channel: item.channel, seenAt: startedAt });
    }
    paintRequests();
  } catch (error) {
    toast(`Could not load the queue: ${error.message}`);
  }
}

function dropRequest(id) {
  state.withdrawnAt.set(id, performance.now());
  if (state.requests.delete(id)) paintRequests();
}

function paintRequests() {
  const box = $("requests");
  $("request-count").textContent = String(state.requests.size);
  document.title = state.requests.size ? `(${state.requests.size}) relaydesk console` : "relaydesk console";
  if (!state.requests.size) {
    if (!box.querySelector(".nobody")) box.replaceChildren(el("p", { class: "muted nobody", style: "margin:4px 14px" }, "No one is waiting."));
    return;
  }
  box.replaceChildren(...[...state.requests.values()].map((r) =>
    el("div", { class: "request", "data-conversation": r.conversation_id },
      el("div", { class: "who" }, r.visitor.name || "Visitor"),
      el("div", { class: "muted" }, [r.topic, r.channel].filter(Boolean).join(" · ") || "web", ` · waiting ${ago(r.since)}`),
      el("div", { class: "actions" },
        el("button", { class: "btn primary small", type: "button", onclick: () => accept(r.conversation_id) }, "Accept"),
        el("button", { class: "btn small", type: "button", onclick: () => decline(r.conversation_id) }, "Decline")))));
}

function addRequest(event) {
  const id = event.data.conversation_id;
  // The request event came just before the offer: its details name the card at once, even
  // while the history read model (the conversation list) has not caught up yet.
  const told = state.requested.get(id) || {};
  const known = state.conversations.get(id) || {};
  state.withdrawnAt.delete(id);
  state.requests.set(id, { conversation_id: id, since: told.since || event.occurred_at, visitor: known.visitor || told.visitor || {}, topic: known.topic || told.topic, channel: known.channel || told.channel, seenAt: performance.now() });
  paintRequests();
  ring();
  if (!known.visitor && !told.visitor) session.call(`/api/conversations?view=queued`).then((list) => {
    const doc = list.find((c) => c.conversation_id === id);
    const request = state.requests.get(id);
    if (doc && request) Object.assign(request, { visitor: doc.visitor || {}, topic: doc.topic, channel: doc.channel, since: doc.created_at || request.since });
    paintRequests();
  }).catch(() => {});
}

function ring() {
  // A short two-tone chime (no audio file to ship); browsers may mute it until the page was clicked.
  try {
    const audio = new AudioContext();
    [660, 880].forEach((frequency, i) => {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.value = 0.05;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + i * 0.15);
      tone.stop(audio.currentTime + i * 0.15 + 0.12);
    });
  } catch {
    // no audio: the title counter still shows the request
  }
}

async function accept(id) {
  try {
    await state.socket.command("accept", { conversation_id: id });
    state.requests.delete(id);
    paintRequests();
    await loadList();
    openConversation(id);
  } catch (error) {
    state.requests.delete(id);
    paintRequests();
    toast(error.code === "already_assigned" ? "Another agent accepted this chat first." : `Could not accept: ${error.message}`);
  }
}

async function decline(id) {
  state.requests.delete(id);
  paintRequests();
  await state.socket.command("decline", { conversation_id: id }).catch((e) => toast(e.message));
}

// --- conversation list -----------------------------------------------------------

async function loadList() {
  try {
    const list = await session.call(`/api/conversations?view=${state.view}`);
    const unread = new Map([...state.conversations].map(([id, c]) => [id, c.unread || 0]));
    state.conversations = new Map(list.map((c) => [c.conversation_id, { ...c, unread: unread.get(c.conversation_id) || 0 }]));
    paintList();
  } catch (error) {
    toast(`Could not load conversations: ${error.message}`);
  }
}

function paintList() {
  const items = [...state.conversations.values()];
  $("conversations").replaceChildren(...(items.length ? items.map((c) =>
    el("li", {}, el("button", { type: "button", "aria-current": String(c.conversation_id === state.openId), "data-conversation": c.conversation_id, onclick: () => openConversation(c.conversation_id) },
      el("strong", {}, (c.visitor && c.visitor.name) || "Visitor"),
      c.unread ? el("span", { class: "unread", "aria-label": `${c.unread} unread` }, String(c.unread)) : el("span", { class: `pill ${c.status}` }, c.status),
      el("span", { class: "muted" }, [c.channel, c.topic].filter(Boolean).join(" · "))))) : [el("li", { class: "muted", style: "padding:14px" }, "Nothing here yet.")]));
}

function bumpConversation(event) {
  const id = event.data.conversation_id;
  const conversation = state.conversations.get(id);
  if (!conversation) return;
  const status = { "conversation.accepted": "engaged", "conversation.transferred": "engaged", "conversation.closed": "closed", "conversation.missed": "missed", "conversation.queued": "queued" }[event.type];
  if (status) conversation.status = status;
  if (event.type === "message.sent" && event.data.author_kind !== "agent" && id !== state.openId) conversation.unread = (conversation.unread || 0) + 1;
  paintList();
}

// --- the open conversation --------------------------------------------------------

async function openConversation(id, keepScroll = false) {
  state.openId = id;
  const conversation = state.conversations.get(id) || {};
  conversation.unread = 0;
  paintList();
  $("empty").hidden = true;
  $("chat-head").hidden = $("messages").hidden = false;
  $("chat-title").textContent = (conversation.visitor && conversation.visitor.name) || "Visitor";
  paintChatStatus(conversation.status);
  if (!keepScroll) {
    state.shown.clear();
    $("messages").replaceChildren($("earlier"));
  }
  try {
    const items = await session.call(`/api/conversations/${encodeURIComponent(id)}/messages`);
    state.oldestPosition = items.length ? items[0].position : null;
    $("earlier").hidden = !items.length;
    for (const item of items) render(item.event, false);
    scrollToEnd();
  } catch (error) {
    toast(`Could not load messages: ${error.message}`);
  }
  paintVisitor(conversation);
  markRead();
  $("input").focus();
}

function paintChatStatus(status) {
  const pill = $("chat-status");
  pill.className = `pill ${status || ""}`;
  pill.textContent = status || "";
  const mine = status === "engaged" && state.conversations.get(state.openId)?.agent_id === session.agent.id;
  $("composer").hidden = !mine;
  $("transfer").hidden = !mine || !session.can("transfer");
  $("close").hidden = status === "closed";
}

async function loadEarlier() {
  if (state.oldestPosition === null) return;
  const box = $("messages");
  const before = box.scrollHeight;
  // no limit: the server pages by the tenant's messages_on_enter, like the first read
  const items = await session.call(`/api/conversations/${encodeURIComponent(state.openId)}/messages?before=${state.oldestPosition}`);
  if (!items.length) { $("earlier").hidden = true; return; }
  state.oldestPosition = items[0].position;
  for (const item of items.reverse()) render(item.event, true);
  box.scrollTop = box.scrollHeight - before;
}

function render(event, prepend) {
  const data = event.data;
  if (event.type === "message.edited") return renderEdit(data, prepend);
  const id = data.message_id;
  if (!id || state.shown.has(id)) return;
  state.shown.add(id);
  let node;
  if (event.type === "message.system") {
    node = el("div", { class: "system-line" }, data.text);
  } else if (event.type === "connector.user_blocked") {
    const platform = PLATFORM_NAMES[data.platform] || data.platform;
    node = el("div", { class: "system-line" }, data.blocked
      ? `The customer blocked us on ${platform}: replies cannot reach them`
      : `The customer unblocked us on ${platform}`);
  } else {
    const body = event.type === "message.attachment_sent"
      ? el("span", {}, el("button", { class: "btn small", type: "button", onclick: () => openAttachment(data) }, `📎 ${data.filename}`), data.caption ? el("div", { class: "caption" }, data.caption) : "")
      : data.body;
    const who = data.author_kind === "agent" ? (data.author_name || "Agent") : data.author_kind === "customer" ? "Visitor" : data.author_kind;
    node = el("div", { class: `msg ${data.author_kind}`, "data-id": id }, el("span", { class: "meta" }, who), body);
    if (data.author_kind === "customer") state.lastCustomerMessage = id;
  }
  // system lines reach platform users too, but their delivery is not the agent's concern
  if (state.delivery.has(id) && node.classList.contains("msg")) paintDelivery(node, state.delivery.get(id));
  const box = $("messages");
  if (prepend) $("earlier").after(node);
  else box.append(node);
}

function renderEdit(data, prepend) {
  // A messaging-app user changed a message: the new text under the old one, marked edited.
  if (state.shown.has(data.edit_id)) return;
  state.shown.add(data.edit_id);
  const line = el("div", { class: "edited" }, `edited: ${data.body}`);
  const original = [...$("messages").querySelectorAll(".msg")].find((m) => m.dataset.id === data.message_id);
  if (original) { original.append(line); return; }
  const node = el("div", { class: "msg customer", "data-id": data.edit_id }, el("span", { class: "meta" }, "Visitor"), line);
  if (prepend) $("earlier").after(node);
  else $("messages").append(node);
}

// --- connector delivery results ------------------------------------------------------

function noteDelivery(event) {
  const data = event.data;
  const known = state.delivery.get(data.message_id);
  if (known && known.sent) return; // delivered is final: a late report of an earlier failed try changes nothing
  const platform = PLATFORM_NAMES[data.platform] || data.platform;
  const parts = data.parts > 1 ? ` in ${data.parts} parts` : "";
  const result = event.type === "connector.outbound_sent"
    ? { sent: true, text: `sent via ${platform}${parts}` }
    : { sent: false, text: data.permanent ? `failed: ${data.reason}` : `not delivered yet: ${data.reason} (retrying)` };
  if (data.parked) result.retry = { conversation_id: data.conversation_id, message_id: data.message_id };
  state.delivery.set(data.message_id, result);
  const node = [...$("messages").querySelectorAll(".msg")].find((m) => m.dataset.id === data.message_id);
  if (node) paintDelivery(node, result);
}

function paintDelivery(node, result) {
  let line = node.querySelector(".delivery");
  if (!line) node.append(line = el("span", { class: "delivery", role: "status" }));
  line.classList.toggle("failed", !result.sent);
  line.textContent = result.text; // the reason comes from the platform: text, never HTML
  if (result.retry) line.append(" — ", el("button", { class: "btn small retry", type: "button", onclick: () => retryDelivery(result.retry) }, "retry"));
}

function retryDelivery(fields) {
  // Parked replies are kept; this sends the conversation's parked ones again, in order.
  state.socket.command("retry_delivery", fields, { id: newKey() }).catch((error) => toast(`Not retried: ${error.message}`));
}

async function openAttachment(data) {
  // Links are signed and short-lived: ask for a fresh one at the moment of opening.
  try {
    const link = await session.call(`/api/conversations/${encodeURIComponent(data.conversation_id)}/attachments/${encodeURIComponent(data.attachment_id)}`);
    window.open(link.url, "_blank", "noopener");
  } catch (error) {
    toast(`Could not open the file: ${error.message}`);
  }
}

function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function markRead() {
  if (!state.openId || !state.lastCustomerMessage || state.readUpTo === state.lastCustomerMessage) return;
  const conversation = state.conversations.get(state.openId);
  if (!conversation || conversation.agent_id !== session.agent.id || conversation.status !== "engaged") return;
  state.readUpTo = state.lastCustomerMessage;
  state.socket.transient("read", { conversation_id: state.openId, message_id: state.lastCustomerMessage });
}

async function paintAvatar(panel, conversationId, attachmentId) {
  // the platform's profile picture, stored as an attachment of the conversation (signed link)
  try {
    const link = await session.call(`/api/conversations/${encodeURIComponent(conversationId)}/attachments/${encodeURIComponent(attachmentId)}`);
    panel.querySelector("h2").after(el("img", { class: "avatar", src: link.url, alt: "Profile picture", width: "64", height: "64" }));
  } catch {
    // the panel is informative only
  }
}

async function paintVisitor(conversation) {
  const visitor = conversation.visitor || {};
  const facts = [["Name", visitor.name], ["Email", visitor.email], ["Channel", conversation.channel], ["Topic", conversation.topic], ["Page", visitor.page_url], ["Started", conversation.created_at && new Date(conversation.created_at).toLocaleString()], ["Rating", conversation.rating && `${conversation.rating.score}/5`]];
  const panel = $("visitor");
  panel.replaceChildren(el("h2", {}, "Visitor"), el("dl", {}, facts.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  if (visitor.avatar_attachment_id) paintAvatar(panel, conversation.conversation_id, visitor.avatar_attachment_id);
  if (!visitor.id || !session.can("see_history")) return;
  try {
    const previous = (await session.call(`/api/conversations?view=all&visitor_id=${encodeURIComponent(visitor.id)}&limit=10`)).filter((c) => c.conversation_id !== conversation.conversation_id);
    panel.append(el("h2", {}, "Previous conversations"), previous.length
      ? el("ul", {}, previous.map((c) => el("li", {}, `${new Date(c.created_at).toLocaleDateString()} · ${c.status} · ${c.message_count} messages`)))
      : el("p", { class: "muted" }, "First conversation."));
  } catch {
    // the panel is informative only
  }
}

// --- composer, canned responses, typing ------------------------------------------------

function sendReply() {
  const body = $("input").value.trim();
  if (!body || !state.openId) return;
  const conversationId = state.openId;
  const fields = { conversation_id: conversationId, body, client_ts_ms: Date.now() };
  if (state.cannedPick && body.startsWith(state.cannedPick.text.slice(0, 20))) fields.canned_response_id = state.cannedPick.canned_id;
  $("input").value = "";
  state.cannedPick = null;
  hideCanned();
  stopTyping();
  state.socket.command("send", fields, { persist: true, id: newKey() }).catch((error) => {
    toast(`Not sent: ${error.message}`);
    if (state.openId === conversationId && !$("input").value) $("input").value = body;
  });
}

function composerKeys(event) {
  const menu = $("canned");
  if (!menu.hidden) {
    const items = [...menu.querySelectorAll("li")];
    const index = items.findIndex((li) => li.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = (index + (event.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      items.forEach((li, i) => li.setAttribute("aria-selected", String(i === next)));
      items[next].scrollIntoView({ block: "nearest" });
      return;
    }
    if ((event.key === "Enter" || event.key === "Tab") && items[index]) {
      event.preventDefault();
      items[index].click();
      return;
    }
    if (event.key === "Escape") { hideCanned(); return; }
  }
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    sendReply();
  }
}

let cannedQuery = 0;
async function composerInput() {
  const text = $("input").value;
  typing();
  if (!text.startsWith("/") || text.includes("\n")) return hideCanned();
  const query = ++cannedQuery;
  const found = await session.call(`/api/canned?q=${encodeURIComponent(text.slice(1))}`).catch(() => []);
  if (query !== cannedQuery) return; // a newer keystroke asked again
  const menu = $("canned");
  if (!found.length) {
    menu.replaceChildren(el("li", { class: "muted", "aria-disabled": "true" }, "No canned response matches"));
  } else {
    menu.replaceChildren(...found.map((canned, i) => el("li", { role: "option", "aria-selected": String(i === 0), onclick: () => pickCanned(canned) },
      el("span", { class: "shortcut" }, `/${canned.shortcut}`), el("span", {}, canned.text.length > 90 ? canned.text.slice(0, 90) + "…" : canned.text),
      canned.scope === "personal" ? el("span", { class: "pill" }, "personal") : null)));
  }
  menu.hidden = false;
}

function pickCanned(canned) {
  state.cannedPick = canned;
  $("input").value = canned.text;
  hideCanned();
  $("input").focus();
}

function hideCanned() {
  $("canned").hidden = true;
}

function typing() {
  if (!state.openId || $("composer").hidden) return;
  const now = Date.now();
  if (!state.typingSince || now - state.typingSince > 3000) {
    state.typingSince = now;
    state.socket.transient("typing", { conversation_id: state.openId, typing: true });
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSince && state.openId) state.socket.transient("typing", { conversation_id: state.openId, typing: false });
  state.typingSince = null;
}

// --- close and transfer ---------------------------------------------------------------

async function closeConversation() {
  if (!state.openId) return;
  try {
    await state.socket.command("close", { conversation_id: state.openId });
  } catch (error) {
    toast(`Could not close: ${error.message}`);
  }
}

async function openTransfer() {
  const dialog = $("transfer-dialog");
  const select = dialog.querySelector("select");
  try {
    const agents = await session.call("/api/admin/agents/status");
    select.replaceChildren(el("option", { value: "" }, "— choose —"), ...agents.filter((a) => a.agent_id !== session.agent.id).map((a) =>
      el("option", { value: a.agent_id }, `${a.name || a.agent_id} (${a.status}${a.available ? "" : ", busy"})`)));
  } catch {
    // the group field still works
  }
  dialog.showModal();
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "ok") return;
    const form = dialog.querySelector("form");
    const fields = { conversation_id: state.openId };
    if (form.agent.value) fields.to_agent_id = form.agent.value;
    else if (form.group.value.trim()) fields.to_group = form.group.value.trim();
    else return toast("Choose an agent or a group");
    if (form.note.value.trim()) fields.note = form.note.value.trim();
    try {
      await state.socket.command("transfer", fields, { retry: false });
      toast("Transfer requested");
    } catch (error) {
      toast(`Transfer failed: ${error.message}`);
    }
  }, { once: true });
}

// --- the event stream --------------------------------------------------------------

function onEvent(event) {
  const data = event.data || {};
  const me = session.agent.id;
  switch (event.type) {
    case "conversation.offered":
      if (data.agent_ids.includes(me)) addRequest(event);
      break;
    case "conversation.offer_withdrawn":
      if (data.agent_ids.includes(me)) dropRequest(data.conversation_id);
      break;
    case "conversation.accepted":
    case "conversation.transferred": {
      const agentId = data.agent_id || data.to_agent_id;
      dropRequest(data.conversation_id);
      const known = state.conversations.get(data.conversation_id);
      if (known) known.agent_id = agentId;
      if (agentId === me || known) loadList();
      if (data.conversation_id === state.openId) paintChatStatus("engaged");
      break;
    }
    case "conversation.requested":
      state.requested.set(data.conversation_id, { visitor: data.visitor || {}, topic: data.topic, channel: data.channel, since: event.occurred_at });
      if (state.view !== "mine") loadList();
      break;
    case "conversation.queued":
    case "conversation.missed":
      if (state.view !== "mine") loadList();
      break;
    case "conversation.closed":
      dropRequest(data.conversation_id);
      state.requested.delete(data.conversation_id);
      if (data.conversation_id === state.openId) paintChatStatus("closed");
      break;
    case "message.sent":
    case "message.attachment_sent":
    case "message.edited":
    case "message.system":
    case "connector.user_blocked":
      if (data.conversation_id === state.openId) {
        render(event, false);
        scrollToEnd();
        if (data.author_kind === "customer") {
          $("typing").textContent = "";
          if (document.hasFocus()) markRead();
        }
      }
      break;
    case "connector.outbound_sent":
    case "connector.outbound_failed":
      noteDelivery(event);
      break;
    case "typing.changed":
      if (data.conversation_id === state.openId && data.who_kind === "customer") $("typing").textContent = data.typing ? "Visitor is typing…" : "";
      break;
    default:
      break;
  }
  bumpConversation(event);
}

window.addEventListener("focus", markRead);
