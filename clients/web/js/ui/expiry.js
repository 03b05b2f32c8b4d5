// Expiry: a session expires after MEDSEG_SESSION_TTL_S without a request on it. The viewer
// follows when it will (the record's expires_at, pushed on by every answered request on the
// session) and, `warnBeforeS` before that, shows a note with a "Keep working" button that sends
// POST /v1/sessions/{id}/keepalive and takes the new expires_at from the answer.

export class Expiry {
  constructor(app, el) {
    this.app = app;
    this.el = el;
    this.warnBeforeS = 5 * 60; // the warning shows this long before expiry (tests lower it)
    this.expiresAt = null; // ms since the epoch, or null when unknown
    this.ttlS = null; // the idle time a request gives
    this.sessionId = null;
    el.innerHTML = `<strong>Session expiring</strong> <span class="left"></span>
      <button class="keep primary">Keep working</button>`;
    el.querySelector('.keep').onclick = () => this.keepAlive();
    app.addEventListener('session', () => this.follow(app.session.record));
    app.addEventListener('lost', () => { this.sessionId = null; this.check(); });
    app.api.addEventListener('response', (e) => this.touched(e.detail));
    this.timer = setInterval(() => this.check(), 1000);
  }

  follow(record) {
    this.sessionId = record?.id ?? null;
    this.expiresAt = record?.expires_at ? Date.parse(record.expires_at) : null;
    this.ttlS = record?.expires_in_s ?? null;
    this.check();
  }

  /** Every answered request on the session starts its idle time again. */
  touched({ path, status }) {
    if (!this.sessionId || !this.ttlS || status >= 400) return;
    if (!path?.startsWith(`/v1/sessions/${this.sessionId}`)) return;
    this.expiresAt = Math.max(this.expiresAt ?? 0, Date.now() + this.ttlS * 1000);
    this.check();
  }

  /** Seconds until the session expires if left idle (null when unknown). */
  remainingS() {
    return this.expiresAt === null ? null : (this.expiresAt - Date.now()) / 1000;
  }

  check() {
    const left = this.remainingS();
    const show = this.sessionId !== null && left !== null && left <= this.warnBeforeS;
    this.el.hidden = !show;
    if (!show) return;
    const s = Math.max(0, Math.round(left));
    this.el.querySelector('.left').textContent = left > 0
      ? `It expires in ${Math.floor(s / 60)} min ${s % 60} s if left idle.`
      : 'It may have expired.';
  }

  async keepAlive() {
    const id = this.sessionId;
    if (!id) return null;
    try {
      const answer = await this.app.api.post(`/v1/sessions/${id}/keepalive`);
      if (this.sessionId !== id) return answer;
      this.expiresAt = Date.parse(answer.expires_at);
      this.ttlS = answer.expires_in_s;
      this.check();
      const at = new Date(this.expiresAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      this.app.notify(`Session kept: it now expires at ${at} if left idle.`);
      return answer;
    } catch (err) {
      this.app.report(err);
      return null;
    }
  }
}

export function mountExpiry(app, el) {
  app.expiry = new Expiry(app, el);
  return app.expiry;
}
