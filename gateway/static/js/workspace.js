// The console's live state — offers to me, my chats, the queue — as routing, the single
// writer of who has which chat, decided it. Loaded from GET /api/workspace, which says the
// log position it stands at, and kept current by the events after that position, applied
// in log order; events at or before it are already in the answer. The history read model
// never says what is mine: it may lag behind the log (docs/protocol.md, GET /api/workspace).

const RECENT = 2000; // events kept to replay over a load (routing lags the socket a little)

const byId = (entries) => new Map(entries.map((entry) => [entry.conversation_id, entry]));

export class Workspace {
  constructor(me) {
    this.me = me;
    this.position = null;
    this.offers = new Map();
    this.chats = new Map();
    this.queue = new Map();
    this.requested = new Map(); // id -> details from conversation.requested
    this.notes = new Map(); // id -> {from, note} from conversation.transfer_requested
    this.recent = []; // [{event, position}], the latest RECENT events received
  }

  /** Take a workspace answer, then replay the events received after its position. */
  load(answer) {
    this.position = answer.position;
    this.offers = byId(answer.offers);
    this.chats = byId(answer.chats);
    this.queue = byId(answer.queue);
    for (const { event, position } of this.recent) if (this.after(position)) this.apply(event);
  }

  after(position) {
    return this.position === null || this.position === undefined || position > this.position;
  }

  /** An event from the socket: recorded for the next load, applied unless the load has it.
   * Returns what the console should tell the agent: [{kind: "offer", id}, {kind: "transfer", …}]. */
  receive(event, position) {
    this.recent.push({ event, position });
    if (this.recent.length > RECENT) this.recent.shift();
    return this.after(position) ? this.apply(event) : [];
  }

  /** What the console knows about a conversation: name, picture, topic, channel, request time. */
  details(id) {
    const known = this.offers.get(id) || this.chats.get(id) || this.queue.get(id) || {};
    const told = this.requested.get(id) || {};
    return {
      conversation_id: id,
      visitor_name: known.visitor_name || told.visitor_name || null,
      avatar_attachment_id: known.avatar_attachment_id || told.avatar_attachment_id || null,
      topic: known.topic || told.topic || null,
      channel: known.channel || told.channel || "web",
      department: known.department || told.department || null,
      requested_at: known.requested_at || told.requested_at || null,
    };
  }

  /** Our accept was decided (its ack): the chat is ours now, whatever the read models say. */
  acceptedByMe(id, data = {}) {
    const offer = this.offers.get(id) || {};
    const details = this.details(id); // before the offer goes: it holds the name and topic
    this.offers.delete(id);
    this.queue.delete(id);
    const chat = this.chats.get(id);
    if (chat) Object.assign(chat, { status: "engaged", agent_id: this.me });
    else this.chats.set(id, { ...details, ...this._handover(offer), status: data.status || "engaged", agent_id: this.me, unread: 0, transfer_to: [] });
  }

  _handover(offer) {
    return { transfer_from: offer.transfer_from || null, transfer_from_name: offer.transfer_from_name || null, transfer_note: offer.transfer_note || null };
  }

  apply(event) {
    const data = event.data || {};
    const id = data.conversation_id;
    const me = this.me;
    switch (event.type) {
      case "conversation.requested":
        this.requested.set(id, { visitor_name: (data.visitor && data.visitor.name) || null, avatar_attachment_id: (data.visitor && data.visitor.avatar_attachment_id) || null, topic: data.topic || null, channel: data.channel || "web", department: data.department || null, requested_at: event.occurred_at });
        return [];
      case "conversation.transfer_requested":
        this.notes.set(id, { from: data.from_agent_id, note: data.note || null });
        return [];
      case "conversation.queued":
      case "conversation.missed": {
        // Routing folds both as "no offer stands, no agent has it" (over_limit: never routed).
        this.offers.delete(id);
        const chat = this.chats.get(id);
        if (chat && chat.status !== "closed") this.chats.delete(id);
        if (data.reason === "over_limit") this.queue.delete(id);
        else this.queue.set(id, { ...this.details(id), status: event.type === "conversation.queued" ? "queued" : "missed", agent_id: null, queue_position: event.type === "conversation.queued" ? data.position : null });
        return [];
      }
      case "conversation.offered": {
        const found = [];
        if (data.agent_ids.includes(me)) {
          this.queue.delete(id);
          const told = this.notes.get(id) || {};
          const transfer = data.transfer_from ? { transfer_from: data.transfer_from, transfer_from_name: data.transfer_from, transfer_note: told.note || null } : { transfer_from: null, transfer_from_name: null, transfer_note: null };
          const expires = new Date(Date.parse(event.occurred_at) + data.expires_in_s * 1000).toISOString();
          this.offers.set(id, { ...this.details(id), ...transfer, status: data.transfer_from ? "transfer_pending" : "offered", offer_expires_at: expires });
          found.push({ kind: "offer", id, transfer: Boolean(data.transfer_from) });
        }
        const chat = this.chats.get(id);
        if (data.transfer_from === me && chat) Object.assign(chat, { status: "transfer_pending", transfer_to: [...data.agent_ids] });
        return found;
      }
      case "conversation.offer_withdrawn":
        if (data.agent_ids.includes(me)) this.offers.delete(id);
        return [];
      case "conversation.offer_declined":
        if (data.agent_id === me) this.offers.delete(id);
        return [];
      case "conversation.accepted":
        this.queue.delete(id);
        if (data.agent_id === me) this.acceptedByMe(id);
        else {
          this.offers.delete(id);
          this.chats.delete(id);
        }
        return [];
      case "conversation.transferred": {
        this.queue.delete(id);
        if (data.to_agent_id === me) this.acceptedByMe(id);
        else this.offers.delete(id);
        if (data.from_agent_id === me) {
          this.chats.delete(id);
          return [{ kind: "transfer", id, outcome: "accepted", agent: data.to_agent_id }];
        }
        return [];
      }
      case "conversation.transfer_returned": {
        const chat = this.chats.get(id);
        if (data.from_agent_id !== me) return [];
        if (chat) Object.assign(chat, { status: "engaged", transfer_to: [] });
        return [{ kind: "transfer", id, outcome: data.reason, agent: data.by_agent_id || null }];
      }
      case "conversation.closed": {
        this.offers.delete(id);
        this.queue.delete(id);
        const chat = this.chats.get(id);
        if (chat) Object.assign(chat, { status: "closed", transfer_to: [] });
        return [];
      }
      case "message.sent":
      case "message.attachment_sent": {
        const chat = this.chats.get(id);
        if (chat && data.author_kind === "customer") chat.unread = (chat.unread || 0) + 1;
        return [];
      }
      case "message.read": {
        const chat = this.chats.get(id);
        if (chat && data.reader_kind === "agent" && data.reader_id === me) chat.unread = 0; // read here or on another device
        return [];
      }
      default:
        return [];
    }
  }
}
