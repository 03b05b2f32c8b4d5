// The open screen: drop a file (or a DICOM folder), pick one, or reopen a live session.

import { ProgressBar } from '../progress.js';

export function mountStart(app, el) {
  el.innerHTML = `
    <div class="card">
      <h1>medseg</h1>
      <p>Drop a CT or MR image here: NIfTI, NRRD, a DICOM series (files, a folder or a zip),
         PNG or JPEG. Then click on an organ.</p>
      <div class="drop" tabindex="0">Drop image files or a folder here
        <div class="pick"><label class="button">Choose files…<input type="file" class="files" multiple hidden></label>
        <label class="button">Choose a DICOM folder…<input type="file" class="folder" webkitdirectory hidden></label></div>
      </div>
      <div class="uploads"></div>
      <h2>Live sessions</h2>
      <ul class="sessions"><li class="empty">none</li></ul>
      <section class="archived-section" hidden>
        <h2>Archived sessions</h2>
        <p class="hint">Sessions kept by the server after they expired: Restore brings one back
          with its segments and their history.</p>
        <ul class="archived"></ul></section>
      <button class="close" hidden>Back to the image</button>
    </div>`;
  const $ = (s) => el.querySelector(s);
  const drop = $('.drop');

  async function upload(files) {
    if (!files.length) return;
    const bar = new ProgressBar($('.uploads'), `Uploading ${files.length === 1 ? files[0].name : `${files.length} files`}`);
    try {
      const record = await app.session.upload(files, (loaded, total) => bar.set(loaded, total,
        loaded === total ? 'reading the image on the server…' : ''));
      await app.openSession(record);
      bar.finish('opened');
      hide();
    } catch (err) {
      bar.finish('failed', true);
      app.report(err);
    }
  }

  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(await droppedFiles(e.dataTransfer));
  });
  $('.files').onchange = (e) => upload([...e.target.files]);
  $('.folder').onchange = (e) => upload([...e.target.files]);
  $('.close').onclick = hide;

  async function refresh() {
    let sessions = [];
    try {
      sessions = await app.session.list();
    } catch (err) {
      app.report(err);
    }
    const list = $('.sessions');
    if (!sessions.length) return list.replaceChildren(Object.assign(document.createElement('li'), { className: 'empty', textContent: 'none' }));
    list.replaceChildren(...sessions.map((s) => {
      const li = document.createElement('li');
      const open = document.createElement('button');
      open.className = 'session';
      open.dataset.id = s.id;
      const { what, meta } = describeSession(s);
      open.innerHTML = '<span class="what"></span><span class="meta"></span>';
      open.querySelector('.what').textContent = what;
      open.querySelector('.meta').textContent = meta;
      open.onclick = () => app.session.fetch(s.id).then((record) => app.openSession(record)).then(hide, (err) => app.report(err));
      const remove = document.createElement('button');
      remove.className = 'delete';
      remove.title = 'delete this session and everything in it';
      remove.textContent = '✕';
      remove.onclick = async () => {
        if (!confirm('Delete this session, its segments and their history?')) return;
        try {
          await app.api.delete(`/v1/sessions/${s.id}`);
        } catch (err) {
          app.report(err);
        }
        refresh();
      };
      li.append(open, remove);
      return li;
    }));
  }

  /** The tenant's archived sessions (GET /v1/sessions/archived), each with Restore; the section
   * stays hidden where the server keeps no archive (404). */
  async function refreshArchived() {
    let archived = [];
    try {
      archived = await app.api.get('/v1/sessions/archived');
    } catch (err) {
      if (err.status !== 404) app.report(err);
    }
    $('.archived-section').hidden = !archived.length;
    $('.archived').replaceChildren(...archived.map((a) => {
      const li = document.createElement('li');
      li.dataset.id = a.session_id;
      const what = document.createElement('span');
      what.className = 'what';
      what.textContent = describeArchived(a);
      const restore = document.createElement('button');
      restore.className = 'restore';
      restore.textContent = 'Restore';
      restore.title = 'bring this session back and open it';
      restore.onclick = async () => {
        restore.disabled = true;
        try {
          const record = await app.api.post('/v1/sessions/restore', { session_id: a.session_id });
          await app.openSession(await app.session.fetch(record.id));
          app.notify('Session restored');
          hide();
          app.emit('restored', { id: record.id });
        } catch (err) {
          restore.disabled = false;
          app.report(err);
          refreshArchived();
        }
      };
      li.append(what, restore);
      return li;
    }));
  }

  function show() {
    el.hidden = false;
    $('.close').hidden = !app.session.record || app.lost;
    refresh();
    refreshArchived();
  }

  function hide() { el.hidden = true; }

  app.addEventListener('open', show);
  return { show, hide };
}

/** One line for an archived session: modality, size, segments, when opened and archived. */
export function describeArchived(a) {
  const when = (iso) => String(iso ?? '').slice(0, 16).replace('T', ' ');
  return [a.modality === 'unknown' ? null : a.modality, a.shape.join('×'), `${a.segments} segment${a.segments === 1 ? '' : 's'}`,
    `opened ${when(a.created_at)}`, `archived ${when(a.archived_at)}`].filter(Boolean).join(' · ');
}

/** "20240131" -> "2024-01-31" (a DICOM DA), anything else as it is. */
function dicomDate(value) {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(String(value ?? '').trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : value || null;
}

/**
 * Two lines for a session in the list: what the image is (study / series description from the
 * PACS, else the session's name or format) and its modality, date, size and segments. No
 * patient identifiers: the server's session record carries none.
 */
export function describeSession(s) {
  const src = s.source ?? {};
  const descriptions = [src.study_description, src.series_description].filter(Boolean);
  const what = [s.name, ...descriptions].filter(Boolean).join(' · ') || `${s.source_format} upload`;
  const date = dicomDate(src.series_date ?? src.study_date);
  const opened = s.created_at.slice(0, 16).replace('T', ' ');
  const meta = [s.modality, date ? `acquired ${date}` : null, s.shape.join('×'),
    `${s.segments.length} segment${s.segments.length === 1 ? '' : 's'}`,
    src.kind === 'pacs' ? `from ${src.pacs}` : s.source_format, `opened ${opened}`].filter(Boolean);
  return { what, meta: meta.join(' · ') };
}

/** Files from a drop, walking dropped folders (a DICOM series is often a folder). */
async function droppedFiles(transfer) {
  const entries = [...transfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.some((e) => e.isDirectory)) return [...transfer.files];
  const files = [];
  async function walk(entry) {
    if (entry.isFile) files.push(await new Promise((ok, fail) => entry.file(ok, fail)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  }
  for (const entry of entries) await walk(entry);
  return files;
}
