// Entry point: builds the app and its panels, connects, and reopens the session in the URL.

import { App } from './app.js';
import { consoleHandle } from './handle.js';
import { mountEdit } from './ui/edit.js';
import { mountExpiry } from './ui/expiry.js';
import { mountFinetune } from './ui/finetune.js';
import { mountHints } from './ui/hints.js';
import { mountHistory } from './ui/history.js';
import { mountKeyDialog } from './ui/keydialog.js';
import { mountLost } from './ui/lost.js';
import { mountMessages } from './ui/messages.js';
import { mountModels } from './ui/models.js';
import { mountParams } from './ui/params.js';
import { mountRender3d } from './ui/render3d.js';
import { mountSegments } from './ui/segments.js';
import { mountShortcuts } from './ui/shortcuts.js';
import { mountStart } from './ui/start.js';
import { mountStatus } from './ui/status.js';
import { mountToolbar } from './ui/toolbar.js';
import { PRESETS } from './windowing.js';

const $ = (s) => document.querySelector(s);
const app = new App($('#views'));
window.medseg = consoleHandle(app);

mountToolbar(app, $('#toolbar'));
mountSegments(app, $('#segments'));
mountHints(app, $('#hints'));
mountHistory(app, $('#history'));
mountModels(app, $('#models'));
mountFinetune(app, $('#finetune'));
mountParams(app, $('#params'));
mountEdit(app, $('#edit'));
mountRender3d(app, $('#render3d'));
mountExpiry(app, $('#expiry'));
mountStatus(app, $('#status'));
mountMessages(app, $('#messages'));
const start = mountStart(app, $('#start'));
const lost = mountLost(app, $('#lost'));
mountShortcuts(app, $('#help'));
mountKeyDialog(app, $('#key-dialog'), () => boot());

app.addEventListener('escape', () => { if (app.session.record) start.hide(); });
app.addEventListener('next-window', () => {
  const names = Object.keys(PRESETS);
  const next = names[(names.indexOf(app.views.windowName) + 1) % names.length];
  app.views.setWindow(PRESETS[next], next);
});
app.addEventListener('session', () => {
  const { record } = app.session;
  document.title = `medseg · ${record.name ?? record.id.slice(0, 8)}`;
  document.body.classList.add('has-session');
});
// catch up with changes made elsewhere whenever the tab comes back
window.addEventListener('focus', () => {
  if (!app.lost) app.session.refreshAll().catch((err) => app.report(err));
});

const hashSession = () => /session=([0-9a-f]{32})/.exec(location.hash)?.[1] ?? null;

/** Open session `id` (from the URL): false when it could not be opened (the error is shown). */
async function openFromHash(id) {
  try {
    await app.openSession(await app.session.fetch(id));
    start.hide();
    lost.hide();
    return true;
  } catch (err) {
    app.report(err);
    return false;
  }
}

// `#session=<id>` typed or pasted into an open tab (or a link followed) opens that session
window.addEventListener('hashchange', () => {
  const id = hashSession();
  if (!id || id === app.session.record?.id) return;
  if (!app.caps) return; // not connected yet: boot reads the hash
  openFromHash(id).then((ok) => {
    if (ok) return;
    if (app.session.record && !app.lost) history.replaceState(null, '', `#session=${app.session.record.id}`);
    else start.show();
  });
});

async function boot() {
  if (!(await app.connect())) return; // 401: the key dialog calls boot again
  const id = hashSession();
  if (id && (await openFromHash(id))) return;
  start.show();
}

boot();
