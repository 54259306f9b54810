// The agent console: requests, conversations, the chat view and the composer.
// Who has which chat comes from routing (GET /api/workspace, then the event stream, merged
// by log position: workspace.js); the history read model serves messages, the "All" list
// and the visitor panel. Every chat text is rendered with textContent.
import { RelaySocket, newKey, readMessagesUpTo, hasMessagesBefore, readPageBefore } from "./socket.js";
import { AgentSession, signIn, el, toast, ago } from "./session.js";
import { Workspace } from "./workspace.js";
import { Alerts } from "./alerts.js";

const $ = (id) => document.getElementById(id);
const session = new AgentSession();
const WORKSPACE_TRIES = 40; // a routing answer behind the socket's start is asked again
const WORKSPACE_RETRY_MS = 250;
const HISTORY_TRIES = 10; // each waits up to 3 s on the server for history to catch up
const OPEN_KEY = "relaydesk:open"; // the chat open in this tab, opened again after a reload

const state = {
  view: "mine",
  listed: new Map(), // id -> history conversation document (the "All" list)
  openId: null,
  shown: new Set(),
  oldestPosition: null,
  pageSize: 0, // the first page's length: "Load earlier messages" reads pages of it
  lastCustomer: null, // {id, position}: the customer's latest message in the open chat
  cannedPick: null,
  drafts: new Map(), // conversation id -> what was typed there and not sent (kept while switching)
  agentNames: new Map(), // agent id -> name, from the transfer dialog's list
  delivery: new Map(), // message id -> {sent, text}: connector delivery results, which may arrive before the message is shown
  socketStart: null, // the log position the socket started at: a workspace must reach it
  loads: 0,
};

const PLATFORM_NAMES = { telegram: "Telegram", messenger: "Messenger", wechat: "WeChat" };
const TRANSFER_OUTCOMES = {
  accepted: (who) => `${who} accepted your transfer`,
  declined: (who) => `${who} declined your transfer; the chat stays with you`,
  expired: () => "Nobody took your transfer in time; the chat stays with you",
  agent_offline: (who) => `${who} went offline; your transfer was returned`,
};

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
  state.workspace = new Workspace(session.agent.id);
  state.alerts = new Alerts($("sound"));
  $("app").hidden = false;
  $("me").textContent = session.agent.name || session.agent.id;
  $("admin-link").hidden = !["manage_agents", "manage_settings", "manage_connectors", "view_billing", "view_audit", "view_reports"].some((p) => session.can(p));
  $("tab-all").hidden = !session.can("see_all_conversations");
  $("reports-link").hidden = !session.can("view_reports");
  $("status").value = sessionStorage.getItem("relaydesk:status") || "online";
  state.openId = sessionStorage.getItem(OPEN_KEY); // reloadAll opens it once connected
  paintStatus();
  bindControls();
  state.socket = new RelaySocket({
    url: location.origin.replace(/^http/, "ws") + "/ws",
    token: () => session.token,
    onEvent,
    onState: connectionState,
    onResync: () => { state.socketStart = null; reloadAll(); },
    onAuthExpired: () => session.refresh(),
  }).start();
  setInterval(tickWaits, 1000);
}

function bindControls() {
  $("logout").addEventListener("click", async () => {
    await state.socket.command("status", { status: "offline" }).catch(() => {});
    sessionStorage.removeItem(OPEN_KEY);
    await session.logout();
    location.reload();
  });
  $("status").addEventListener("change", () => {
    sessionStorage.setItem("relaydesk:status", $("status").value);
    paintStatus();
    state.socket.command("status", { status: $("status").value }).catch((e) => toast(e.message));
  });
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); sendReply(); });
  $("input").addEventListener("keydown", composerKeys);
  $("input").addEventListener("input", composerInput);
  $("close").addEventListener("click", closeConversation);
  $("transfer").addEventListener("click", openTransfer);
  $("pickup").addEventListener("click", () => accept(state.openId));
  $("earlier").addEventListener("click", loadEarlier);
}

function showView(view) {
  state.view = view;
  document.querySelectorAll(".tabs button").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.view === view)));
  if (view === "all") loadList();
  paintList();
}

function connectionState(kind) {
  const line = $("connection");
  line.classList.toggle("down", kind !== "online");
  line.textContent = { online: "connected", connecting: "connecting…", reconnecting: "reconnecting…", refused: "signed out", stopped: "offline" }[kind] || kind;
  if (kind === "online") {
    state.socket.command("status", { status: $("status").value }).catch((e) => toast(e.message));
    if (!state.loads++) {
      // The first load waits for the socket: events after its start position arrive live,
      // the workspace covers everything up to its own position.
      state.socketStart = state.socket.position;
      reloadAll();
    }
  }
  if (kind === "refused") { session.logout(); location.reload(); }
}

function paintStatus() {
  $("status-dot").className = `status-dot ${$("status").value}`;
}

async function reloadAll() {
  await loadWorkspace();
  if (state.view === "all") loadList();
  if (state.openId) openConversation(state.openId);
}

// --- the workspace: offers, my chats, the queue -------------------------------------

async function loadWorkspace() {
  try {
    let answer;
    for (let tries = 0; ; tries++) {
      answer = await session.call("/api/workspace");
      const behind = state.socketStart !== null && answer.position !== null && answer.position < state.socketStart;
      if (!behind || tries >= WORKSPACE_TRIES) break;
      await new Promise((resolve) => setTimeout(resolve, WORKSPACE_RETRY_MS));
    }
    state.workspace.load(answer);
    paintRequests();
    paintList();
    if (state.openId) paintChat();
  } catch (error) {
    toast(`Could not load your requests: ${error.message}`);
  }
}

const nameOf = (entry) => (entry && (entry.visitor_name || (entry.visitor && entry.visitor.name))) || "Visitor";

function paintRequests() {
  const offers = [...state.workspace.offers.values()];
  const box = $("requests");
  $("request-count").textContent = String(offers.length);
  document.title = offers.length ? `(${offers.length}) relaydesk console` : "relaydesk console";
  if (!offers.length) {
    if (!box.querySelector(".nobody")) box.replaceChildren(el("p", { class: "muted nobody" }, "No one is waiting."));
    return;
  }
  box.querySelector(".nobody")?.remove();
  // Cards are updated in place, never rebuilt: keyboard focus and a press in progress survive.
  const cards = new Map([...box.querySelectorAll(".request")].map((card) => [card.dataset.conversation, card]));
  let previous = null;
  for (const offer of offers) {
    const card = cards.get(offer.conversation_id) || requestCard(offer.conversation_id);
    cards.delete(offer.conversation_id);
    fillCard(card, offer);
    const expected = previous ? previous.nextElementSibling : box.firstElementChild;
    if (expected !== card) {
      if (previous) previous.after(card);
      else box.prepend(card);
    }
    previous = card;
  }
  for (const stale of cards.values()) stale.remove();
}

function requestCard(id) {
  return el("div", { class: "request", "data-conversation": id },
    el("div", { class: "who" }),
    el("div", { class: "muted" }, el("span", { class: "about" }), el("span", { class: "wait" })),
    el("div", { class: "muted handover", hidden: true }),
    el("div", { class: "actions" },
      el("button", { class: "btn primary small", type: "button", onclick: () => accept(id) }, "Accept"),
      el("button", { class: "btn small", type: "button", onclick: () => decline(id) }, "Decline")));
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function fillCard(card, offer) {
  setText(card.querySelector(".who"), nameOf(offer));
  setText(card.querySelector(".about"), [offer.topic, offer.channel].filter(Boolean).join(" · ") || "web");
  card.querySelector(".wait").dataset.since = offer.requested_at || "";
  setText(card.querySelector(".wait"), waiting(offer.requested_at));
  const handover = card.querySelector(".handover");
  handover.hidden = !offer.transfer_from;
  if (offer.transfer_from) setText(handover, `Transfer from ${offer.transfer_from_name || offer.transfer_from}` + (offer.transfer_note ? `: ${offer.transfer_note}` : ""));
}

function waiting(since) {
  return since ? ` · waiting ${ago(since)}` : "";
}

function tickWaits() {
  for (const wait of $("requests").querySelectorAll(".wait")) setText(wait, waiting(wait.dataset.since));
}

async function accept(id) {
  try {
    const ack = await state.socket.command("accept", { conversation_id: id });
    state.workspace.acceptedByMe(id, ack.data || {});
    paintRequests();
    if (state.view !== "mine") showView("mine");
    openConversation(id);
  } catch (error) {
    state.workspace.offers.delete(id);
    paintRequests();
    toast(error.code === "already_assigned" ? "Another agent accepted this chat first." : `Could not accept: ${error.message}`);
  }
}

async function decline(id) {
  state.workspace.offers.delete(id);
  paintRequests();
  await state.socket.command("decline", { conversation_id: id }).catch((e) => toast(e.message));
}

function tell(notice) {
  if (notice.kind === "offer") {
    const offer = state.workspace.offers.get(notice.id);
    if (notice.transfer) loadWorkspace(); // the sender's name and the note for a group's members
    if (offer) state.alerts.request(notice.transfer ? "Chat transferred to you" : "New chat request", [nameOf(offer), offer.topic].filter(Boolean).join(" · "), notice.id);
  } else if (notice.kind === "transfer") {
    const who = state.agentNames.get(notice.agent) || notice.agent || "The receiver";
    toast(TRANSFER_OUTCOMES[notice.outcome](who));
  }
}

// --- conversation lists -----------------------------------------------------------

async function loadList() {
  try {
    const list = await session.call(`/api/conversations?view=${state.view}`);
    state.listed = new Map(list.map((c) => [c.conversation_id, c]));
    paintList();
  } catch (error) {
    toast(`Could not load conversations: ${error.message}`);
  }
}

function entries() {
  const ws = state.workspace;
  if (state.view === "mine") return [...ws.chats.values()];
  if (state.view === "queued") return [...ws.queue.values()];
  return [...state.listed.values()].map((c) => ws.chats.get(c.conversation_id) || c);
}

function paintList() {
  const items = entries();
  $("conversations").replaceChildren(...(items.length ? items.map((c) =>
    el("li", {}, el("button", { type: "button", "aria-current": String(c.conversation_id === state.openId), "data-conversation": c.conversation_id, onclick: () => openConversation(c.conversation_id) },
      el("strong", {}, nameOf(c)),
      c.unread ? el("span", { class: "unread", "aria-label": `${c.unread} unread` }, String(c.unread)) : el("span", { class: `pill ${c.status}` }, c.status),
      el("span", { class: "muted" }, [c.channel, c.topic].filter(Boolean).join(" · "))))) : [el("li", { class: "muted nothing" }, "Nothing here yet.")]));
}

// --- the open conversation --------------------------------------------------------

function known(id) {
  const ws = state.workspace;
  return ws.chats.get(id) || ws.offers.get(id) || ws.queue.get(id) || state.listed.get(id) || { conversation_id: id, ...ws.details(id) };
}

/** Leave the open conversation's composer: its typing notice ends (for that conversation,
 * not the next one) and its draft is kept for it, so a reply typed for one customer is never
 * sent to another. */
function leaveComposer() {
  if (!state.openId) return;
  stopTyping();
  const draft = $("input").value;
  if (draft.trim()) state.drafts.set(state.openId, draft);
  else state.drafts.delete(state.openId);
  $("input").value = "";
  state.cannedPick = null;
  hideCanned();
}

async function openConversation(id) {
  if (state.openId !== id) {
    leaveComposer();
    $("input").value = state.drafts.get(id) || "";
    state.openId = id;
    sessionStorage.setItem(OPEN_KEY, id);
    state.shown.clear();
    state.lastCustomer = null;
    state.oldestPosition = null;
    $("messages").replaceChildren($("earlier"));
    $("earlier").hidden = true; // until a read says this chat has earlier messages
  }
  $("empty").hidden = true;
  $("chat-head").hidden = $("messages").hidden = false;
  paintChat();
  paintList();
  paintVisitor(known(id));
  try {
    // Up to what the socket has seen: history may lag behind the log, and a message it is
    // missing would never show (only events after the socket's start arrive live).
    const read = messagesOf(id);
    const items = await readMessagesUpTo(read, state.socket.position, { tries: HISTORY_TRIES, wanted: () => state.openId === id });
    if (state.openId !== id) return;
    // The button only when there are messages before the oldest shown (the page does not
    // say so: a chat of two messages answers one too), asked before drawing, so the chat
    // and its button appear together. A chat paged back further keeps what it knows.
    const oldest = items.length > 0 && (state.oldestPosition === null || items[0].position < state.oldestPosition);
    const more = oldest && (await earlierExists(read, items[0].position));
    if (state.openId !== id) return;
    if (oldest && (state.oldestPosition === null || items[0].position < state.oldestPosition)) {
      state.oldestPosition = items[0].position;
      state.pageSize = items.length;
      $("earlier").hidden = !more;
    }
    for (const item of items) render(item.event, item.position);
    // replies of this chat still in the outbox (typed while the connection was down)
    for (const frame of state.socket.pendingFrames()) if (frame.op === "send" && frame.conversation_id === id) renderPending(frame);
    scrollToEnd();
  } catch (error) {
    if ((error.status === 403 || error.status === 404) && state.openId === id) {
      forgetOpen(); // e.g. the chat kept over a reload went to another agent meanwhile
      return;
    }
    toast(`Could not load messages: ${error.message}`);
  }
  markRead();
  if (!$("composer").hidden) $("input").focus();
}

function forgetOpen() {
  leaveComposer();
  state.openId = null;
  sessionStorage.removeItem(OPEN_KEY);
  $("chat-head").hidden = $("messages").hidden = $("composer").hidden = $("handover").hidden = true;
  $("empty").hidden = false;
  $("visitor").replaceChildren(el("h2", {}, "Visitor"), el("p", { class: "muted" }, "No conversation selected."));
  paintList();
}

function paintChat() {
  const id = state.openId;
  const entry = known(id);
  const chat = state.workspace.chats.get(id);
  const status = entry.status || "";
  setText($("chat-title"), nameOf(entry));
  const pill = $("chat-status");
  pill.className = `pill ${status}`;
  setText(pill, status.replace("_", " "));
  const mine = Boolean(chat && chat.agent_id === session.agent.id && chat.status !== "closed");
  $("composer").hidden = !mine;
  $("transfer").hidden = !mine || chat.status !== "engaged" || !session.can("transfer");
  $("close").hidden = status === "closed" || (!mine && !session.can("see_all_conversations"));
  $("pickup").hidden = !["queued", "missed"].includes(status);
  // The note of the transfer that brought the chat here: for this agent, never the customer.
  const handover = $("handover");
  handover.hidden = !(mine && chat.transfer_note);
  if (!handover.hidden) setText(handover, `Note from ${chat.transfer_from_name || chat.transfer_from}: ${chat.transfer_note}`);
  if (chat && chat.unread && document.hasFocus()) chat.unread = 0;
}

/** `read(query)` of the messages of conversation `id` (socket.js readMessagesUpTo). */
function messagesOf(id) {
  return (query) => session.call(`/api/conversations/${encodeURIComponent(id)}/messages${query}`);
}

async function earlierExists(read, position) {
  try {
    return await hasMessagesBefore(read, position);
  } catch {
    return true; // not known: the button, and an empty page read with it removes it
  }
}

async function loadEarlier() {
  const id = state.openId;
  const position = state.oldestPosition;
  if (position === null) return;
  const box = $("messages");
  const before = box.scrollHeight;
  // Pages of the first page's length (the tenant's messages_on_enter), one more asked for
  // to learn whether this page reaches the chat's first message.
  let page;
  try {
    page = await readPageBefore(messagesOf(id), position, state.pageSize);
  } catch (error) {
    toast(`Could not load messages: ${error.message}`);
    return;
  }
  if (state.openId !== id || state.oldestPosition !== position) return; // another chat, or a page drawn meanwhile
  const { items, more } = page;
  $("earlier").hidden = !more;
  if (!items.length) return;
  state.oldestPosition = items[0].position;
  for (const item of items) render(item.event, item.position);
  box.scrollTop = box.scrollHeight - before;
}

function render(event, position) {
  const data = event.data;
  if (event.type === "message.edited") return renderEdit(data, position);
  const id = data.message_id;
  if (!id || state.shown.has(id)) return;
  state.shown.add(id);
  if (data.author_kind === "agent") dropPending(data.client_ts_ms); // our reply, now on the log
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
    // A customer's name when the platform gives one with each message: in a Telegram group
    // several members write in one conversation.
    const who = data.author_kind === "agent" ? (data.author_name || "Agent") : data.author_kind === "customer" ? (data.author_name || "Visitor") : data.author_kind;
    node = el("div", { class: `msg ${data.author_kind}`, "data-id": id }, el("span", { class: "meta" }, who), body);
    if (data.client_ts_ms) node.dataset.ts = String(Number(data.client_ts_ms)); // a pending line of ours is matched to it
    if (data.author_kind === "customer" && !(state.lastCustomer && state.lastCustomer.position > position)) state.lastCustomer = { id, position };
  }
  // system lines reach platform users too, but their delivery is not the agent's concern
  if (state.delivery.has(id) && node.classList.contains("msg")) paintDelivery(node, state.delivery.get(id));
  place(node, position);
}

function place(node, position) {
  // In log order, whatever order the history read and the live stream delivered them in.
  node.dataset.position = String(position);
  const earlier = $("earlier");
  let after = earlier;
  for (let child = $("messages").lastElementChild; child && child !== earlier; child = child.previousElementSibling) {
    if (Number(child.dataset.position) < position) { after = child; break; }
  }
  after.after(node);
}

function renderEdit(data, position) {
  // A messaging-app user changed a message: the new text under the old one, marked edited.
  if (state.shown.has(data.edit_id)) return;
  state.shown.add(data.edit_id);
  const line = el("div", { class: "edited" }, `edited: ${data.body}`);
  const original = [...$("messages").querySelectorAll(".msg")].find((m) => m.dataset.id === data.message_id);
  if (original) { original.append(line); return; }
  const node = el("div", { class: "msg customer", "data-id": data.edit_id }, el("span", { class: "meta" }, "Visitor"), line);
  place(node, position);
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
  if (data.parked) {
    // What a parked reply waits for (docs/connectors.md, "Parked replies"): a retry (its
    // own, or new connector credentials), or an earlier parked reply of the conversation.
    if (data.waits_for === "earlier_reply") {
      result.behind = data.behind; // no retry of its own: it goes out after that one
      result.text = "waiting behind an earlier reply that failed: it goes out after that one, once retried";
    } else result.retry = { conversation_id: data.conversation_id, message_id: data.message_id };
  }
  state.delivery.set(data.message_id, result);
  paintDeliveryOf(data.message_id);
  if (result.behind) paintDeliveryOf(result.behind); // its retry button counts this one
}

function paintDeliveryOf(messageId) {
  const result = state.delivery.get(messageId);
  const node = [...$("messages").querySelectorAll(".msg")].find((m) => m.dataset.id === messageId);
  if (result && node) paintDelivery(node, result, messageId);
}

function paintDelivery(node, result, messageId = node.dataset.id) {
  let line = node.querySelector(".delivery");
  if (!line) node.append(line = el("span", { class: "delivery", role: "status" }));
  line.classList.toggle("failed", !result.sent);
  line.textContent = result.text; // the reason comes from the platform: text, never HTML
  if (!result.retry) return;
  // A retry sends this reply, then the ones waiting behind it (they keep their order).
  const waiting = [...state.delivery.values()].filter((r) => !r.sent && r.behind === messageId).length;
  const label = waiting ? `retry (and the ${waiting} waiting behind it)` : "retry";
  line.append(" — ", el("button", { class: "btn small retry", type: "button", onclick: () => retryDelivery(result.retry) }, label));
}

function retryDelivery(fields) {
  // This parked reply goes again, then the replies of the conversation waiting behind it.
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
  // A read of the customer's latest message is this agent's read position on the log:
  // routing counts unread from it, so the count survives reloads and other devices.
  const last = state.lastCustomer;
  const chat = state.workspace.chats.get(state.openId);
  if (!chat || !last || chat.agent_id !== session.agent.id || chat.status !== "engaged") return;
  if (chat.unread) { chat.unread = 0; paintList(); }
  if (state.readUpTo === last.id) return;
  state.readUpTo = last.id;
  state.socket.transient("read", { conversation_id: state.openId, message_id: last.id });
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

async function paintVisitor(entry) {
  const id = entry.conversation_id;
  let conversation = entry;
  // Contact details and the start time come from the history document (informative only:
  // it may lag; who has the chat never comes from it).
  const view = state.workspace.chats.has(id) ? "mine" : state.listed.has(id) ? null : state.workspace.queue.has(id) ? "queued" : null;
  if (view) {
    const found = await session.call(`/api/conversations?view=${view}`).then((list) => list.find((c) => c.conversation_id === id)).catch(() => null);
    if (state.openId !== id) return;
    if (found) conversation = { ...found, ...entry, visitor: found.visitor };
  } else if (state.listed.has(id)) conversation = { ...entry, ...state.listed.get(id) };
  const visitor = conversation.visitor || {};
  const started = conversation.created_at || conversation.requested_at;
  const facts = [["Name", visitor.name || conversation.visitor_name], ["Email", visitor.email], ["Channel", conversation.channel], ["Topic", conversation.topic], ["Page", visitor.page_url], ["Started", started && new Date(started).toLocaleString()], ["Rating", conversation.rating && `${conversation.rating.score}/5`]];
  const panel = $("visitor");
  panel.replaceChildren(el("h2", {}, "Visitor"), el("dl", {}, facts.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  // The id is what an auditor looks a conversation up by (admin pages, `relaydesk replay
  // --conversation`); with view_audit the timeline is one click away.
  panel.append(el("p", { class: "muted" }, "Conversation ", el("code", {}, id)));
  if (session.can("view_audit")) panel.append(el("p", {}, el("a", { href: `/admin#audit=${encodeURIComponent(id)}` }, "Audit trail")));
  // The picture's id from history's document, or from the request event the console saw
  // (history may lag: the panel is painted once, when the chat opens).
  const avatar = visitor.avatar_attachment_id || entry.avatar_attachment_id;
  if (avatar) paintAvatar(panel, conversation.conversation_id, avatar);
  if (!visitor.id || !session.can("see_history")) return;
  try {
    const previous = (await session.call(`/api/conversations?view=all&visitor_id=${encodeURIComponent(visitor.id)}&limit=10`)).filter((c) => c.conversation_id !== id);
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
  state.drafts.delete(conversationId);
  hideCanned();
  stopTyping();
  renderPending(fields);
  state.socket.command("send", fields, { persist: true, id: newKey() }).catch((error) => {
    dropPending(fields.client_ts_ms);
    toast(`Not sent: ${error.message}`);
    if (state.openId === conversationId && !$("input").value) $("input").value = body;
  });
}

/** A reply shown at once, greyed until its event comes (while reconnecting it waits in the
 * socket's outbox: without this line the text left the composer and showed nowhere, and it
 * was easy to type and send it twice). Matched to its event by the client timestamp. */
function renderPending(fields) {
  if ($("messages").querySelector(`.msg[data-ts="${Number(fields.client_ts_ms)}"]`)) return; // pending already, or on the log
  $("messages").append(el("div", { class: "msg agent pending", "data-ts": String(fields.client_ts_ms), title: "Sending…" },
    el("span", { class: "meta" }, "You · sending…"), fields.body));
  scrollToEnd();
}

function dropPending(clientTs) {
  const pending = clientTs && $("messages").querySelector(`.pending[data-ts="${Number(clientTs)}"]`);
  if (pending) pending.remove();
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
    // An option like the others (a listbox holds options only: a bare <li> in it fails axe's listitem rule), one that cannot be picked.
    menu.replaceChildren(el("li", { role: "option", class: "muted", "aria-disabled": "true", "aria-selected": "false" }, "No canned response matches"));
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
    for (const a of agents) state.agentNames.set(a.agent_id, a.name || a.agent_id);
    select.replaceChildren(el("option", { value: "" }, "— choose —"), ...agents.filter((a) => a.agent_id !== session.agent.id).map((a) =>
      el("option", { value: a.agent_id }, `${a.name || a.agent_id} (${a.status}${a.available ? "" : ", busy"})`)));
  } catch {
    // the group field still works
  }
  try {
    const groups = await session.call("/api/transfer/groups");
    $("transfer-groups").replaceChildren(...groups.map((g) => el("option", { value: g.name })));
  } catch {
    // a group's name can still be typed
  }
  dialog.querySelector("form").reset(); // nothing of the last transfer (its group, its note about another customer)
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

function onEvent(event, position) {
  const data = event.data || {};
  for (const notice of state.workspace.receive(event, position)) tell(notice);
  switch (event.type) {
    case "conversation.offered":
    case "conversation.offer_withdrawn":
    case "conversation.offer_declined":
    case "conversation.accepted":
    case "conversation.transferred":
    case "conversation.transfer_returned":
    case "conversation.queued":
    case "conversation.missed":
    case "conversation.closed":
      paintRequests();
      paintList();
      if (data.conversation_id === state.openId) paintChat();
      break;
    case "message.sent":
    case "message.attachment_sent":
    case "message.edited":
    case "message.system":
    case "connector.user_blocked":
      if (data.conversation_id === state.openId) {
        render(event, position);
        scrollToEnd();
        if (data.author_kind === "customer") {
          $("typing").textContent = "";
          if (document.hasFocus()) markRead();
        }
      }
      if (data.author_kind === "customer") paintList();
      break;
    case "message.read":
      paintList();
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
}

window.addEventListener("focus", markRead);
