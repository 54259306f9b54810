// Telling an agent about a new request: a chime and a browser notification.
//
// Browsers keep audio silent until the page had a user gesture, and a reload loses it;
// notifications need a permission, asked for from a gesture. So the top bar has a visible
// sound control: pressing it starts the audio and asks for notifications; the choice is
// remembered, and after a reload the first click or key anywhere on the page turns the
// audio back on (until then the control reads "Enable sound").

const KEY = "relaydesk:sound";

export class Alerts {
  constructor(button) {
    this.button = button;
    this.audio = null;
    this.wanted = localStorage.getItem(KEY) !== "off";
    button.addEventListener("click", () => this.toggle());
    if (this.wanted) {
      const resume = (event) => {
        if (event.target === button) return; // the control's own click decides by itself
        this._start();
        for (const kind of ["pointerdown", "keydown"]) removeEventListener(kind, resume, true);
      };
      for (const kind of ["pointerdown", "keydown"]) addEventListener(kind, resume, true);
      this._start();
    }
    this.paint();
  }

  get on() {
    return Boolean(this.wanted && this.audio && this.audio.state === "running");
  }

  async toggle() {
    this.wanted = !this.on;
    localStorage.setItem(KEY, this.wanted ? "on" : "off");
    if (this.wanted) {
      await this._start();
      if ("Notification" in window && Notification.permission === "default") await Notification.requestPermission().catch(() => {});
    }
    this.paint();
  }

  async _start() {
    if (!this.wanted) return;
    try {
      if (!this.audio) {
        this.audio = new AudioContext();
        this.audio.addEventListener("statechange", () => this.paint());
      }
      if (this.audio.state === "suspended") await this.audio.resume();
    } catch {
      // no audio here: notifications and the title count remain
    }
    this.paint();
  }

  paint() {
    const on = this.on;
    this.button.setAttribute("aria-pressed", String(on));
    this.button.textContent = on ? "Sound on" : "Enable sound";
    this.button.classList.toggle("attention", !on);
  }

  /** A new request (or transfer) for this agent. */
  request(title, body, tag) {
    if (this.on) chime(this.audio);
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const note = new Notification(title, { body, tag });
        note.onclick = () => { window.focus(); note.close(); };
      } catch {
        // some browsers allow notifications from a service worker only: the chime remains
      }
    }
  }
}

function chime(audio) {
  // A short two-tone chime (no audio file to ship).
  [660, 880].forEach((frequency, i) => {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.value = 0.05;
    tone.connect(gain).connect(audio.destination);
    tone.start(audio.currentTime + i * 0.15);
    tone.stop(audio.currentTime + i * 0.15 + 0.12);
  });
}
